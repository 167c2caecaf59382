"""Create, reschedule and advance participants' visits from the schedule engine.

Views, the roster sync, CLI commands and scheduler jobs all call these functions; they add
to the current session and leave committing to the caller, so a caller's whole change is
one transaction.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import select

from app import audit
from app.extensions import db
from app.models import Participant, Visit, VisitStatus
from app.models.visit import LIVE_STATUSES
from app.participants.pending_texts import cancel_pending_texts
from app.schedule import SendWindow, VisitPlan, compute_visit

MAX_ANCHOR_AGE = timedelta(days=2 * 366)


class ScheduleInputError(ValueError):
    """A participant's dates or zone cannot be scheduled; the message names the participant."""


def check_anchor(record_id: str, anchor: date | None, today: date) -> date:
    """Refuse anchor (discharge) dates that are missing, in the future, or more than two years back."""
    if anchor is None:
        raise ScheduleInputError(f"record {record_id}: discharge date is missing")
    if anchor > today:
        raise ScheduleInputError(f"record {record_id}: discharge date {anchor.isoformat()} is in the future")
    if today - anchor > MAX_ANCHOR_AGE:
        raise ScheduleInputError(
            f"record {record_id}: discharge date {anchor.isoformat()} is more than two years ago"
        )
    return anchor


def check_zone(record_id: str, name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ScheduleInputError(f"record {record_id}: unknown time zone {name!r}") from None


@dataclass
class ScheduleChanges:
    """What `schedule_participant` did, for logs and the roster sync's summary."""

    created: list[Visit] = field(default_factory=list)
    rescheduled: list[Visit] = field(default_factory=list)
    kept: list[Visit] = field(default_factory=list)


def schedule_participant(
    participant: Participant, plan: VisitPlan, window: SendWindow, now: datetime, actor: str = "system"
) -> ScheduleChanges:
    """Make the participant's visits match their anchor date and the plan.

    Visits that have not started are (re)computed; open, completed, missed and cancelled ones
    keep their window, because a participant may already hold a link for it.
    """
    zone = check_zone(participant.record_id, participant.timezone)
    check_anchor(participant.record_id, participant.anchor_date, now.astimezone(zone).date())
    existing = {visit.visit_key: visit for visit in participant.visits}
    changes = ScheduleChanges()
    for spec in plan.visits:
        computed = compute_visit(participant.anchor_date, zone, spec, window)
        visit = existing.get(spec.key)
        if visit is None:
            visit = Visit(
                participant=participant,
                visit_key=spec.key,
                event_name=spec.event_name,
                target_date=computed.target_date,
                window_start=computed.window_start,
                window_end=computed.window_end,
                opens_at=computed.opens_at,
                closes_at=computed.closes_at,
                status=VisitStatus.SCHEDULED,
            )
            db.session.add(visit)
            changes.created.append(visit)
            continue
        unchanged = (visit.opens_at, visit.closes_at, visit.target_date) == (
            computed.opens_at,
            computed.closes_at,
            computed.target_date,
        )
        if unchanged or visit.status != VisitStatus.SCHEDULED:
            changes.kept.append(visit)
            continue
        old = (visit.window_start.isoformat(), visit.window_end.isoformat())
        visit.event_name = spec.event_name
        visit.target_date = computed.target_date
        visit.window_start = computed.window_start
        visit.window_end = computed.window_end
        visit.opens_at = computed.opens_at
        visit.closes_at = computed.closes_at
        visit.schedule_version += 1
        _cancel_pending_messages(visit, "visit rescheduled")
        audit.record(
            actor,
            "visit.rescheduled",
            visit=visit,
            old_window=list(old),
            new_window=[computed.window_start.isoformat(), computed.window_end.isoformat()],
        )
        changes.rescheduled.append(visit)
    return changes


def _cancel_pending_messages(visit: Visit, reason: str) -> int:
    # The visit's own audit entry says why, so no separate sms.cancelled entry (no actor).
    return cancel_pending_texts(visit=visit, reason=reason)


def cancel_visit(visit: Visit, reason: str, actor: str) -> bool:
    """Cancel a visit that is not final and withdraw its pending texts. Returns whether it changed."""
    if visit.is_final:
        return False
    visit.status = VisitStatus.CANCELLED
    visit.status_reason = reason
    _cancel_pending_messages(visit, reason)
    audit.record(actor, "visit.cancelled", visit=visit, reason=reason)
    return True


def complete_visit(visit: Visit, via: str, now: datetime, actor: str, reason: str | None = None) -> bool:
    """Mark a visit completed (questionnaire, clinic or REDCap) and withdraw its pending texts."""
    if visit.status == VisitStatus.COMPLETED:
        return False
    visit.status = VisitStatus.COMPLETED
    visit.completed_at = now
    visit.completed_via = via
    visit.status_reason = reason
    _cancel_pending_messages(visit, f"visit completed ({via})")
    audit.record(actor, "visit.completed", visit=visit, reason=reason, via=via)
    return True


def reopen_visit(
    visit: Visit, new_window_days: int, now: datetime, actor: str, reason: str | None = None
) -> bool:
    """Give a missed visit a new window from now to the end of the participant's local day N-1 days on.

    The schedule version is bumped, so texts planned for the old window are recognised as stale.
    Returns False (and changes nothing) unless the visit is missed.
    """
    if visit.status != VisitStatus.MISSED or new_window_days < 1:
        return False
    from app.schedule.engine import local_midnight

    zone = check_zone(visit.participant.record_id, visit.participant.timezone)
    today = now.astimezone(zone).date()
    old = (visit.window_start.isoformat(), visit.window_end.isoformat())
    visit.window_start = today
    visit.window_end = today + timedelta(days=new_window_days - 1)
    visit.opens_at = now
    visit.closes_at = local_midnight(visit.window_end + timedelta(days=1), zone)
    visit.status = VisitStatus.OPEN
    visit.status_reason = reason
    visit.schedule_version += 1
    _cancel_pending_messages(visit, "visit reopened")
    audit.record(
        actor,
        "visit.reopened",
        visit=visit,
        reason=reason,
        old_window=list(old),
        new_window=[visit.window_start.isoformat(), visit.window_end.isoformat()],
    )
    return True


@dataclass
class SweepResult:
    opened: list[int] = field(default_factory=list)
    missed: list[int] = field(default_factory=list)


def sweep_visits(now: datetime, actor: str = "system:sweep") -> SweepResult:
    """Open visits whose window has started and mark missed those whose window closed unanswered.

    Works in bounded batches by index so it stays cheap with a million scheduled visits.
    """
    result = SweepResult()
    while True:
        batch = db.session.scalars(
            select(Visit)
            .where(Visit.status == VisitStatus.SCHEDULED, Visit.opens_at <= now, Visit.closes_at > now)
            .limit(500)
        ).all()
        if not batch:
            break
        for visit in batch:
            visit.status = VisitStatus.OPEN
            result.opened.append(visit.id)
        db.session.flush()
    while True:
        batch = db.session.scalars(
            select(Visit).where(Visit.status.in_(LIVE_STATUSES), Visit.closes_at <= now).limit(500)
        ).all()
        if not batch:
            break
        for visit in batch:
            visit.status = VisitStatus.MISSED
            visit.status_reason = "window closed without an answer"
            _cancel_pending_messages(visit, "visit missed")
            audit.record(actor, "visit.missed", visit=visit)
            result.missed.append(visit.id)
        db.session.flush()
    return result
