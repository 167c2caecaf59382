"""Coordinator accounts."""

from __future__ import annotations

from datetime import datetime
from functools import lru_cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from flask_login import UserMixin
from sqlalchemy import CheckConstraint, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from app.extensions import Model
from app.models.types import UTCDateTime, utcnow
from app.roles import ROLES as ROLES

ROLES_BY_NAME = {name: rank for rank, name in enumerate(ROLES)}
_hasher = PasswordHasher()


@lru_cache(maxsize=1)
def _dummy_hash() -> str:
    # Made with the same hasher (and so the same costs) as real hashes, once per process.
    return _hasher.hash("not-a-real-password-for-timing-only")


def verify_password(password_hash: str, password: str) -> bool:
    """Whether `password` matches `password_hash`: one Argon2 verification, whatever the answer."""
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def verify_dummy_password(password: str) -> None:
    """The same Argon2 work as a real check, for a path that has no account to check against."""
    verify_password(_dummy_hash(), password)


class User(UserMixin, Model):
    """A study-team member who signs in to the console."""

    __tablename__ = "users"
    __table_args__ = (CheckConstraint(f"role IN {ROLES!r}", name="role_known"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(254), unique=True)
    password_hash: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(20), default="viewer")
    active: Mapped[bool] = mapped_column(default=True)
    # Part of every session's login id (see get_id): bumping it ends every session made before.
    session_version: Mapped[int] = mapped_column(default=1, server_default="1")
    last_login_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    def set_password(self, password: str) -> None:
        """Store a new password hash; sessions signed in with the old password end."""
        self.password_hash = _hasher.hash(password)
        self.end_sessions()

    def check_password(self, password: str) -> bool:
        """One Argon2 verification of `password` against this account's hash."""
        return verify_password(self.password_hash, password)

    def end_sessions(self) -> None:
        """Invalidate every session cookie issued so far (logout, password, role, deactivation)."""
        if self.id is None:
            self.session_version = (self.session_version or 0) + 1
        else:
            # UPDATE ... SET session_version = session_version + 1: concurrent bumps never collapse into one.
            self.session_version = User.session_version + 1

    def get_id(self) -> str:
        """Flask-Login's id, stored in the session: the user id and the session version."""
        return f"{self.id}:{self.session_version}"

    @property
    def is_active(self) -> bool:  # Flask-Login asks this
        return self.active

    def can(self, role: str) -> bool:
        """Whether this user holds `role` or a stronger one (admin > coordinator > viewer)."""
        return ROLES.index(self.role) <= ROLES.index(role)

    def __repr__(self) -> str:
        return f"<User {self.id} {self.role}>"


class LoginFailure(Model):
    """Failed sign-ins for one e-mail from one client address, and that pair's lock.

    Keyed by the e-mail as typed (normalised), not by the account, so an unknown e-mail is counted
    and locked like a known one; keyed by address too, so failures from elsewhere never lock the
    real user out.
    """

    __tablename__ = "login_failures"
    __table_args__ = (UniqueConstraint("email", "address"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(254))
    address: Mapped[str] = mapped_column(String(64))
    failures: Mapped[int] = mapped_column(default=0)
    last_failed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime)

    def locked(self, now: datetime) -> bool:
        """Whether this e-mail is locked for this address at `now`."""
        return self.locked_until is not None and self.locked_until > now
