"""The call list: every visit that needs a person on the phone, most urgent first, with why.

A visit is on the list when it is open with no answer and at least one of: its window closes soon,
texts cannot reach the participant (no consent, no usable number, opted out but still in the study,
the latest text undelivered), or a promised callback is due today. A visit whose answers raised a red
flag nobody acknowledged is on it too (call the participant, then acknowledge). Order: callbacks due
now, red flags, callbacks later today, then the window closing soonest; rows whose attempts reached
CALL_MAX_ATTEMPTS go last. A visit the participant refused, or with a callback on a later day, is off.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import and_, func, select

from app.extensions import db
from app.models import CallAttempt, OutboundMessage, Participant, StudyStatus, Submission, Visit, VisitStatus
from app.models.messaging import NOT_DELIVERED_STATUSES, SENT_STATUSES
from app.participants.calls import CallHistory, histories

CLOSING_SOON = timedelta(days=3)
LIMIT = 500
REASONS = ("callback", "red_flag", "closing", "undelivered", "no_consent", "unusable", "opted_out")


@dataclass
class CallRow:
    """One row: the visit, its participant, why it is listed, and its calls so far."""

    visit: Visit
    participant: Participant
    reasons: list[str]
    days_left: int
    calls: CallHistory
    capped: bool = False
    callback_at: datetime | None = None
    submission_id: int | None = None
    sort_key: tuple[Any, ...] = field(default=(), repr=False)

    @property
    def can_record(self) -> bool:
        """Outcomes are recorded for open visits; a red-flag row is acknowledged on the participant page."""
        return self.submission_id is None


def _local_today(participant: Participant, now: datetime) -> date:
    return now.astimezone(ZoneInfo(participant.timezone)).date()


def _undelivered(participant_ids: list[int]) -> set[int]:
    """Participants whose latest text that reached the provider came back undelivered or failed."""
    if not participant_ids:
        return set()
    latest = (
        select(OutboundMessage.participant_id, func.max(OutboundMessage.id).label("last_id"))
        .where(
            OutboundMessage.participant_id.in_(participant_ids),
            OutboundMessage.kind.in_(("reminder", "manual", "reply")),
            OutboundMessage.status.in_(SENT_STATUSES),
        )
        .group_by(OutboundMessage.participant_id)
        .subquery()
    )
    rows = db.session.execute(
        select(OutboundMessage.participant_id)
        .join(latest, and_(latest.c.last_id == OutboundMessage.id))
        .where(OutboundMessage.status.in_(NOT_DELIVERED_STATUSES))
    ).all()
    return {r[0] for r in rows}


def _text_reasons(participant: Participant, undelivered: set[int]) -> list[str]:
    if participant.opted_out:
        return ["opted_out"]
    if participant.phone_status != "ok" or not participant.phone_e164:
        return ["unusable"]
    if not participant.sms_consent:
        return ["no_consent"]
    return ["undelivered"] if participant.id in undelivered else []


def build_call_list(now: datetime, max_attempts: int, reason: str | None = None) -> list[CallRow]:
    """The call list at `now`, optionally only the rows with one reason."""
    open_rows = db.session.execute(
        select(Visit, Participant)
        .join(Participant, Visit.participant_id == Participant.id)
        .outerjoin(Submission, Submission.visit_id == Visit.id)
        .where(
            Participant.status == StudyStatus.ACTIVE,
            Visit.status == VisitStatus.OPEN,
            Visit.opens_at <= now,
            Visit.closes_at > now,
            Submission.id.is_(None),
        )
        .order_by(Visit.closes_at)
        .limit(LIMIT)
    ).all()
    flagged = db.session.execute(
        select(Visit, Participant, Submission.id)
        .join(Participant, Visit.participant_id == Participant.id)
        .join(Submission, Submission.visit_id == Visit.id)
        .where(Submission.red_flag.is_(True), Submission.red_flag_acknowledged_at.is_(None))
        .order_by(Submission.submitted_at)
        .limit(LIMIT)
    ).all()
    calls = histories([v.id for v, _p in open_rows] + [v.id for v, _p, _s in flagged])
    undelivered = _undelivered([p.id for _v, p in open_rows])
    rows: list[CallRow] = []
    for visit, participant in open_rows:
        row = _open_row(
            visit, participant, calls.get(visit.id, CallHistory()), undelivered, now, max_attempts
        )
        if row is not None:
            rows.append(row)
    for visit, participant, submission_id in flagged:
        today = _local_today(participant, now)
        rows.append(
            CallRow(
                visit,
                participant,
                ["red_flag"],
                (visit.window_end - today).days,
                calls.get(visit.id, CallHistory()),
                submission_id=submission_id,
                sort_key=(1, visit.closes_at),
            )
        )
    if reason:
        rows = [r for r in rows if reason in r.reasons]
    rows.sort(key=lambda r: r.sort_key)
    return rows


def _open_row(
    visit: Visit,
    participant: Participant,
    calls: CallHistory,
    undelivered: set[int],
    now: datetime,
    max_attempts: int,
) -> CallRow | None:
    last: CallAttempt | None = calls.last
    today = _local_today(participant, now)
    if last is not None and last.outcome == "refused":
        return None
    reasons: list[str] = []
    bucket = 3
    callback_at = last.callback_at if last is not None and last.outcome == "callback" else None
    if callback_at is not None:
        callback_day = callback_at.astimezone(ZoneInfo(participant.timezone)).date()
        if callback_at <= now:
            reasons.append("callback")
            bucket = 0  # a promise made to the participant: first
        elif callback_day == today:
            reasons.append("callback")
            bucket = 2
        else:
            return None  # promised for a later day: off the list until then
    if visit.closes_at - now <= CLOSING_SOON:
        reasons.append("closing")
    reasons += _text_reasons(participant, undelivered)
    if not reasons:
        return None
    capped = calls.attempts >= max_attempts
    if capped:
        bucket = 9
    return CallRow(
        visit,
        participant,
        reasons,
        (visit.window_end - today).days,
        calls,
        capped=capped,
        callback_at=callback_at,
        sort_key=(bucket, callback_at or visit.closes_at, visit.closes_at, visit.id),
    )
