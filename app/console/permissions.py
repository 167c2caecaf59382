"""Who may open which console page: login for everything, then a minimum role per view.

Every console view carries its minimum role as `view.required_role`, so the URL-map test can
check each route against each role without a hand-kept list.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from functools import wraps
from typing import Any, TypeVar

from flask import abort, current_app, flash, g, redirect, request, session, url_for
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _
from flask_login import current_user, logout_user

from app.models import utcnow

F = TypeVar("F", bound=Callable[..., Any])
LAST_SEEN_KEY = "console_last_seen"


def require_role(role: str) -> Callable[[F], F]:
    """Refuse (403) a signed-in user whose role is weaker than `role`; login itself is checked earlier."""

    def decorate(view: F) -> F:
        @wraps(view)
        def wrapped(*args: Any, **kwargs: Any) -> Any:
            if not current_user.is_authenticated:
                return current_app.login_manager.unauthorized()  # type: ignore[attr-defined]  # set by Flask-Login
            if not current_user.can(role):
                abort(403)
            return view(*args, **kwargs)

        wrapped.required_role = role  # type: ignore[attr-defined]
        return wrapped  # type: ignore[return-value]

    return decorate


def session_expired(now: datetime, idle_minutes: int) -> bool:
    """Whether the signed-in session has been idle longer than the limit (and so must end)."""
    seen = session.get(LAST_SEEN_KEY)
    if seen is None:
        return True
    try:
        last = datetime.fromisoformat(seen)
    except (TypeError, ValueError):
        return True
    return now - last > timedelta(minutes=idle_minutes)


def touch_session(now: datetime) -> None:
    """Record activity now, so the idle clock restarts (stored as ISO text in the signed cookie)."""
    session[LAST_SEEN_KEY] = now.isoformat()
    session.permanent = True


def set_page_language() -> None:
    """Fix this request's language once, so the page's `lang` attribute matches its text."""
    from flask_babel import refresh

    from app.i18n import select_locale

    g.pop("locale", None)
    g.locale = select_locale()
    refresh()  # drop a locale Flask-Babel cached before the choice was known


def guard_console() -> ResponseReturnValue | None:
    """Before every console request: signed in, still active, not idle too long; else back to login."""
    set_page_language()
    if request.endpoint is None:
        return None  # 404/405 are answered by Flask itself
    if not current_user.is_authenticated:
        refused: ResponseReturnValue = current_app.login_manager.unauthorized()  # type: ignore[attr-defined]  # set by Flask-Login
        return refused
    now = utcnow()
    if not current_user.is_active or session_expired(now, current_app.config["SESSION_IDLE_MINUTES"]):
        logout_user()
        session.pop(LAST_SEEN_KEY, None)
        flash(_("You were signed out after a while without activity. Please sign in again."), "info")
        return redirect(
            url_for("console_auth.login", next=request.full_path if request.method == "GET" else None)
        )
    touch_session(now)
    return None
