"""Crash reconciliation: rows stuck in `sending` are settled by asking the provider, never re-sent blindly.

A row stays `sending` when its sender died between the claim and recording the SID, or the
provider's answer was lost. After the claim has aged past any live send's timeout, we list
the provider's texts to that number since the claim: if one is ours we adopt its SID,
otherwise the row goes back to `pending` and the next send pass re-checks and sends it.

Some providers list a text only some time after taking it (Tencent's status pull shows a text once
its delivery report exists: `SmsProvider.listing_lag`, TENCENT_SMS_STATUS_LAG). For them "not found"
is not an answer until the claim is older than the stuck-timeout plus that lag: the row waits.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta

from flask import current_app
from sqlalchemy import select

from app.extensions import db
from app.models import OutboundMessage, OutboundStatus
from app.sms.matching import SKEW, matches
from app.sms.outcomes import record_accepted
from app.sms.providers import Accepted, ProviderError, get_provider
from app.sms.providers.base import SmsProvider
from app.sms.transmit import BACKOFF_CAP, MAX_TRIES

log = logging.getLogger(__name__)


# Each backend's request timeout (seconds); console has none of its own and keeps the old default.
TIMEOUT_SETTINGS = {
    "twilio": "TWILIO_TIMEOUT",
    "aliyun": "ALIYUN_SMS_TIMEOUT",
    "tencent": "TENCENT_SMS_TIMEOUT",
}


def stuck_after() -> timedelta:
    """How old a claim must be before it is presumed dead: longer than any live send with its retries.

    A live send makes at most MAX_TRIES provider calls, each possibly followed by a two-request
    lookup, all bounded by the backend's timeout (TWILIO_TIMEOUT, ALIYUN_SMS_TIMEOUT,
    TENCENT_SMS_TIMEOUT), with at most 2 x BACKOFF_CAP of backoff between them.
    """
    config = current_app.config
    setting = TIMEOUT_SETTINGS.get(config.get("SMS_BACKEND") or "")
    timeout = float((config.get(setting) if setting else None) or 15.0)
    longest = MAX_TRIES * (3 * timeout + 2 * BACKOFF_CAP)
    return timedelta(seconds=max(120.0, longest + 60.0))


def absent_after(provider: SmsProvider) -> timedelta:
    """How old a claim must be before the provider's "not found" is believed: past the lag of its listing."""
    return stuck_after() + provider.listing_lag


def reconcile_stuck(now: datetime) -> dict[str, int]:
    """Resolve rows stuck in `sending`; commits. Returns counts adopted / released / waiting."""
    from app.sms.delivery import apply_orphan_events

    orphans = apply_orphan_events(now)
    cutoff = now - stuck_after()
    ids = list(
        db.session.scalars(
            select(OutboundMessage.id).where(
                OutboundMessage.status == OutboundStatus.SENDING, OutboundMessage.claimed_at <= cutoff
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
            if msg is None or msg.status != OutboundStatus.SENDING:
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


def _resolve(
    msg: OutboundMessage,
    provider: SmsProvider,
    now: datetime,
    record_accepted: Callable[..., None],
) -> str:
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
    if msg.claimed_at is not None and msg.claimed_at > now - absent_after(provider):
        # The provider may hold the text without listing it yet: unknown, not absent. Ask again later.
        msg.error_message = (
            f"sender lost; {provider.name} does not list the text yet, which proves nothing until "
            f"{(msg.claimed_at + absent_after(provider)).isoformat(timespec='seconds')}"
        )[:500]
        return "waiting"
    return _release(msg, "re-queued after a crash: the provider had no such text")


def _release(msg: OutboundMessage, reason: str) -> str:
    msg.status, msg.claimed_by, msg.claimed_at = OutboundStatus.PENDING, None, None
    msg.error_message = reason
    log.info("reconcile: message %s back to pending (%s)", msg.id, reason)
    return "released"
