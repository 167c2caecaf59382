"""Delivery tracking: Twilio's status callbacks become outbox statuses, and error codes change what we send.

21610 (the recipient unsubscribed at the carrier) opts the participant out; 21211 (invalid
number) and 30006 (landline) mark the number unusable; 30003 / 30005 (unreachable, unknown
handset) are tolerated once — the next reminder slot tries again — and a second one in a row
flags the number for coordinators. Callbacks may arrive out of order or before we recorded the
SID; every distinct one is kept (a replayed callback is stored once), and statuses only move forward.
Aliyun and Tencent codes are strings ("isv.MOBILE_NUMBER_ILLEGAL"); they map onto the same effects.
"""

from __future__ import annotations

import logging
import re
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import select, update
from sqlalchemy.engine import CursorResult

from app import audit
from app.extensions import db
from app.models import OutboundMessage, OutboundStatus, Participant, SmsStatusEvent
from app.participants.pending_texts import cancel_pending_texts

log = logging.getLogger(__name__)

# Twilio's message statuses, in our vocabulary (our "sending" means "claimed", so Twilio's is "queued").
TWILIO_STATUS = {
    "accepted": "queued",
    "scheduled": "queued",
    "queued": "queued",
    "sending": "queued",
    "sent": "sent",
    "delivered": "delivered",
    "read": "delivered",
    "undelivered": "undelivered",
    "failed": "failed",
    "canceled": "failed",
}
RANK = {"pending": 0, "sending": 1, "queued": 2, "sent": 3, "delivered": 4, "undelivered": 4, "failed": 4}
ERROR_TEXT: dict[int | str, str] = {
    21211: "invalid 'To' number",
    21610: "recipient unsubscribed (replied STOP at the carrier)",
    30003: "unreachable destination handset",
    30005: "unknown destination handset",
    30006: "landline or unreachable carrier",
}
UNREACHABLE = (30003, 30005)
# Provider codes (Twilio numbers, Aliyun/Tencent strings) by effect on the participant's number.
NUMBER_INVALID = frozenset({21211, "isv.MOBILE_NUMBER_ILLEGAL", "InvalidParameterValue.IncorrectPhoneNumber"})
NUMBER_UNUSABLE = frozenset({30006})
UNSUBSCRIBED = frozenset({21610, "FailedOperation.PhoneNumberInBlacklist"})
ERROR_TEXT.update(
    {
        "isv.MOBILE_NUMBER_ILLEGAL": "invalid mobile number",
        "InvalidParameterValue.IncorrectPhoneNumber": "invalid mobile number",
        "FailedOperation.PhoneNumberInBlacklist": "number on the provider's blacklist (unsubscribed)",
    }
)
_CODE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:\-]{0,63}$")


def error_code_value(raw: str | int | None) -> int | str | None:
    """A provider error code as we keep it: Twilio's digits as an int, other codes as a short string."""
    text = str(raw).strip() if raw is not None else ""
    if not text or not _CODE.match(text):
        return None
    return int(text) if text.isdigit() else text


PARTICIPANT_KINDS = ("reminder", "manual", "reply")


def our_status(provider_status: str | None) -> str | None:
    """Our status for a provider status (None for statuses we do not track, e.g. inbound)."""
    return TWILIO_STATUS.get((provider_status or "").lower())


def _insert_event(sid: str, status: str, code: str, now: datetime) -> int | None:
    """Store a callback unless the same (SID, status, error code) is stored already; its id, or None.

    INSERT … ON CONFLICT DO NOTHING on both databases, so concurrent identical callbacks store one row
    without either of them failing.
    """
    if db.engine.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert  # type: ignore[assignment]  # same on-conflict API
    statement = (
        insert(SmsStatusEvent)
        .values(provider_sid=sid, status=status, error_code=code, received_at=now, applied=False)
        .on_conflict_do_nothing(index_elements=["provider_sid", "status", "error_code"])
        .returning(SmsStatusEvent.id)
    )
    return db.session.execute(statement).scalar()


