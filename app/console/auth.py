"""Console sign-in and sign-out: throttled, locking after repeated failures, one message for every failure.

`authenticate` is the domain rule (also usable from tests and the CLI); the routes below are thin.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import cast
from urllib.parse import urlsplit

from flask import Blueprint, current_app, flash, redirect, render_template, request, session, url_for
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _
from flask_login import current_user, login_user, logout_user
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from app import audit
from app.console.forms import LanguageForm, LoginForm
from app.console.permissions import LAST_SEEN_KEY, set_page_language, touch_session
from app.extensions import db, limiter
from app.i18n import SUPPORTED
from app.models import LoginFailure, User, utcnow
from app.models.user import verify_dummy_password

bp = Blueprint("console_auth", __name__, url_prefix="/console")
bp.before_request(set_page_language)


def authenticate(
    email: str, password: str, address: str, now: datetime, max_failures: int, lock_minutes: int
) -> User | None:
    """The active user with this e-mail and password, unless locked for `address`; counts and locks.

    Every path does the same work: one Argon2 verification (against a throwaway hash when the e-mail
    matches no account, and even when the pair is locked), then failures are counted per e-mail and
    address, so a wrong guess from one address never locks the account for another. The caller
    commits. Every refusal looks the same to the person signing in.
    """
    email = (email or "").strip().lower()[:254]
    user = db.session.scalar(select(User).where(User.email == email))
    if user is None:
        verify_dummy_password(password or "")
        accepted = False
    else:
        accepted = user.check_password(password or "") and user.active
    failure = db.session.scalar(
        select(LoginFailure).where(LoginFailure.email == email, LoginFailure.address == address)
    )
    if failure is not None and failure.locked(now):
        if user is not None:
            audit.record(f"user:{user.id}", "user.login_refused", reason="locked for this address")
        return None
    if accepted and user is not None:
        if failure is not None:
            db.session.delete(failure)
        user.last_login_at = now
        audit.record(f"user:{user.id}", "user.login")
        return user
    _count_failure(failure, email, address, now, max_failures, lock_minutes, user)
    return None


def _count_failure(
    failure: LoginFailure | None,
    email: str,
    address: str,
    now: datetime,
    max_failures: int,
    lock_minutes: int,
    user: User | None,
) -> None:
    if failure is None:
        failure = LoginFailure(email=email, address=address, failures=0)
        db.session.add(failure)
    elif failure.last_failed_at < now - timedelta(minutes=lock_minutes):
        failure.failures = 0  # old failures are forgotten after one lock period
    failure.failures += 1
    failure.last_failed_at = now
    if failure.failures >= max_failures:
        failure.failures = 0
        failure.locked_until = now + timedelta(minutes=lock_minutes)
        if user is not None:
            audit.record(
                f"user:{user.id}", "user.locked", reason=f"{max_failures} failed sign-ins from one address"
            )


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
    limit: str = current_app.config["LOGIN_LIMIT"]
    return limit


@bp.route("/login", methods=["GET", "POST"])
@limiter.limit(_login_limit, methods=["POST"])
def login() -> ResponseReturnValue:
    form = LoginForm()
    if request.method == "GET":
        form.next.data = request.args.get("next", "")
    if current_user.is_authenticated and request.method == "GET":
        return redirect(safe_next(form.next.data, url_for("console.worklist")))
    if form.validate_on_submit():
        config = current_app.config
        now = utcnow()
        user = authenticate(
            cast(str, form.email.data),
            cast(str, form.password.data),
            request.remote_addr or "-",
            now,
            config["LOGIN_MAX_FAILURES"],
            config["LOGIN_LOCK_MINUTES"],
        )
        try:
            db.session.commit()
        except IntegrityError:  # a parallel failure from the same address made the row first
            db.session.rollback()
            user = None
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
def logout() -> ResponseReturnValue:
    if current_user.is_authenticated:
        # Signing out ends this user's sessions everywhere, copied cookies included.
        current_user.end_sessions()
        audit.record(f"user:{current_user.id}", "user.logout")
        db.session.commit()
    logout_user()
    session.pop(LAST_SEEN_KEY, None)
    flash(_("You are signed out."), "info")
    return redirect(url_for("console_auth.login"))


@bp.post("/language")
def language() -> ResponseReturnValue:
    form = LanguageForm()
    if form.validate_on_submit() and form.lang.data in SUPPORTED:
        session["lang"] = form.lang.data
    return redirect(safe_next(form.next.data, url_for("console.worklist")))
