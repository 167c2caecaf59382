"""The SMS outbox and inbox.

Outbound rows are planned before they are sent, one per visit and reminder slot, so the
database itself refuses a second text for the same purpose.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, CheckConstraint, ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.extensions import Model
from app.models.types import UTCDateTime, status_type, utcnow


class OutboundStatus(StrEnum):
    """Where one text stands, from planned to the provider's last word."""

    PENDING = "pending"  # planned, not yet claimed
    SENDING = "sending"  # claimed by a sender; the provider may or may not have it (reconcile after a crash)
    QUEUED = "queued"  # accepted by the provider
    SENT = "sent"
    DELIVERED = "delivered"
    UNDELIVERED = "undelivered"
    FAILED = "failed"
    SKIPPED = "skipped"  # not sent on purpose (stale, blocked at send time); reason in error_message
    CANCELLED = "cancelled"  # withdrawn before sending (visit completed, participant withdrawn…)


# Plain strings: they go into SQL (the CHECK below) and messages.
OUTBOUND_STATUSES = tuple(status.value for status in OutboundStatus)
# Handed to the provider: the texts a coordinator sees as sent, whatever became of them.
SENT_STATUSES = tuple(
    status.value
    for status in (
        OutboundStatus.QUEUED,
        OutboundStatus.SENT,
        OutboundStatus.DELIVERED,
        OutboundStatus.UNDELIVERED,
        OutboundStatus.FAILED,
    )
)
# Handed over but not received: the provider or the carrier gave up on it.
NOT_DELIVERED_STATUSES = (OutboundStatus.UNDELIVERED.value, OutboundStatus.FAILED.value)
OUTBOUND_KINDS = ("reminder", "manual", "redflag_alert", "reply", "test")
PARTICIPANT_KINDS = ("reminder", "manual", "reply")  # texts that go to a participant (the rest to staff)
LINK_KINDS = ("reminder", "manual")  # texts that carry a visit's link


class OutboundMessage(Model):
    """One text we intend to send or have sent."""

    __tablename__ = "outbound_messages"
    __table_args__ = (
        UniqueConstraint("visit_id", "slot"),
        CheckConstraint(f"status IN {OUTBOUND_STATUSES!r}", name="status_known"),
        CheckConstraint(f"kind IN {OUTBOUND_KINDS!r}", name="kind_known"),
        Index("ix_outbound_status_due", "status", "due_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    # Unique purpose of the text ("visit:12:r0", "redflag:5:+86…" hashed…): the second guard
    # for texts that have no visit, where (visit_id, slot) cannot be unique.
    dedupe_key: Mapped[str] = mapped_column(String(200), unique=True)
    kind: Mapped[str] = mapped_column(String(20), default="reminder")
    participant_id: Mapped[int | None] = mapped_column(
        ForeignKey("participants.id", ondelete="CASCADE"), index=True
    )
    visit_id: Mapped[int | None] = mapped_column(ForeignKey("visits.id", ondelete="CASCADE"))
    slot: Mapped[str | None] = mapped_column(String(32))
    to_e164: Mapped[str | None] = mapped_column(String(20))
    language: Mapped[str] = mapped_column(String(5), default="en")
    template: Mapped[str] = mapped_column(String(50), default="reminder")
    # The kind's template parameters as sent (app.sms.message; personal codes redacted), or coalesced
    # alerts' record ids before sending.
    params: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    # Typed str while app/sms still assigns bare strings; rows load as OutboundStatus members all the same.
    status: Mapped[str] = mapped_column(status_type(OutboundStatus), default=OutboundStatus.PENDING)
    due_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # The visit's schedule_version when planned: a reschedule makes older rows stale.
    schedule_version: Mapped[int] = mapped_column(default=1)
    claimed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    claimed_by: Mapped[str | None] = mapped_column(String(100))
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    provider_sid: Mapped[str | None] = mapped_column(String(64), unique=True)
    segments: Mapped[int | None] = mapped_column()
    error_code: Mapped[str | None] = mapped_column(String(64))  # Twilio 21211, Tencent FailedOperation.…
    error_message: Mapped[str | None] = mapped_column(String(500))
    attempts: Mapped[int] = mapped_column(default=0)
    created_by: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    participant = relationship("Participant")
    visit = relationship("Visit")

    def __repr__(self) -> str:
        return f"<OutboundMessage {self.id} {self.kind}/{self.slot} {self.status}>"


class InboundMessage(Model):
    """A text a participant (or anyone) sent to the study number; the body is kept for coordinators."""

    __tablename__ = "inbound_messages"

    id: Mapped[int] = mapped_column(primary_key=True)
    provider_sid: Mapped[str] = mapped_column(String(64), unique=True)
    participant_id: Mapped[int | None] = mapped_column(
        ForeignKey("participants.id", ondelete="SET NULL"), index=True
    )
    from_e164: Mapped[str] = mapped_column(String(20))
    body: Mapped[str] = mapped_column(Text, default="")
    keyword: Mapped[str | None] = mapped_column(String(20))  # stop / start / help / None
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    handled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    handled_by: Mapped[str | None] = mapped_column(String(200))

    participant = relationship("Participant")
