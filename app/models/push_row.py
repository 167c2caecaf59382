"""The columns and re-queue behaviour every row of a REDCap push queue shares (a SQLAlchemy mixin).

Submissions, visit status pushes and study status pushes are each a queue row: a sync status, the attempts
so far, when to try next, REDCap's last error and when the push landed.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import String, Text
from sqlalchemy.orm import Mapped, mapped_column

from app.models.types import UTCDateTime


class PushRow:
    """Mixin: the push-queue columns (`sync_status` … `pushed_at`) and `requeue`, the one way to retry."""

    sync_status: Mapped[str] = mapped_column(String(20), default="pending")
    sync_attempts: Mapped[int] = mapped_column(default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_error: Mapped[str | None] = mapped_column(Text)
    pushed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    def requeue(self, now: datetime) -> None:
        """Back in the queue, due now, attempts and error cleared. The caller audits and commits."""
        self.sync_status = "pending"
        self.sync_attempts = 0
        self.next_attempt_at = now
        self.last_error = None
