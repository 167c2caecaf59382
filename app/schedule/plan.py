"""The study's visit plan and SMS send window, parsed and checked from configuration.

A plan is checked as a whole when it is loaded, so a plan whose windows overlap or whose
reminders fall outside their window never reaches the scheduler.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import time
from itertools import pairwise
from typing import Any, Literal

_KEY = re.compile(r"^[a-z][a-z0-9_]{0,31}$")
_HHMM = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")


class PlanError(ValueError):
    """The visit plan or send window is not usable; the message says which part and why."""


@dataclass(frozen=True)
class SendWindow:
    """Local hours in which an SMS may go out: [start, end), e.g. 09:00-20:00."""

    start: time
    end: time

    @classmethod
    def parse(cls, text: str | None) -> SendWindow:
        if not text or "-" not in text:
            raise PlanError(f"expected HH:MM-HH:MM, got {text!r}")
        first, _, second = text.strip().partition("-")
        bounds = []
        for part in (first.strip(), second.strip()):
            match = _HHMM.match(part)
            if not match:
                raise PlanError(f"expected HH:MM-HH:MM, got {text!r}")
            bounds.append(time(int(match.group(1)), int(match.group(2))))
        start, end = bounds
        if end <= start:
            raise PlanError(f"the end {end:%H:%M} must be after the start {start:%H:%M} on the same day")
        if (end.hour * 60 + end.minute) - (start.hour * 60 + start.minute) < 60:
            raise PlanError("the window must be at least one hour long")
        return cls(start, end)

    def contains(self, moment: time) -> bool:
        return self.start <= moment < self.end

    def __str__(self) -> str:
        return f"{self.start:%H:%M}-{self.end:%H:%M}"


@dataclass(frozen=True)
class ReminderRule:
    """A reminder `offset_days` from the window's opening ("open") or its closing ("close")."""

    reference: Literal["open", "close"]
    offset_days: int

    def day_in_window(self, spec: VisitSpec) -> int:
        """The reminder's day counted from the anchor date (closing = the day after the last day)."""
        if self.reference == "open":
            return spec.window_start_day + self.offset_days
        return spec.window_end_day + 1 + self.offset_days

    @property
    def slot_name(self) -> str:
        sign = "+" if self.offset_days >= 0 else "-"
        return f"{self.reference}{sign}{abs(self.offset_days)}d"


@dataclass(frozen=True)
class VisitSpec:
    """One follow-up visit of the plan: days are counted from the anchor (discharge) date."""

    key: str
    event_name: str
    target_day: int
    window_start_day: int
    window_end_day: int  # inclusive: the last local day on which the visit can be answered
    reminders: tuple[ReminderRule, ...]

    @property
    def reminder_slots(self) -> tuple[str, ...]:
        return tuple(f"r{index}" for index in range(len(self.reminders)))


@dataclass(frozen=True)
class VisitPlan:
    """The ordered visits of the study."""

    visits: tuple[VisitSpec, ...]

    def get(self, key: str) -> VisitSpec:
        for spec in self.visits:
            if spec.key == key:
                return spec
        raise KeyError(key)

    def keys(self) -> list[str]:
        return [spec.key for spec in self.visits]


def _int(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise PlanError(f"{where}: expected a whole number of days, got {value!r}")
    return value


def _parse_visit(raw: Any, index: int) -> VisitSpec:
    where = f"visit {index + 1}"
    if not isinstance(raw, dict):
        raise PlanError(f"{where}: expected an object with key, event, target_day, window, reminders")
    key = raw.get("key")
    if not isinstance(key, str) or not _KEY.match(key):
        raise PlanError(f"{where}: key must be lower-case letters, digits and _ (like week_4), got {key!r}")
    where = f"visit {key!r}"
    event = raw.get("event")
    if not isinstance(event, str) or not event.strip():
        raise PlanError(f"{where}: event (the REDCap unique event name) is required")
    target = _int(raw.get("target_day"), f"{where} target_day")
    window = raw.get("window")
    if not isinstance(window, list | tuple) or len(window) != 2:
        raise PlanError(f"{where}: window must be [first_day, last_day]")
    start, end = (_int(day, f"{where} window") for day in window)
    if start < 1:
        raise PlanError(f"{where}: the window must open after the anchor date (day 1 or later)")
    if end < start:
        raise PlanError(f"{where}: the window closes (day {end}) before it opens (day {start})")
    if not start <= target <= end:
        raise PlanError(f"{where}: target day {target} is outside its window {start}-{end}")
    rules = []
    for item in raw.get("reminders", []):
        if not isinstance(item, list | tuple) or len(item) != 2 or item[0] not in ("open", "close"):
            raise PlanError(
                f"{where}: each reminder must be ['open', days] or ['close', -days], got {item!r}"
            )
        rules.append(ReminderRule(item[0], _int(item[1], f"{where} reminder")))
    spec = VisitSpec(key, event.strip(), target, start, end, tuple(rules))
    days = [rule.day_in_window(spec) for rule in rules]
    for rule, day in zip(rules, days, strict=True):
        if not start <= day <= end:
            raise PlanError(
                f"{where}: reminder {rule.slot_name} falls on day {day}, outside the window {start}-{end}"
            )
    if any(later <= earlier for earlier, later in pairwise(days)):
        raise PlanError(f"{where}: reminders must fall on strictly later days, in order (days {days})")
    return spec


def parse_visit_plan(raw: Any) -> VisitPlan:
    """Check and build a plan from its JSON form (see config.DEFAULT_VISIT_PLAN)."""
    if not isinstance(raw, list) or not raw:
        raise PlanError("expected a non-empty list of visits")
    visits = tuple(_parse_visit(item, index) for index, item in enumerate(raw))
    keys = [spec.key for spec in visits]
    if len(set(keys)) != len(keys):
        raise PlanError(f"visit keys must be unique, got {keys}")
    events = [spec.event_name for spec in visits]
    if len(set(events)) != len(events):
        raise PlanError(f"each visit needs its own REDCap event, got {events}")
    ordered = sorted(visits, key=lambda spec: spec.window_start_day)
    for earlier, later in pairwise(ordered):
        if later.window_start_day <= earlier.window_end_day:
            first = f"{earlier.key!r} (days {earlier.window_start_day}-{earlier.window_end_day})"
            second = f"{later.key!r} (days {later.window_start_day}-{later.window_end_day})"
            raise PlanError(f"the windows of {first} and {second} overlap")
    return VisitPlan(tuple(ordered))
