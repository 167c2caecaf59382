"""Texts participants send to the study number: opt-out and opt-in keywords, HELP, and everything else.

Keywords follow Twilio's rules (the whole message, case-insensitive, trimmed), plus the
Chinese 退订 / TD that carriers in China use. Other texts are kept for coordinators and
answered at most once per visit, with the open visit's link or a short help line. A webhook
delivered twice (same MessageSid) is processed once.
"""

from __future__ import annotations

import logging
import re
import unicodedata
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import cast
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from app.extensions import db
from app.models import InboundMessage, OutboundMessage, OutboundStatus, Participant, Visit
from app.participants import lifecycle
from app.participants.links import issue_link, link_url
from app.sms.providers import mask_number
from app.sms.texts import render

log = logging.getLogger(__name__)

# TD, T and N are the unsubscribe replies China's carriers and providers (Aliyun, Tencent) recognise.
STOP_WORDS = frozenset({"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "退订", "TD", "T", "N"})
START_WORDS = frozenset({"START", "UNSTOP", "YES"})
HELP_WORDS = frozenset({"HELP", "INFO", "帮助"})
_CJK = re.compile(r"[\u3400-\u9fff]")
_TRIM = " \t\r\n.!。！,，"


@dataclass(frozen=True)
class InboundResult:
    """What the webhook answers: a reply text (TwiML), or None for an empty response."""

    reply: str | None
    keyword: str | None
    duplicate: bool = False


def classify(body: str) -> str | None:
    """ "stop", "start", "help" or None for any other text."""
    # NFKC: full-width ＴＤ or ＳＴＯＰ from a Chinese keyboard reads as TD / STOP.
    word = unicodedata.normalize("NFKC", body or "").strip(_TRIM).upper()
    if word in STOP_WORDS:
        return "stop"
    if word in START_WORDS:
        return "start"
    if word in HELP_WORDS:
        return "help"
    return None


def _language(people: list[Participant], body: str) -> str:
    if people:
        return people[0].language
    return "zh" if _CJK.search(body or "") or (body or "").strip(_TRIM).upper() == "TD" else "en"


def handle_inbound(
    sid: str, from_: str, to: str, body: str, now: datetime, *, answer_inline: bool = True
) -> InboundResult:
    """Store and act on one incoming text; commits. Returns the reply to send back, if any.

    `answer_inline`: the webhook's answer carries the reply (Twilio's TwiML). Without it (Aliyun,
    Tencent) a reply to another text is queued in the outbox and sent by the send pass, if its kind
    has a template.
    """
    people = list(db.session.scalars(select(Participant).where(Participant.phone_e164 == from_)))
    keyword = classify(body)
    inbound = InboundMessage(
        provider_sid=sid,
        participant_id=people[0].id if people else None,
        from_e164=from_,
        body=(body or "")[:1600],
        keyword=keyword,
        received_at=now,
    )
    try:
        with db.session.begin_nested():
            db.session.add(inbound)
    except IntegrityError:
        db.session.rollback()
        log.info("inbound %s already processed; ignoring the repeat", sid)
        return InboundResult(None, keyword, duplicate=True)
    language = _language(people, body)
    if keyword == "stop":
        word = "replied " + (body or "").strip()[:20]
        opt_out(people, now, actor="participant:sms", source=word, via="reply")
        reply: str | None = render("stop_confirm", language)
    elif keyword == "start":
        opt_in(people, now)
        reply = render("start_confirm", language)
    elif keyword == "help":
        reply = render("help", language)
    else:
        reply = _answer_other(inbound, people, language, now, answer_inline)
    if keyword:
        inbound.handled_at, inbound.handled_by = now, "system:sms"
    db.session.commit()
    log.info("inbound %s from %s: %s", sid, mask_number(from_), keyword or "text for coordinators")
    return InboundResult(reply, keyword)


def opt_out(
    people: list[Participant],
    now: datetime,
    actor: str,
    source: str,
    via: lifecycle.OptOutSource = "provider",
) -> None:
    """Stop texting everyone on a number: `lifecycle.opt_out` for each. `source` is the audit's reason
    (the reply's word, the provider's code); `via` how it arrived (a provider's code unless said)."""
    for person in people:
        lifecycle.opt_out(person, now, source=via, actor=actor, detail=source)


def opt_in(people: list[Participant], now: datetime) -> None:
    """Texts allowed again after a START reply (`lifecycle.opt_in`); consent and study status still apply."""
    for person in people:
        lifecycle.opt_in(person, now, source="reply", actor="participant:sms")


def _answer_other(
    inbound: InboundMessage, people: list[Participant], language: str, now: datetime, inline: bool = True
) -> str | None:
    """Once per open visit: the link (or, with no open visit, a help line once a day); else silence."""
    if not people:
        earlier = db.session.scalar(
            select(func.count())
            .select_from(InboundMessage)
            .where(
                InboundMessage.from_e164 == inbound.from_e164,
                InboundMessage.id != inbound.id,
                InboundMessage.received_at > now - timedelta(days=1),
            )
        )
        return None if earlier else render("reply_help", language)
    person = people[0]
    if person.opted_out:
        return None  # the carrier would refuse it, and they asked for silence
    visit = next((v for v in person.visits if v.is_open_at(now)), None)
    if visit is not None and person.sms_block_reason() is None:
        key, slot, template = f"reply:visit:{visit.id}", "reply", "reply_link"
    else:
        day = now.astimezone(ZoneInfo(person.timezone)).date().isoformat()
        key, slot, template, visit = f"reply:participant:{person.id}:{day}", None, "reply_help", None
    row = OutboundMessage(
        dedupe_key=key,
        kind="reply",
        participant_id=person.id,
        visit_id=visit.id if visit else None,
        slot=slot,
        to_e164=person.phone_e164,
        language=language,
        template=template,
        status=OutboundStatus.SENT
        if inline
        else OutboundStatus.PENDING,  # sent as the TwiML answer, or by the send pass
        due_at=now,
        sent_at=now if inline else None,
        created_by="system:inbound",
        created_at=now,
    )
    try:
        with db.session.begin_nested():
            db.session.add(row)
    except IntegrityError:
        return None  # already answered for this visit (or today)
    if not inline:
        return None
    if template == "reply_link":
        # "reply_link" is chosen only with an open visit.
        return render(template, language, link=link_url(issue_link(cast(Visit, visit), now)))
    return render(template, language)
