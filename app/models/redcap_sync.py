"""The durable queues of statuses owed to REDCap: visit statuses (contact instrument), ended study statuses.

A row is written in the same transaction as the visit change it reports (or found later by the push pass
from the visit itself), so a crash or a REDCap outage can delay a status push but never lose it.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import CheckConstraint, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.extensions import Model
from app.models.push_row import PushRow
from app.models.types import UTCDateTime, utcnow

# "refused" and "callback" come from a coordinator's call (app.participants.calls); "callback" is interim.
PUSHED_VISIT_STATUSES = ("completed", "missed", "opted_out", "withdrawn", "refused", "callback")
STATUS_PUSH_STATES = ("pending", "pushed", "failed")
PUSHED_STUDY_STATUSES = ("withdrawn", "deceased")


class StatusPushRow(PushRow):
    """A status owed to REDCap: the push columns plus when it was (re)queued."""

    queued_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    def requeue(self, now: datetime) -> None:
        """Due now from a fresh start, as a newly queued status (the pushed time forgotten)."""
        super().requeue(now)
        self.queued_at = now
        self.pushed_at = None


class RedcapStatusPush(StatusPushRow, Model):
    """The latest status of one visit to write into REDCap, and where that write stands."""

    __tablename__ = "redcap_status_pushes"
    __table_args__ = (
        CheckConstraint(f"status IN {PUSHED_VISIT_STATUSES!r}", name="status_known"),
        CheckConstraint(f"sync_status IN {STATUS_PUSH_STATES!r}", name="sync_status_known"),
        Index("ix_redcap_status_pushes_due", "sync_status", "next_attempt_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    visit_id: Mapped[int] = mapped_column(ForeignKey("visits.id", ondelete="CASCADE"), unique=True)
    status: Mapped[str] = mapped_column(String(20))

    visit = relationship("Visit")

    def __repr__(self) -> str:
        return f"<RedcapStatusPush visit={self.visit_id} {self.status} {self.sync_status}>"


class RedcapEnrollmentStatusPush(StatusPushRow, Model):
    """A study status (withdrawn, deceased) recorded in the console, owed to REDCap's enrollment form."""

    __tablename__ = "redcap_enrollment_status_pushes"
    __table_args__ = (
        CheckConstraint(f"status IN {PUSHED_STUDY_STATUSES!r}", name="status_known"),
        CheckConstraint(f"sync_status IN {STATUS_PUSH_STATES!r}", name="sync_status_known"),
        Index("ix_redcap_enrollment_status_pushes_due", "sync_status", "next_attempt_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    participant_id: Mapped[int] = mapped_column(
        ForeignKey("participants.id", ondelete="CASCADE"), unique=True
    )
    status: Mapped[str] = mapped_column(String(20))

    participant = relationship("Participant")

    def __repr__(self) -> str:
        return (
            f"<RedcapEnrollmentStatusPush participant={self.participant_id} {self.status} {self.sync_status}>"
        )
