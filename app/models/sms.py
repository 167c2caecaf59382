"""SMS engine bookkeeping: the shared send-rate bucket and the provider's status callbacks as received."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Float, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from app.extensions import Model
from app.models.types import UTCDateTime, utcnow


class SmsRateBucket(Model):
    """One row per sending identity: the earliest wall-clock second the next text may leave.

    Every sender process reserves its slot with one atomic UPDATE of this row, so the rate
    holds across processes and hosts without Redis.
    """

    __tablename__ = "sms_rate_buckets"

    name: Mapped[str] = mapped_column(String(50), primary_key=True)
    next_at: Mapped[float] = mapped_column(Float, default=0.0)


class SmsStatusEvent(Model):
    """A delivery status callback as received, kept so one that races ahead of its SID is applied later.

    One row per (message, status, error code): Twilio retries and replays of a signed callback, even
    concurrent ones, add nothing.
    """

    __tablename__ = "sms_status_events"
    # The unique key starts with the SID, so it also serves the lookups by SID.
    __table_args__ = (
        UniqueConstraint("provider_sid", "status", "error_code", name="uq_sms_status_events_callback"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    provider_sid: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(20))
    # "" when the callback carried no code: NULLs never collide in a unique key, so they would not dedupe.
    error_code: Mapped[str] = mapped_column(String(64), default="", server_default="")
    applied: Mapped[bool] = mapped_column(default=False)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
