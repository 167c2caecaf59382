"""Send-time checks: the facts re-read just before a text leaves, and what to do about them.

Planning happened earlier; by now the participant may have said STOP, been withdrawn, or the
visit may be done. Each check answers send, skip (with a reason kept on the row) or defer
(wait until a later moment, e.g. the next morning's send window).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from flask import current_app
from sqlalchemy import func, select

from app.extensions import db
from app.models import OutboundMessage, Participant, Visit
from app.models.messaging import LINK_KINDS, PARTICIPANT_KINDS
from app.redcap.freshness import freshness_check
from app.schedule import SendWindow, next_send_moment
from app.schedule.engine import local_midnight
from app.sms.decisions import SEND, Decision

MANUAL_MAX_DELAY = timedelta(hours=1)


SendCheck = Callable[[OutboundMessage, Participant | None, Visit | None, datetime], Decision | None]
_extra_checks: list[SendCheck] = []


def register_send_check(check: SendCheck) -> None:
    """Add a check run just before each participant-facing text, after the freshness check.

    Registered by name in `create_app` (e.g. `app.participants.calls.call_send_check`). A check returns
    None to let the text go, Decision("skip", reason) to drop it, or Decision("defer", reason, until).
    """
    if check not in _extra_checks:
        _extra_checks.append(check)


def _window() -> SendWindow:
    return SendWindow.parse(current_app.config["SMS_SEND_WINDOW"])


def in_window(zone: str, now: datetime) -> bool:
    return _window().contains(now.astimezone(ZoneInfo(zone)).time())


def decide(
    msg: OutboundMessage, participant: Participant | None, visit: Visit | None, now: datetime
) -> Decision:
    """Whether `msg` may go out at `now`, from the database's current facts."""
    if msg.kind not in PARTICIPANT_KINDS:
        # On-call alerts and operator tests go to staff numbers at any hour.
        return SEND if msg.to_e164 else Decision("skip", "no recipient number")
    if participant is None:
        return Decision("skip", "no participant")
    reason = participant.sms_block_reason()
    if reason:
        return Decision("skip", f"blocked at send time: {reason}")
    if msg.kind in LINK_KINDS:
        if visit is None:
            return Decision("skip", "no visit")
        if visit.is_final:
            return Decision("skip", f"stale: visit {visit.status}")
        if msg.schedule_version != visit.schedule_version:
            return Decision("skip", "stale: visit rescheduled")
        if now < visit.opens_at:
            return Decision("defer", "visit not open yet", visit.opens_at)
        if not visit.is_open_at(now):
            return Decision("skip", "stale: visit window closed")
        if msg.kind == "manual" and now - msg.due_at > MANUAL_MAX_DELAY:
            return Decision("skip", "stale: manual reminder not sent within an hour")
    if not in_window(participant.timezone, now):
        if msg.kind == "manual" and msg.created_at and not in_window(participant.timezone, msg.created_at):
            pass  # queued outside the window: the coordinator confirmed it (queue_manual_reminder)
        elif msg.kind == "manual":
            return Decision("skip", "outside the send window; queue it again")
        else:
            until = next_send_moment(now, ZoneInfo(participant.timezone), _window())
            if visit is not None and until >= visit.closes_at:
                return Decision("skip", "stale: no send window left before the visit closes")
            return Decision("defer", "outside the local send window", until)
    if msg.kind == "reminder":
        decision = one_a_day(msg, participant, visit, now)
        if decision is not None:
            return decision
    decision = freshness_check(msg, participant, visit, now)  # stale REDCap facts: re-read first
    if decision is not None and decision.action != "send":
        return decision
    for check in _extra_checks:
        decision = check(msg, participant, visit, now)
        if decision is not None and decision.action != "send":
            return decision
    return SEND


def one_a_day(
    msg: OutboundMessage, participant: Participant, visit: Visit | None, now: datetime
) -> Decision | None:
    """At most one text a local day from the reminder plan (China's carriers punish more): wait a day."""
    zone = ZoneInfo(participant.timezone)
    today = now.astimezone(zone).date()
    start = local_midnight(today, zone)
    sent_today = db.session.scalar(
        select(func.count())
        .select_from(OutboundMessage)
        .where(
            OutboundMessage.participant_id == participant.id,
            OutboundMessage.kind == "reminder",
            OutboundMessage.id != msg.id,
            OutboundMessage.sent_at >= start,
            OutboundMessage.sent_at <= now,
        )
    )
    if not sent_today:
        return None
    until = next_send_moment(local_midnight(today + timedelta(days=1), zone), zone, _window())
    if visit is not None and until >= visit.closes_at:
        return Decision("skip", "stale: already texted today and no later day before the visit closes")
    return Decision("defer", "one reminder a day: already texted today", until)
