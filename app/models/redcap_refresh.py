"""Durable queue of REDCap record re-reads (Data Entry Trigger) and coordinators' conflict decisions."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from app.extensions import Model
from app.models.types import UTCDateTime, utcnow


class RecordRefresh(Model):
    """One queued re-read of one REDCap record; kept after it is done, as a trail.

    `pending_record` holds the record id while the row is pending and NULL once done: a unique
    column that de-duplicates pending re-reads on every database (NULLs never collide).
    """

    __tablename__ = "redcap_record_refreshes"
    __table_args__ = (Index("ix_redcap_record_refreshes_due", "done_at", "next_attempt_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    record_id: Mapped[str] = mapped_column(String(100), index=True)
    pending_record: Mapped[str | None] = mapped_column(String(100), unique=True)
    source: Mapped[str] = mapped_column(String(20), default="det")
    requested_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    done_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    attempts: Mapped[int] = mapped_column(default=0)
    last_error: Mapped[str | None] = mapped_column(String(500))
    note: Mapped[str | None] = mapped_column(String(300))

    def __repr__(self) -> str:
        return f"<RecordRefresh {self.record_id} {'done' if self.done_at else 'pending'}>"


class ConflictDecision(Model):
    """A coordinator's decision on a conflicting submission, bound to the REDCap values they saw.

    "import" lets the push import over REDCap only while REDCap still holds exactly the values whose
    hash is stored here; any later change in REDCap makes it a conflict again.
    """

    __tablename__ = "redcap_conflict_decisions"

    id: Mapped[int] = mapped_column(primary_key=True)
    submission_id: Mapped[int] = mapped_column(ForeignKey("submissions.id", ondelete="CASCADE"), index=True)
    action: Mapped[str] = mapped_column(String(20))  # import / discard
    snapshot_hash: Mapped[str] = mapped_column(String(64))
    actor: Mapped[str] = mapped_column(String(200))
    note: Mapped[str | None] = mapped_column(Text)
    decided_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
