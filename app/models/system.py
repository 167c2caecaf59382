"""Process-level state kept in the database: the scheduler's lease and small named values."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, String
from sqlalchemy.orm import Mapped, mapped_column

from app.extensions import Model, db
from app.models.types import UTCDateTime, utcnow


class SchedulerLease(Model):
    """The leader lease: the scheduler that holds an unexpired row is the one that runs jobs."""

    __tablename__ = "scheduler_leases"

    name: Mapped[str] = mapped_column(String(50), primary_key=True)
    owner: Mapped[str] = mapped_column(String(200))
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    renewed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class SystemState(Model):
    """Named values such as the scheduler heartbeat or the last REDCap error time."""

    __tablename__ = "system_state"

    key: Mapped[str] = mapped_column(String(100), primary_key=True)
    value: Mapped[Any] = mapped_column(JSON)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    @classmethod
    def read(cls, key: str) -> Any:
        """The value stored under `key`, or None."""
        row = db.session.get(cls, key)
        return None if row is None else row.value

    @classmethod
    def write(cls, key: str, value: Any) -> None:
        """Store `value` under `key` in the caller's transaction (the one put of a named value)."""
        row = db.session.get(cls, key)
        if row is None:
            db.session.add(cls(key=key, value=value))
        elif row.value != value:
            row.value = value
