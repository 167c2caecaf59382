"""Phone follow-up: recording a call's outcome, and what it changes (texts, REDCap, the participation).

Every outcome is one `CallAttempt` row and one `call.outcome` audit entry, written in the caller's
transaction together with its effects, or refused with `CallRefused` before anything is written:

- callback: reminders for the visit wait until `callback_at` (a send check, `call_send_check`), its
  pending texts are withdrawn, and REDCap's visit status says "call back arranged" (interim);
- refused: the visit gets no more reminders and REDCap's visit status says "refused";
- wrong_number: the number is marked unusable, as an SMS failure would (`app.sms.delivery.mark_phone`);
- stop_texts: the opt-out of a STOP reply (`app.participants.lifecycle.opt_out`, via a coordinator);
- withdrew: the one lifecycle path (`end_participation`, source console: REDCap's enrollment form told);
- no_answer, busy: counted only. reached_done is recorded when the phone questionnaire is accepted.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from flask_babel import gettext as _
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from app import audit
from app.extensions import db
from app.models import (
    CALL_OUTCOMES,
    CallAttempt,
    OutboundMessage,
    Participant,
    PushedVisitStatus,
    StudyStatus,
    Visit,
    VisitStatus,
)
from app.participants import lifecycle
from app.participants.pending_texts import cancel_pending_texts
from app.redcap.push.visit_statuses import queue_status_push
from app.sms.decisions import Decision
from app.sms.delivery import mark_phone

# Outcomes that only count a try: refused once the cap is reached (a person reached is always recorded).
RETRY_OUTCOMES = ("no_answer", "busy", "callback")


class CallRefused(Exception):
    """The outcome cannot be recorded in the visit's current state; `message` says why (HTTP `status`)."""

    def __init__(self, message: str, status: int = 409):
        super().__init__(message)
        self.message = message
        self.status = status


@dataclass(frozen=True)
class CallHistory:
    """What the list shows of a visit's calls: how many, and the latest."""

    attempts: int = 0
    last: CallAttempt | None = None


def histories(visit_ids: list[int]) -> dict[int, CallHistory]:
    """Attempts so far and the latest attempt, per visit, in two queries."""
    if not visit_ids:
        return {}
    counts: dict[int, int] = dict(
        db.session.execute(  # type: ignore[arg-type]  # each Row is a (visit id, count) pair
            select(CallAttempt.visit_id, func.count(CallAttempt.id))
            .where(CallAttempt.visit_id.in_(visit_ids))
            .group_by(CallAttempt.visit_id)
        ).all()
    )
    latest_ids = (
        select(func.max(CallAttempt.id))
        .where(CallAttempt.visit_id.in_(visit_ids))
        .group_by(CallAttempt.visit_id)
    )
    last = {
        a.visit_id: a for a in db.session.scalars(select(CallAttempt).where(CallAttempt.id.in_(latest_ids)))
    }
    return {vid: CallHistory(counts.get(vid, 0), last.get(vid)) for vid in visit_ids}


def history(visit: Visit) -> CallHistory:
    """One visit's call history."""
    return histories([visit.id]).get(visit.id, CallHistory())


def local_to_utc(value: datetime, zone: str) -> datetime:
    """A wall-clock time typed for the participant (naive) as an aware UTC instant."""
    return value.replace(tzinfo=ZoneInfo(zone)).astimezone(ZoneInfo("UTC"))


def check_callable(visit: Visit, now: datetime) -> None:
    """Refuse an outcome for a visit that is not open now or whose participant has left the study."""
    if visit.status != VisitStatus.OPEN or not visit.is_open_at(now):
        raise CallRefused(
            _(
                "The visit is %(status)s, not open: no call outcome can be recorded for it.",
                status=visit.status if visit.status != VisitStatus.OPEN else _("closed"),
            )
        )
    if visit.participant.status != StudyStatus.ACTIVE:
        raise CallRefused(
            _(
                "Participant %(id)s is %(status)s.",
                id=visit.participant.record_id,
                status=visit.participant.status,
            )
        )


def check_callback(visit: Visit, when: datetime | None, now: datetime) -> None:
    """A callback time must be in the future and before the visit's window closes."""
    if when is None:
        raise CallRefused(_("Give the date and time to call back (the participant's local time)."), 400)
    if when <= now:
        raise CallRefused(_("The callback time is in the past."), 400)
    if when >= visit.closes_at:
        zone = ZoneInfo(visit.participant.timezone)
        raise CallRefused(
            _(
                "The callback time is after the visit's window closes (%(closes)s, participant's time).",
                closes=f"{visit.closes_at.astimezone(zone):%Y-%m-%d %H:%M}",
            ),
            400,
        )


