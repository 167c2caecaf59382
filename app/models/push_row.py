"""The columns and re-queue behaviour every row of a REDCap push queue shares (a SQLAlchemy mixin).

Submissions, visit status pushes and study status pushes are each a queue row: a sync status, the attempts
so far, when to try next, REDCap's last error and when the push landed.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import Text
from sqlalchemy.orm import Mapped, mapped_column

from app.models.types import UTCDateTime, status_type


class SyncStatus(StrEnum):
    """Where a queued push stands. Status pushes use the first three; the last two are submissions' only."""

    PENDING = "pending"  # due at next_attempt_at
    PUSHED = "pushed"
    FAILED = "failed"  # REDCap refused it; waits for a coordinator's retry
    CONFLICT = "conflict"  # REDCap holds staff's data for the visit; waits for a coordinator's decision
    DISCARDED = "discarded"  # a coordinator kept REDCap's data; never pushed


class PushRow:
    """Mixin: the push-queue columns (`sync_status` … `pushed_at`) and `requeue`, the one way to retry."""

    sync_status: Mapped[SyncStatus] = mapped_column(status_type(SyncStatus), default=SyncStatus.PENDING)
    sync_attempts: Mapped[int] = mapped_column(default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_error: Mapped[str | None] = mapped_column(Text)
    pushed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    def requeue(self, now: datetime, *, keep_attempts: bool = False, forget_pushed: bool = False) -> None:
        """Back in the queue, due now, error cleared. The caller audits and commits.

        The attempts start again from zero unless `keep_attempts` (a coordinator's "import anyway" lifts
        a conflict hold and leaves the push's attempts as they were). `forget_pushed` clears `pushed_at`,
        for a push owed again although it once landed (REDCap lost it, or there is a new status to write).
        """
        self.sync_status = SyncStatus.PENDING
        if not keep_attempts:
            self.sync_attempts = 0
        self.next_attempt_at = now
        self.last_error = None
        if forget_pushed:
            self.pushed_at = None
