"""The durable queues of statuses owed to REDCap: visit statuses (contact instrument), ended study statuses.

A row is written in the same transaction as the visit change it reports (or found later by the push pass
from the visit itself), so a crash or a REDCap outage can delay a status push but never lose it.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import CheckConstraint, ForeignKey, Index
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.extensions import Model
from app.models.participant import StudyStatus
from app.models.push_row import PushRow, SyncStatus
from app.models.types import UTCDateTime, status_type, utcnow


class PushedVisitStatus(StrEnum):
    """A visit status as REDCap's contact form records it (codes in REDCAP_VISIT_STATUS_CODES)."""

    COMPLETED = "completed"
    MISSED = "missed"
    OPTED_OUT = "opted_out"  # missed while opted out of texts
    WITHDRAWN = "withdrawn"  # cancelled because the participation ended
    # From a coordinator's call (app.participants.calls); "callback" is interim, written to be replaced.
    REFUSED = "refused"
    CALLBACK = "callback"


# Plain strings: they go into SQL (the CHECKs below) and messages.
PUSHED_VISIT_STATUSES = tuple(status.value for status in PushedVisitStatus)
STATUS_PUSH_STATES = (SyncStatus.PENDING.value, SyncStatus.PUSHED.value, SyncStatus.FAILED.value)
# The ended study statuses REDCap's enrollment form can hold (a console end: withdrawal or death).
PUSHED_STUDY_STATUSES = (StudyStatus.WITHDRAWN.value, StudyStatus.DECEASED.value)


class StatusPushRow(PushRow):
    """A status owed to REDCap: the push columns plus when it was (re)queued."""

    queued_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    def queue_anew(self, now: datetime) -> None:
        """Due now from a fresh start, as a newly queued status (the pushed time forgotten).

        Not `requeue`: a coordinator's retry of a refused status is `requeue` and keeps `queued_at`.
        """
        self.requeue(now, forget_pushed=True)
        self.queued_at = now


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
    status: Mapped[PushedVisitStatus] = mapped_column(status_type(PushedVisitStatus))

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
    status: Mapped[StudyStatus] = mapped_column(status_type(StudyStatus))

    participant = relationship("Participant")

    def __repr__(self) -> str:
        return (
            f"<RedcapEnrollmentStatusPush participant={self.participant_id} {self.status} {self.sync_status}>"
        )
