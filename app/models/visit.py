"""Follow-up visits: one per participant and visit key, with their window and state."""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum

from sqlalchemy import CheckConstraint, Date, ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.extensions import Model
from app.models.types import UTCDateTime, status_type, utcnow


class VisitStatus(StrEnum):
    """Where a visit stands: scheduled, open (its window has started), then one of the final three."""

    SCHEDULED = "scheduled"
    OPEN = "open"
    COMPLETED = "completed"
    MISSED = "missed"
    CANCELLED = "cancelled"


# Plain strings, like the other status tuples: they go into SQL (the CHECK below) and messages.
VISIT_STATUSES = tuple(status.value for status in VisitStatus)
# Not final yet: the visit may still be answered, so texts and reminders may still go out.
LIVE_STATUSES = (VisitStatus.SCHEDULED.value, VisitStatus.OPEN.value)
# Once a visit is here, nothing automatic changes it again.
FINAL_STATUSES = tuple(status for status in VISIT_STATUSES if status not in LIVE_STATUSES)
COMPLETED_VIA = ("questionnaire", "clinic", "redcap")


class Visit(Model):
    """A participant's follow-up visit (week_4, month_6…) and its REDCap event."""

    __tablename__ = "visits"
    __table_args__ = (
        UniqueConstraint("participant_id", "visit_key"),
        CheckConstraint(f"status IN {VISIT_STATUSES!r}", name="status_known"),
        CheckConstraint("closes_at > opens_at", name="window_ordered"),
        Index("ix_visits_status_opens_at", "status", "opens_at"),
        Index("ix_visits_status_closes_at", "status", "closes_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    participant_id: Mapped[int] = mapped_column(ForeignKey("participants.id", ondelete="CASCADE"), index=True)
    visit_key: Mapped[str] = mapped_column(String(32))
    event_name: Mapped[str] = mapped_column(String(100))
    target_date: Mapped[date] = mapped_column(Date)
    window_start: Mapped[date] = mapped_column(Date)
    window_end: Mapped[date] = mapped_column(Date)
    opens_at: Mapped[datetime] = mapped_column(UTCDateTime)
    closes_at: Mapped[datetime] = mapped_column(UTCDateTime)
    status: Mapped[VisitStatus] = mapped_column(status_type(VisitStatus), default=VisitStatus.SCHEDULED)
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    completed_via: Mapped[str | None] = mapped_column(String(20))
    status_reason: Mapped[str | None] = mapped_column(String(300))
    invited_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    reminders_sent: Mapped[int] = mapped_column(default=0)
    # Bumped on every reschedule, so work planned for an older window is recognised as stale.
    schedule_version: Mapped[int] = mapped_column(default=1)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    participant = relationship("Participant", back_populates="visits")

    @property
    def is_final(self) -> bool:
        return self.status in FINAL_STATUSES

    def is_open_at(self, now: datetime) -> bool:
        """Whether answers are accepted at `now`: within the window and not final."""
        return not self.is_final and self.opens_at <= now < self.closes_at

    def __repr__(self) -> str:
        return f"<Visit {self.participant_id}:{self.visit_key} {self.status}>"
