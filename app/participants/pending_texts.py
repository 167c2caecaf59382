"""The one rule for withdrawing unsent texts when a participant's or a visit's course changes."""

from __future__ import annotations

from typing import Any, cast

from sqlalchemy import update
from sqlalchemy.engine import CursorResult

from app import audit
from app.extensions import db
from app.models import OutboundMessage, OutboundStatus, Participant, Visit
from app.models.messaging import PARTICIPANT_KINDS


def cancel_pending_texts(
    participant: Participant | None = None,
    visit: Visit | None = None,
    *,
    reason: str,
    actor: str | None = None,
) -> int:
    """Cancel the participant's (or one visit's) texts that no sender has claimed yet; returns how many.

    Withdrawn: rows still `pending`, of the kinds addressed to the participant (invitations and
    reminders, manual reminders, replies), with `reason` kept on the row. Left as they are: rows in
    `sending` or later, which may already be with the provider (the send-time checks skip a claimed one
    that no longer applies), and on-call alerts or operator tests, which go to staff numbers.
    Audited as `sms.cancelled` when `actor` is given and something was cancelled (a visit change passes
    no actor: its own audit entry says why). Adds to the session; the caller commits.
    """
    if participant is None and visit is None:
        raise ValueError("cancel_pending_texts needs a participant or a visit")
    if visit is not None and visit.id is None:
        return 0  # not flushed yet: no text can point at it
    stmt = update(OutboundMessage).where(
        OutboundMessage.status == OutboundStatus.PENDING, OutboundMessage.kind.in_(PARTICIPANT_KINDS)
    )
    if participant is not None:
        stmt = stmt.where(OutboundMessage.participant_id == participant.id)
    if visit is not None:
        stmt = stmt.where(OutboundMessage.visit_id == visit.id)
    # An UPDATE gives a CursorResult, which has the row count.
    stmt = stmt.values(status=OutboundStatus.CANCELLED, error_message=reason[:500])
    result = cast("CursorResult[Any]", db.session.execute(stmt))
    count = result.rowcount or 0
    if count and actor is not None:
        audit.record(actor, "sms.cancelled", participant=participant, visit=visit, reason=reason, count=count)
    return count
