"""Participants as the roster in REDCap describes them, plus what SMS taught us about their phone."""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum

from sqlalchemy import CheckConstraint, Date, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.extensions import Model
from app.models.types import UTCDateTime, status_type, utcnow


class StudyStatus(StrEnum):
    """A participant's study status, as REDCap's roster (or a coordinator) records it."""

    ACTIVE = "active"
    WITHDRAWN = "withdrawn"
    DECEASED = "deceased"
    LOST = "lost"


STUDY_STATUSES = tuple(status.value for status in StudyStatus)
# The one tuple of statuses that end a participation (plain strings: they go into SQL and messages).
ENDED_STATUSES = tuple(status.value for status in StudyStatus if status is not StudyStatus.ACTIVE)
LANGUAGES = ("en", "zh")
# Why a number cannot be texted; "ok" means it can.
PHONE_STATUSES = ("ok", "missing", "invalid", "unusable")
# Who set `status` last: a roster row from REDCap, or a coordinator's console action (withdrawal, death).
STATUS_SOURCES = ("redcap", "console")
# How an SMS opt-out arrived: a STOP/TD reply, the web page's button, a coordinator, or a provider's code.
OPT_OUT_SOURCES = ("reply", "web", "coordinator", "provider")


class Participant(Model):
    """One enrolled participant, keyed by the REDCap record id.

    `status` mirrors REDCap's study status; SMS opt-out is kept apart because REDCap does
    not know about it and a roster sync must never undo a participant's STOP.
    """

    __tablename__ = "participants"
    __table_args__ = (
        CheckConstraint(f"status IN {STUDY_STATUSES!r}", name="status_known"),
        CheckConstraint(f"language IN {LANGUAGES!r}", name="language_known"),
        CheckConstraint(f"phone_status IN {PHONE_STATUSES!r}", name="phone_status_known"),
        CheckConstraint(f"status_source IN {STATUS_SOURCES!r}", name="status_source_known"),
        CheckConstraint(f"opted_out_via IN {OPT_OUT_SOURCES!r}", name="opted_out_via_known"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    record_id: Mapped[str] = mapped_column(String(100), unique=True)
    phone_e164: Mapped[str | None] = mapped_column(String(20))
    phone_status: Mapped[str] = mapped_column(String(20), default="missing")
    phone_error: Mapped[str | None] = mapped_column(String(200))
    language: Mapped[str] = mapped_column(String(5), default="en")
    timezone: Mapped[str] = mapped_column(String(64))
    sms_consent: Mapped[bool] = mapped_column(default=False)
    status: Mapped[StudyStatus] = mapped_column(
        status_type(StudyStatus), default=StudyStatus.ACTIVE, index=True
    )
    # A status ended in the console sticks until REDCap has recorded it (see app.redcap.roster).
    status_source: Mapped[str] = mapped_column(String(20), default="redcap", server_default="redcap")
    status_changed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    opted_out: Mapped[bool] = mapped_column(default=False)
    opted_out_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    opted_out_via: Mapped[str | None] = mapped_column(String(20))  # one of OPT_OUT_SOURCES while opted out
    anchor_date: Mapped[date] = mapped_column(Date)
    enrolled_on: Mapped[date | None] = mapped_column(Date)
    roster_hash: Mapped[str | None] = mapped_column(String(64))
    roster_synced_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    roster_problem: Mapped[str | None] = mapped_column(String(300))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    visits = relationship("Visit", back_populates="participant", order_by="Visit.opens_at", lazy="selectin")

    def sms_block_reason(self) -> str | None:
        """Why this participant must not be texted now, or None when a text is allowed."""
        if self.status != StudyStatus.ACTIVE:
            return f"status {self.status}"
        if self.opted_out:
            return f"opted out of texts (via {self.opted_out_via or 'reply'})"
        if not self.sms_consent:
            return "no SMS consent"
        if self.phone_status != "ok" or not self.phone_e164:
            return f"phone {self.phone_status}"
        return None

    @property
    def can_receive_sms(self) -> bool:
        return self.sms_block_reason() is None

    @property
    def effective_status(self) -> str:
        """The status coordinators see: opted out shows over active."""
        return "opted_out" if self.status == StudyStatus.ACTIVE and self.opted_out else self.status

    def __repr__(self) -> str:  # no phone number: reprs end up in logs
        return f"<Participant {self.record_id} {self.effective_status}>"