def record_callback(sid: str, provider_status: str, error_code: str | None, now: datetime) -> bool:
    """Store a status callback and apply it to its outbox row if known; commits. Returns whether applied.

    A replay of a callback already stored (same SID, status and error code) changes nothing.
    """
    value = error_code_value(error_code)
    code = "" if value is None else str(value)
    event_id = _insert_event(sid, provider_status[:20], code, now)
    if event_id is None:
        db.session.commit()
        return False
    query = select(OutboundMessage).where(OutboundMessage.provider_sid == sid)
    if db.engine.dialect.name == "postgresql":
        query = query.with_for_update()  # two callbacks of one text at once must not interleave
    msg = db.session.scalar(query)
    if msg is not None:
        apply_status(msg, provider_status, code or None, now)
        db.session.execute(update(SmsStatusEvent).where(SmsStatusEvent.id == event_id).values(applied=True))
    db.session.commit()
    return msg is not None


def record_callbacks(reports: list[tuple[str, str, str | None]], now: datetime, chunk: int = 500) -> int:
    """Store and apply many (SID, status, error code) reports at once (a provider's batch push); commits.

    The same rules as `record_callback`, one transaction per `chunk`: a replayed report is stored once,
    one for a SID not recorded yet waits for it (apply_pending_events / apply_orphan_events).
    Returns how many were applied to a known text.
    """
    applied = 0
    for start in range(0, len(reports), chunk):
        new: dict[str, list[tuple[int, str, str | None]]] = {}
        for sid, provider_status, error_code in reports[start : start + chunk]:
            value = error_code_value(error_code)
            code = "" if value is None else str(value)
            event_id = _insert_event(sid, provider_status[:20], code, now)
            if event_id is not None:
                new.setdefault(sid, []).append((event_id, provider_status, code or None))
        if new:
            query = select(OutboundMessage).where(OutboundMessage.provider_sid.in_(list(new)))
            if db.engine.dialect.name == "postgresql":
                query = query.with_for_update()
            for msg in db.session.scalars(query).all():
                # provider_sid is one of new's keys (the query above); code here is the stored str | None.
                for event_id, provider_status, code in new[cast(str, msg.provider_sid)]:  # type: ignore[assignment]
                    apply_status(msg, provider_status, code, now)
                    db.session.execute(
                        update(SmsStatusEvent).where(SmsStatusEvent.id == event_id).values(applied=True)
                    )
                    applied += 1
        db.session.commit()
    return applied


def apply_pending_events(msg: OutboundMessage, now: datetime) -> None:
    """Apply callbacks that arrived before the SID was recorded (a fast provider beats our commit)."""
    if not msg.provider_sid:
        return
    events = db.session.scalars(
        select(SmsStatusEvent)
        .where(SmsStatusEvent.provider_sid == msg.provider_sid, SmsStatusEvent.applied.is_(False))
        .order_by(SmsStatusEvent.id)
    ).all()
    for event in events:
        apply_status(msg, event.status, event.error_code or None, now)
        event.applied = True


def apply_orphan_events(now: datetime) -> int:
    """Apply callbacks that lost the race with their SID's commit (both sides missed each other); commits."""
    rows = db.session.execute(
        select(SmsStatusEvent, OutboundMessage)
        .join(OutboundMessage, OutboundMessage.provider_sid == SmsStatusEvent.provider_sid)
        .where(SmsStatusEvent.applied.is_(False), SmsStatusEvent.received_at > now - timedelta(days=2))
        .order_by(SmsStatusEvent.id)
    ).all()
    for event, msg in rows:
        apply_status(msg, event.status, event.error_code or None, now)
        event.applied = True
    db.session.commit()
    return len(rows)


