"""What the provider said about a text, recorded: accepted (its SID, the visit's reminders) or refused."""

from __future__ import annotations

import logging
from datetime import datetime

from sqlalchemy import case, literal, update

from app.extensions import db
from app.models import OutboundMessage, OutboundStatus, UTCDateTime, Visit
from app.models.messaging import LINK_KINDS
from app.sms import delivery
from app.sms.providers import Accepted, ProviderError

log = logging.getLogger(__name__)


def record_accepted(
    msg: OutboundMessage, accepted: Accepted, now: datetime, *, early_callbacks: bool = False
) -> None:
    """The provider has the text: keep its SID, count the reminder on the visit, apply early callbacks."""
    msg.provider_sid = accepted.sid
    msg.status = delivery.our_status(accepted.status) or OutboundStatus.QUEUED
    msg.sent_at = now
    msg.claimed_by = None
    msg.error_code = None
    msg.error_message = None
    if accepted.segments:
        msg.segments = accepted.segments
    if msg.kind in LINK_KINDS and msg.visit_id is not None:
        first = literal(now, UTCDateTime())
        db.session.execute(
            update(Visit)
            .where(Visit.id == msg.visit_id)
            .values(
                reminders_sent=Visit.reminders_sent + 1,
                invited_at=case((Visit.invited_at.is_(None), first), else_=Visit.invited_at),
            ),
            execution_options={"synchronize_session": False},
        )
    if early_callbacks:
        # After a crash the callbacks usually came long before us; a live send leaves the rare
        # early callback to the sweep at the end of the pass (delivery.apply_orphan_events).
        db.session.flush()
        delivery.apply_pending_events(msg, now)


def record_rejected(msg: OutboundMessage, err: ProviderError, now: datetime) -> None:
    """The provider refused the text for good: mark it failed and apply what the error code means."""
    msg.status = OutboundStatus.FAILED
    msg.claimed_by = None
    msg.error_code = str(err.code)[:64] if err.code else None
    msg.error_message = str(err)[:500]
    log.warning("message %s refused by the provider: code %s", msg.id, err.code)
    if err.code:
        delivery.apply_error_effects(msg, err.code, now)
