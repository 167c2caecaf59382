"""Recognising our own text among the provider's records: by reference, by body, or by its link token.

Used by the live send (an unclear answer) and by crash reconciliation; imports neither."""

from __future__ import annotations

import re
from datetime import datetime, timedelta

from app.models import OutboundMessage
from app.participants.links import find_link
from app.sms.bodies import build_body
from app.sms.providers import ProviderError, SentRecord, SmsProvider
from app.sms.texts import LINK_TEMPLATES

TOKEN_IN_BODY = re.compile(r"/s/([A-Za-z0-9_\-]{16,64})")
SKEW = timedelta(minutes=5)


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
        # A row never claimed has no moment to start from: any link of its visit is its text.
        since = msg.claimed_at - SKEW if msg.claimed_at is not None else None
        for token in TOKEN_IN_BODY.findall(record.body):
            link = find_link(token)
            if link is None or link.visit_id != msg.visit_id:
                continue
            if since is None or link.created_at >= since:
                return True
        return False
    try:
        return record.body == build_body(msg, msg.claimed_at or now)
    except Exception:  # a body we can no longer rebuild is not ours to adopt
        return False


class NotListedYet(ProviderError):
    """The provider's list lacks the text, but it lists texts late: the text may still have been taken."""


def find_match(
    provider: SmsProvider, msg: OutboundMessage, body: str | None, now: datetime
) -> SentRecord | None:
    """The provider's record of this row's text, if it has one (since the claim).

    Raises NotListedYet instead of answering "none" when the provider lists texts only some time after
    taking them (`listing_lag`, Tencent): a text sent seconds ago is then missing whether taken or not,
    and the caller must leave the row to reconciliation rather than send it again.
    """
    since = (msg.claimed_at or now) - timedelta(minutes=5)
    for record in provider.find_sent(msg.to_e164 or "", since):
        if matches(msg, record, now, body):
            return record
    if provider.listing_lag > timedelta(0):
        raise NotListedYet(
            f"{provider.name} lists a text only once its delivery report exists, so its absence is unknown"
        )
    return None
