"""One text to the provider: the call with its short in-call retries, and what an unclear answer means."""

from __future__ import annotations

import logging
import random
import time
from datetime import datetime, timedelta

from flask import current_app

from app.backoff import backoff_ceiling
from app.extensions import db
from app.models import OutboundMessage, OutboundStatus
from app.sms import carriers, concurrency, ratelimit
from app.sms.bodies import status_callback_url
from app.sms.matching import find_match
from app.sms.message import Message
from app.sms.outcomes import record_accepted, record_rejected
from app.sms.providers import Accepted, ProviderError, SmsProvider

log = logging.getLogger(__name__)

MAX_TRIES = 4
BACKOFF_BASE = 0.5  # seconds; doubled per try, plus up to as much again of jitter
BACKOFF_CAP = 8.0
RETRY_LATER = timedelta(minutes=1)


def transmit(msg: OutboundMessage, message: Message, provider: SmsProvider, now: datetime) -> str:
    """Call the provider with retries; records the outcome and commits.

    Returns sent/failed/retry/unknown, or deferred (a frequency limit) / halted (sending stopped).
    """
    body = message.body
    rate = float(current_app.config["SMS_RATE_PER_SECOND"])
    callback = status_callback_url()
    for attempt in range(MAX_TRIES):
        if provider.rate_limited:
            ratelimit.wait_turn(rate)
        try:
            with concurrency.provider_call():
                accepted = provider.send_message(
                    msg.to_e164 or "", message, ref=str(msg.id), status_callback=callback
                )
        except ProviderError as err:
            if err.halt or err.defer:
                return carriers.hold_back(msg, err, now)
            if not err.retryable:
                record_rejected(msg, err, now)
                db.session.commit()
                return "failed"
            if err.ambiguous:
                try:
                    found = find_match(provider, msg, body, now)
                except ProviderError:
                    msg.error_message = f"provider unreachable after an unclear send ({err}); reconcile"[:500]
                    db.session.commit()
                    return "unknown"  # stays `sending`: reconcile decides later, never a blind re-send
                if found is not None:
                    record_accepted(msg, Accepted(found.sid, found.status), now)
                    db.session.commit()
                    return "sent"
            log.warning("message %s: provider busy (%s), try %d of %d", msg.id, err, attempt + 1, MAX_TRIES)
            time.sleep(backoff_ceiling(attempt + 1, BACKOFF_BASE, BACKOFF_CAP) * (1 + random.random()))
            continue
        record_accepted(msg, accepted, now)
        db.session.commit()
        return "sent"
    # Not taken (429) or verified absent (5xx): safe to try again on a later pass.
    msg.status, msg.claimed_by, msg.claimed_at = OutboundStatus.PENDING, None, None
    msg.due_at = now + RETRY_LATER
    msg.error_message = "provider unavailable; will retry"
    db.session.commit()
    return "retry"
