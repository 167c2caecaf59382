"""Compute a participant's visit windows and reminder send times from the anchor date.

Everything here is pure: the inputs are dates, a time zone and the plan, the outputs are
UTC instants. Windows are whole local days; a reminder goes out at the first moment inside
the local SMS send window on or after its nominal time, on daylight-saving days too.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from app.schedule.plan import SendWindow, VisitPlan, VisitSpec


@dataclass(frozen=True)
class ReminderTime:
    """One planned reminder: its slot name (r0, r1, …) and when it is due (UTC)."""

    slot: str
    due_at: datetime


@dataclass(frozen=True)
class VisitSchedule:
    """A visit's dates: local days for people, UTC instants for the database and the scheduler."""

    key: str
    event_name: str
    target_date: date
    window_start: date
    window_end: date  # inclusive
    opens_at: datetime  # local midnight starting window_start, in UTC
    closes_at: datetime  # local midnight after window_end, in UTC (exclusive)
    reminders: tuple[ReminderTime, ...]


def local_midnight(day: date, zone: ZoneInfo) -> datetime:
    """The first instant of a local day, in UTC (a day that starts in a DST gap starts when it exists)."""
    return _resolve(datetime.combine(day, time(0, 0)), zone)


def _resolve(wall: datetime, zone: ZoneInfo) -> datetime:
    """A naive local wall time as a UTC instant.

    A wall time that does not exist (inside a spring-forward gap) maps with the offset in force
    before the gap (fold=0), which lands the same distance after the gap: never earlier than asked.
    An ambiguous wall time (autumn fold) takes its first occurrence.
    """
    return wall.replace(tzinfo=zone, fold=0).astimezone(UTC)


def next_send_moment(after: datetime, zone: ZoneInfo, window: SendWindow) -> datetime:
    """The first instant at or after `after` (aware) whose local time lies inside the send window."""
    local = after.astimezone(zone)
    day = local.date()
    for _ in range(4):
        if local.date() == day and window.contains(local.time()):
            return after.astimezone(UTC)
        start = _resolve(datetime.combine(day, window.start), zone)
        if start >= after:
            start_local = start.astimezone(zone)
            if start_local.date() == day and window.contains(start_local.time()):
                return start
        day += timedelta(days=1)
    raise ValueError(f"no moment inside the send window {window} within 4 days of {after.isoformat()}")


def compute_visit(anchor: date, zone: ZoneInfo, spec: VisitSpec, window: SendWindow) -> VisitSchedule:
    """One visit's schedule for a participant discharged on `anchor`, living in `zone`."""
    start_day = anchor + timedelta(days=spec.window_start_day)
    end_day = anchor + timedelta(days=spec.window_end_day)
    opens_at = local_midnight(start_day, zone)
    closes_at = local_midnight(end_day + timedelta(days=1), zone)
    reminders: list[ReminderTime] = []
    for slot, rule in zip(spec.reminder_slots, spec.reminders, strict=True):
        nominal = local_midnight(anchor + timedelta(days=rule.day_in_window(spec)), zone)
        due = next_send_moment(nominal, zone, window)
        # A send window can vanish on a DST day; a reminder that would slip out of the visit
        # window or onto an earlier reminder's moment is dropped rather than sent late.
        if due >= closes_at or (reminders and due <= reminders[-1].due_at):
            continue
        reminders.append(ReminderTime(slot, due))
    return VisitSchedule(
        key=spec.key,
        event_name=spec.event_name,
        target_date=anchor + timedelta(days=spec.target_day),
        window_start=start_day,
        window_end=end_day,
        opens_at=opens_at,
        closes_at=closes_at,
        reminders=tuple(reminders),
    )


def compute_schedule(
    anchor: date, zone: ZoneInfo, plan: VisitPlan, window: SendWindow
) -> list[VisitSchedule]:
    """Every visit of the plan for one participant, in plan order."""
    return [compute_visit(anchor, zone, spec, window) for spec in plan.visits]