def record_outcome(
    visit: Visit,
    outcome: str,
    now: datetime,
    actor: str,
    *,
    note: str | None = None,
    callback_at: datetime | None = None,
    seen_attempts: int | None = None,
    max_attempts: int = 5,
) -> CallAttempt:
    """Record one call about `visit` and apply its effects (see the module docstring); the caller commits.

    `seen_attempts` is the count the coordinator's page showed: when another attempt was recorded since
    (two coordinators on one row), nothing is written and the refusal says what the other one recorded.
    """
    if outcome not in CALL_OUTCOMES or outcome == "reached_done":
        raise CallRefused(_("Unknown call outcome."), 400)
    check_callable(visit, now)
    past = history(visit)
    if seen_attempts is not None and past.attempts != seen_attempts and past.last is not None:
        raise CallRefused(
            _(
                "Someone else recorded a call for this visit meanwhile (%(outcome)s at %(at)s UTC). Nothing "
                "was saved: check the row and record your outcome again if it still applies.",
                outcome=past.last.outcome,
                at=f"{past.last.at:%H:%M}",
            )
        )
    if outcome in RETRY_OUTCOMES and past.attempts >= max_attempts:
        raise CallRefused(
            _("%(n)s call attempts already: the limit for this visit is reached.", n=past.attempts)
        )
    if outcome == "callback":
        check_callback(visit, callback_at, now)
    attempt = _add_attempt(
        visit, outcome, now, actor, note, callback_at if outcome == "callback" else None, past
    )
    _apply(visit, outcome, now, actor, note, callback_at)
    return attempt


def _add_attempt(
    visit: Visit,
    outcome: str,
    now: datetime,
    actor: str,
    note: str | None,
    callback_at: datetime | None,
    past: CallHistory,
) -> CallAttempt:
    attempt = CallAttempt(
        visit_id=visit.id,
        participant_id=visit.participant_id,
        attempt_no=past.attempts + 1,
        actor=actor,
        at=now,
        outcome=outcome,
        note=(note or None) and note[:500],
        callback_at=callback_at,
    )
    try:
        with db.session.begin_nested():
            db.session.add(attempt)
    except IntegrityError:
        raise CallRefused(
            _(
                "Someone else recorded a call for this visit at the same moment. Nothing was saved: check "
                "the row and record your outcome again if it still applies."
            )
        ) from None
    entry = audit.record(
        actor,
        "call.outcome",
        visit=visit,
        reason=attempt.note,
        outcome=outcome,
        attempt=attempt.attempt_no,
        callback_at=callback_at.isoformat() if callback_at else None,
    )
    entry.at = now
    return attempt


def _apply(
    visit: Visit, outcome: str, now: datetime, actor: str, note: str | None, callback_at: datetime | None
) -> None:
    participant = visit.participant
    if outcome == "callback":
        cancel_pending_texts(visit=visit, reason="call back arranged by phone", actor=actor)
        queue_status_push(visit, PushedVisitStatus.CALLBACK, now)
    elif outcome == "refused":
        cancel_pending_texts(visit=visit, reason="refused this visit by phone", actor=actor)
        queue_status_push(visit, PushedVisitStatus.REFUSED, now)
    elif outcome == "wrong_number":
        mark_phone([participant], "unusable", "Coordinator: wrong number (phone call)", now)
    elif outcome == "stop_texts":
        lifecycle.opt_out(
            participant, now, source="coordinator", actor=actor, detail=note or "asked by phone"
        )
    elif outcome == "withdrew":
        lifecycle.end_participation(
            participant,
            StudyStatus.WITHDRAWN,
            now,
            source="console",
            actor=actor,
            reason=note or "withdrew on a call",
        )


def record_reached(visit: Visit, now: datetime, actor: str, note: str | None = None) -> CallAttempt | None:
    """After the phone questionnaire was accepted: count the call (reached, done). Commits; never raises
    for a parallel attempt (the submission is what matters), it retries once with the next number."""
    for _try in range(2):
        past = history(visit)
        try:
            attempt = _add_attempt(visit, "reached_done", now, actor, note, None, past)
            db.session.commit()
            return attempt
        except CallRefused:
            db.session.rollback()
    return None


def reminder_hold(visit_id: int | None, now: datetime) -> Decision | None:
    """Whether a call outcome holds back the visit's reminders at `now`: refused (skip), callback (defer)."""
    if visit_id is None:
        return None
    last = db.session.scalar(
        select(CallAttempt)
        .where(CallAttempt.visit_id == visit_id, CallAttempt.outcome.in_(("callback", "refused")))
        .order_by(CallAttempt.id.desc())
        .limit(1)
    )
    if last is None:
        return None
    if last.outcome == "refused":
        return Decision("skip", "refused this visit on a call")
    if last.callback_at is not None and now < last.callback_at:
        return Decision("defer", "call back arranged: no reminder before then", last.callback_at)
    return None


def call_send_check(
    msg: OutboundMessage, participant: Participant | None, visit: Visit | None, now: datetime
) -> Decision | None:
    """Send check (registered in the factory): no planned reminder to someone a coordinator has reached."""
    if msg.kind != "reminder":
        return None  # a coordinator's own manual text is their decision
    return reminder_hold(msg.visit_id, now)
