"""Console sign-in and sign-out: throttled, locking after repeated failures, one message for every failure.

`authenticate` is the domain rule (also usable from tests and the CLI); the routes below are thin.
"""

from __future__ import annotations

import contextlib
from datetime import datetime, timedelta
from functools import lru_cache
from urllib.parse import urlsplit

from argon2 import PasswordHasher
from argon2.exceptions import VerificationError
from flask import Blueprint, current_app, flash, redirect, render_template, request, session, url_for
from flask_babel import gettext as _
from flask_login import current_user, login_user, logout_user
from sqlalchemy import select

from app import audit
from app.console.forms import LanguageForm, LoginForm
from app.console.permissions import LAST_SEEN_KEY, set_page_language, touch_session
from app.extensions import db, limiter
from app.i18n import SUPPORTED
from app.models import User, utcnow

bp = Blueprint("console_auth", __name__, url_prefix="/console")
bp.before_request(set_page_language)


@lru_cache(maxsize=1)
def _dummy_hash() -> str:
    # Verifying against a throwaway hash makes an unknown e-mail cost as much time as a known one.
    return PasswordHasher().hash("not-a-real-password-for-timing-only")


def authenticate(
    email: str, password: str, now: datetime, max_failures: int, lock_minutes: int
) -> User | None:
    """The active, unlocked user with this e-mail and password, or None; counts failures and locks.

    The caller commits. Every refusal looks the same to the person signing in.
    """
    email = (email or "").strip().lower()
    user = db.session.scalar(select(User).where(User.email == email))
    if user is None:
        with contextlib.suppress(VerificationError):
            PasswordHasher().verify(_dummy_hash(), password or "")
        return None
    if user.locked_until is not None and user.locked_until > now:
        audit.record(f"user:{user.id}", "user.login_refused", reason="account locked")
        return None
    if user.check_password(password or "") and user.active:
        user.failed_logins = 0
        user.locked_until = None
        user.last_login_at = now
        audit.record(f"user:{user.id}", "user.login")
        return user
    user.failed_logins += 1
    if user.failed_logins >= max_failures:
        user.failed_logins = 0
        user.locked_until = now + timedelta(minutes=lock_minutes)
        audit.record(f"user:{user.id}", "user.locked", reason=f"{max_failures} failed sign-ins")
    return None


def safe_next(target: str | None, default: str) -> str:
    """Only a path inside the console may be a redirect target (no other host, no scheme)."""
    if not target:
        return default
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/console") or target.startswith("//"):
        return default
    if "\\" in target:
        return default
    return target


def _login_limit() -> str:
    return current_app.config["LOGIN_LIMIT"]


@bp.route("/login", methods=["GET", "POST"])
@limiter.limit(_login_limit, methods=["POST"])
def login():
    form = LoginForm()
    if request.method == "GET":
        form.next.data = request.args.get("next", "")
    if current_user.is_authenticated and request.method == "GET":
        return redirect(safe_next(form.next.data, url_for("console.worklist")))
    if form.validate_on_submit():
        config = current_app.config
        now = utcnow()
        user = authenticate(
            form.email.data,
            form.password.data,
            now,
            config["LOGIN_MAX_FAILURES"],
            config["LOGIN_LOCK_MINUTES"],
        )
        db.session.commit()
        if user is not None:
            lang = session.get("lang")
            session.clear()  # nothing from before sign-in survives it
            if lang:
                session["lang"] = lang
            login_user(user)
            touch_session(now)
            return redirect(safe_next(form.next.data, url_for("console.worklist")))
        flash(
            _(
                "E-mail or password not accepted. After %(n)s failed attempts an account is locked "
                "for %(m)s minutes.",
                n=config["LOGIN_MAX_FAILURES"],
                m=config["LOGIN_LOCK_MINUTES"],
            ),
            "error",
        )
        return render_template("console/login.html", form=form), 401
    return render_template("console/login.html", form=form), (400 if request.method == "POST" else 200)


@bp.post("/logout")
def logout():
    if current_user.is_authenticated:
        audit.record(f"user:{current_user.id}", "user.logout")
        db.session.commit()
    logout_user()
    session.pop(LAST_SEEN_KEY, None)
    flash(_("You are signed out."), "info")
    return redirect(url_for("console_auth.login"))


@bp.post("/language")
def language():
    form = LanguageForm()
    if form.validate_on_submit() and form.lang.data in SUPPORTED:
        session["lang"] = form.lang.data
    return redirect(safe_next(form.next.data, url_for("console.worklist")))
