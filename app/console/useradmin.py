"""Admin changes to accounts: role and active flag, never leaving the console without an active admin."""

from __future__ import annotations

from datetime import datetime

from flask_babel import gettext as _
from sqlalchemy import delete, func, select

from app import audit
from app.console.actions import ActionRefused
from app.extensions import db
from app.models import ROLES_BY_NAME, LoginFailure, User


def _other_active_admins(user: User) -> int:
    return db.session.scalar(  # type: ignore[return-value]  # COUNT(*) always gives a row
        select(func.count())
        .select_from(User)
        .where(User.role == "admin", User.active.is_(True), User.id != user.id)
    )


def change_role(user: User, role: str, now: datetime, actor: str) -> None:
    """Give an account another role; the last active admin keeps theirs."""
    if role not in ROLES_BY_NAME:
        raise ActionRefused(_("Unknown role %(role)s.", role=repr(role)))
    if user.role == role:
        raise ActionRefused(_("%(email)s is already %(role)s.", email=user.email, role=role))
    if user.role == "admin" and _other_active_admins(user) == 0:
        raise ActionRefused(_("This is the last active admin; make another admin first."))
    previous = user.role
    user.role = role
    user.end_sessions()  # the next request is made with the new role, after signing in again
    entry = audit.record(actor, "user.role_changed", user_id=user.id, previous_role=previous, role=role)
    entry.at = now


def set_active(user: User, active: bool, now: datetime, actor: str) -> None:
    """Deactivate (ends their sessions) or reactivate (lifts their sign-in locks) an account."""
    if user.active == active:
        raise ActionRefused(
            _("%(email)s is already active.", email=user.email)
            if active
            else _("%(email)s is already deactivated.", email=user.email)
        )
    if not active and actor == f"user:{user.id}":
        raise ActionRefused(_("You cannot deactivate your own account."))
    if not active and user.role == "admin" and _other_active_admins(user) == 0:
        raise ActionRefused(_("This is the last active admin; make another admin first."))
    user.active = active
    if active:
        db.session.execute(delete(LoginFailure).where(LoginFailure.email == user.email))
    else:
        user.end_sessions()
    entry = audit.record(actor, "user.activated" if active else "user.deactivated", user_id=user.id)
    entry.at = now
