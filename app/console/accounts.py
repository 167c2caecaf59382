"""Coordinator accounts: creation rules shared by the CLI and the admin pages, and Flask-Login's loader."""

from __future__ import annotations

import re

from sqlalchemy import select

from app import audit
from app.extensions import db, login_manager
from app.models import ROLES_BY_NAME, User

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
MIN_PASSWORD_LENGTH = 12


class AccountError(ValueError):
    """An account cannot be created or changed; the message says why."""


def create_user(email: str, password: str, role: str, actor: str = "system:cli") -> User:
    """Create a user after checking the e-mail, the role and the password's length."""
    email = (email or "").strip().lower()
    if not _EMAIL.match(email):
        raise AccountError(f"not an e-mail address: {email!r}")
    if role not in ROLES_BY_NAME:
        raise AccountError(f"role must be one of {', '.join(ROLES_BY_NAME)}, got {role!r}")
    if len(password or "") < MIN_PASSWORD_LENGTH:
        raise AccountError(f"password must have at least {MIN_PASSWORD_LENGTH} characters")
    if db.session.scalar(select(User).where(User.email == email)) is not None:
        raise AccountError(f"a user with e-mail {email} already exists")
    user = User(email=email, role=role)
    user.set_password(password)
    db.session.add(user)
    db.session.flush()
    audit.record(actor, "user.created", role=role, user_id=user.id)
    return user


def change_password(user: User, password: str, actor: str = "system:cli") -> None:
    """Give an account a new password (same length rule as creation); its sessions end."""
    if len(password or "") < MIN_PASSWORD_LENGTH:
        raise AccountError(f"password must have at least {MIN_PASSWORD_LENGTH} characters")
    user.set_password(password)
    audit.record(actor, "user.password_changed", user_id=user.id)


@login_manager.user_loader
def load_user(login_id: str) -> User | None:
    """The user of a session whose login id ("<id>:<session version>") is still current."""
    user_id, _, version = (login_id or "").partition(":")
    try:
        user = db.session.get(User, int(user_id))
        current = user is not None and int(version) == user.session_version
    except (TypeError, ValueError):
        return None
    # A cookie from before a logout, password, role change or deactivation is no session at all.
    return user if current else None
