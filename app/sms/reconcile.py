"""Crash reconciliation: rows stuck in `sending` are settled by asking the provider, never re-sent blindly.

A row stays `sending` when its sender died between the claim and recording the SID, or the
provider's answer was lost. After the claim has aged past any live send's timeout, we list
the provider's texts to that number since the claim: if one is ours we adopt its SID,
otherwise the row goes back to `pending` and the next send pass re-checks and sends it.
"""

from __future__ import annotations

import logging
import re
from datetime import datetime, timedelta

from flask import current_app
from sqlalchemy import select

from app.extensions import db
from app.models import OutboundMessage
from app.participants.links import find_link
from app.sms.providers import Accepted, ProviderError, SentRecord, get_provider
from app.sms.texts import LINK_TEMPLATES

log = logging.getLogger(__name__)

TOKEN_IN_BODY = re.compile(r"/s/([A-Za-z0-9_\-]{16,64})")
SKEW = timedelta(minutes=5)


def stuck_after() -> timedelta:
    """How old a claim must be before it is presumed dead: longer than any live send with its retries.

    A live send makes at most MAX_TRIES provider calls, each possibly followed by a two-request
    lookup, all bounded by TWILIO_TIMEOUT, with at most 2 x BACKOFF_CAP of backoff between them.
    """
    from app.sms.sender import BACKOFF_CAP, MAX_TRIES

    timeout = float(current_app.config.get("TWILIO_TIMEOUT") or 15.0)
    longest = MAX_TRIES * (3 * timeout + 2 * BACKOFF_CAP)
    return timedelta(seconds=max(120.0, longest + 60.0))


def matches(msg: OutboundMessage, record: SentRecord, now: datetime, body: str | None = None) -> bool:
    """Whether the provider's `record` is the text of outbox row `msg`.

    Our own reference when the provider keeps one (console); the exact body when we still hold
    it (a retry in the same process); after a crash, link texts are recognised by their token,
    whose hash must be a link of this visit issued since the claim, and other texts by their
    (deterministic) body, rebuilt as of the claim (or `now` for a row never claimed).
    """
    if record.ref is not None:
        return record.ref == str(msg.id)
    if record.body is None:
        return False
    if body is not None:
        return record.body == body
    if msg.template in LINK_TEMPLATES:
        if msg.visit_id is None:
            return False
        since = (msg.claimed_at or datetime.min.replace(tzinfo=record.created_at.tzinfo)) - SKEW
        for token in TOKEN_IN_BODY.findall(record.body):
            link = find_link(token)
            if link is not None and link.visit_id == msg.visit_id and link.created_at >= since:
                return True
        return False
    try:
        from app.sms.sender import build_body

        return record.body == build_body(msg, msg.claimed_at or now)
    except Exception:  # a body we can no longer rebuild is not ours to adopt
        return False


def reconcile_stuck(now: datetime) -> dict[str, int]:
    """Resolve rows stuck in `sending`; commits. Returns counts adopted / released / waiting."""
    from app.sms.delivery import apply_orphan_events
    from app.sms.sender import record_accepted

    orphans = apply_orphan_events(now)
    cutoff = now - stuck_after()
    ids = list(
        db.session.scalars(
            select(OutboundMessage.id).where(
                OutboundMessage.status == "sending", OutboundMessage.claimed_at <= cutoff
            )
        )
    )
    counts = {"adopted": 0, "released": 0, "waiting": 0, "late_callbacks": orphans}
    if not ids:
        return counts
    provider = get_provider()
    try:
        for msg_id in ids:
            msg = db.session.get(OutboundMessage, msg_id)
            if msg is None or msg.status != "sending":
                continue
            outcome = _resolve(msg, provider, now, record_accepted)
            counts[outcome] += 1
            db.session.commit()
    finally:
        provider.close()
    log.info(
        "reconcile: adopted=%d released=%d waiting=%d",
        counts["adopted"],
        counts["released"],
        counts["waiting"],
    )
    return counts


def _resolve(msg: OutboundMessage, provider, now: datetime, record_accepted) -> str:
    if not msg.to_e164:
        return _release(msg, "claim abandoned before a recipient was fixed")
    try:
        records = provider.find_sent(msg.to_e164, (msg.claimed_at or now) - SKEW)
    except ProviderError as err:
        log.warning("reconcile: message %s waits, provider lookup failed (%s)", msg.id, err)
        return "waiting"
    taken = set(
        db.session.scalars(
            select(OutboundMessage.provider_sid).where(
                OutboundMessage.provider_sid.in_([r.sid for r in records])
            )
        )
    )
    for record in records:
        if record.sid not in taken and matches(msg, record, now):
            record_accepted(
                msg, Accepted(record.sid, record.status), msg.claimed_at or now, early_callbacks=True
            )
            log.info("reconcile: message %s adopted provider SID %s", msg.id, record.sid)
            return "adopted"
    return _release(msg, "re-queued after a crash: the provider had no such text")


def _release(msg: OutboundMessage, reason: str) -> str:
    msg.status, msg.claimed_by, msg.claimed_at = "pending", None, None
    msg.error_message = reason
    log.info("reconcile: message %s back to pending (%s)", msg.id, reason)
    return "released"