def apply_status(msg: OutboundMessage, provider_status: str, error_code: str | None, now: datetime) -> None:
    """Move `msg` forward to the reported status (never back), keeping the error code.

    One conditional UPDATE decides, so two callbacks (or a callback and a late sweep) racing on
    the same row cannot put an older status over a newer one on either database.
    """
    new = our_status(provider_status)
    if new is None:
        return
    lower = [status for status, rank in RANK.items() if rank < RANK[new]]
    values: dict[str, Any] = {"status": new, "updated_at": now}
    code = error_code_value(error_code)
    if new in (OutboundStatus.UNDELIVERED, OutboundStatus.FAILED):
        values["error_code"] = error_code
        values["error_message"] = ERROR_TEXT.get(code or 0, f"delivery failed ({provider_status})")
    changed = cast(
        "CursorResult[Any]",  # an UPDATE's result, which has the row count
        db.session.execute(
            update(OutboundMessage)
            .where(OutboundMessage.id == msg.id, OutboundMessage.status.in_(lower))
            .values(**values),
            execution_options={"synchronize_session": False},
        ),
    ).rowcount
    db.session.expire(msg, ["status", "error_code", "error_message", "updated_at"])
    if changed != 1 or new not in (OutboundStatus.UNDELIVERED, OutboundStatus.FAILED):
        return
    if code:
        apply_error_effects(msg, code, now)
    elif msg.kind == "redflag_alert":
        log.error("on-call alert %s was not delivered", msg.id)


def _participants_on(msg: OutboundMessage) -> list[Participant]:
    """Participants this text reached through their own number (not staff alerts about them)."""
    if msg.kind not in PARTICIPANT_KINDS or not msg.to_e164:
        return []
    return list(db.session.scalars(select(Participant).where(Participant.phone_e164 == msg.to_e164)))


def apply_error_effects(msg: OutboundMessage, code: int | str, now: datetime) -> None:
    """What an error code means for the participant's number; audited, pending texts withdrawn."""
    if msg.kind == "redflag_alert":
        log.error("on-call alert %s failed with code %s: check ONCALL_PHONES", msg.id, code)
        return
    people = _participants_on(msg)
    if not people:
        return
    code = error_code_value(code) or code
    if code in UNSUBSCRIBED:
        from app.sms.inbound import opt_out

        opt_out(people, now, actor=f"{_provider(code)}:{code}", source=f"provider error {code}")
    elif code in NUMBER_INVALID or code in NUMBER_UNUSABLE:
        status = "invalid" if code in NUMBER_INVALID else "unusable"
        mark_phone(people, status, f"{_provider(code).capitalize()} {code}: {ERROR_TEXT[code]}", now)
    elif code in UNREACHABLE:
        _unreachable(msg, people, code, now)


def _provider(code: int | str) -> str:
    """Whose code it is, for audit actors and reasons ("twilio:21610", "aliyun:isv.…")."""
    if isinstance(code, int):
        return "twilio"
    return "aliyun" if code.startswith("isv.") else "tencent"


def _unreachable(msg: OutboundMessage, people: list[Participant], code: int, now: datetime) -> None:
    previous = db.session.scalar(
        select(OutboundMessage)
        .where(
            OutboundMessage.to_e164 == msg.to_e164,
            OutboundMessage.kind.in_(PARTICIPANT_KINDS),
            OutboundMessage.id != msg.id,
            OutboundMessage.provider_sid.is_not(None),
            OutboundMessage.sent_at <= (msg.sent_at or now),
        )
        .order_by(OutboundMessage.sent_at.desc(), OutboundMessage.id.desc())
        .limit(1)
    )
    if previous is not None and error_code_value(previous.error_code) in UNREACHABLE:
        mark_phone(people, "unusable", f"Twilio {code}: unreachable on two texts in a row", now)
        return
    for person in people:
        audit.record(
            "twilio:" + str(code),
            "sms.unreachable",
            participant=person,
            reason=f"{ERROR_TEXT[code]}; the next reminder slot tries again",
        )


def mark_phone(people: list[Participant], status: str, reason: str, now: datetime) -> None:
    """Stop texting a number: phone status set, coordinators see why, pending texts withdrawn."""
    for person in people:
        if person.phone_status == status:
            continue
        person.phone_status = status
        person.phone_error = reason[:200]
        audit.record(
            "system:sms", "sms.phone_flagged", participant=person, reason=reason, phone_status=status
        )
        cancel_pending_texts(person, reason=f"phone {status}", actor="system:sms")
        log.warning("participant %s: phone marked %s (%s)", person.record_id, status, reason)
