"""The visit-schedule engine: fixed examples and properties over random anchors, zones and plans."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.schedule import (
    PlanError,
    SendWindow,
    compute_schedule,
    compute_visit,
    next_send_moment,
    parse_visit_plan,
)
from config import DEFAULT_VISIT_PLAN

ZONES = [
    "Asia/Shanghai",
    "America/New_York",
    "Europe/London",
    "Australia/Lord_Howe",
    "America/Santiago",
    "UTC",
]
WINDOW = SendWindow.parse("09:00-20:00")
PLAN = parse_visit_plan(DEFAULT_VISIT_PLAN)


def local(moment: datetime, zone: str) -> datetime:
    return moment.astimezone(ZoneInfo(zone))


def test_default_plan_week_4_in_shanghai():
    week4 = compute_visit(date(2026, 1, 1), ZoneInfo("Asia/Shanghai"), PLAN.get("week_4"), WINDOW)
    assert week4.target_date == date(2026, 1, 29)
    assert (week4.window_start, week4.window_end) == (date(2026, 1, 26), date(2026, 2, 5))
    assert local(week4.opens_at, "Asia/Shanghai") == datetime(
        2026, 1, 26, 0, 0, tzinfo=ZoneInfo("Asia/Shanghai")
    )
    assert local(week4.closes_at, "Asia/Shanghai").date() == date(2026, 2, 6)
    due = [local(r.due_at, "Asia/Shanghai") for r in week4.reminders]
    assert [d.date() for d in due] == [date(2026, 1, 26), date(2026, 1, 29), date(2026, 2, 4)]
    assert all(d.hour == 9 and d.minute == 0 for d in due)
    assert [r.slot for r in week4.reminders] == ["r0", "r1", "r2"]


def test_month_6_window():
    month6 = compute_visit(date(2026, 1, 1), ZoneInfo("Asia/Shanghai"), PLAN.get("month_6"), WINDOW)
    assert month6.target_date == date(2026, 1, 1) + timedelta(days=182)
    assert month6.window_start == date(2026, 1, 1) + timedelta(days=168)
    assert month6.window_end == date(2026, 1, 1) + timedelta(days=196)


@pytest.mark.parametrize(
    ("zone", "anchor"),
    [
        ("America/New_York", date(2026, 2, 11)),  # week-4 window opens across the March DST jump
        ("America/New_York", date(2026, 10, 5)),  # and across the November fall-back
        ("Europe/London", date(2026, 2, 27)),
        ("Europe/London", date(2026, 9, 28)),
    ],
)
def test_reminders_stay_at_nine_local_across_dst(zone, anchor):
    for visit in compute_schedule(anchor, ZoneInfo(zone), PLAN, WINDOW):
        for reminder in visit.reminders:
            assert local(reminder.due_at, zone).time().hour == 9


def test_next_send_moment_moves_late_evening_to_next_morning():
    zone = ZoneInfo("Asia/Shanghai")
    late = datetime(2026, 5, 1, 21, 30, tzinfo=zone)
    assert next_send_moment(late, zone, WINDOW) == datetime(2026, 5, 2, 9, 0, tzinfo=zone).astimezone(UTC)
    inside = datetime(2026, 5, 1, 12, 0, tzinfo=zone)
    assert next_send_moment(inside, zone, WINDOW) == inside.astimezone(UTC)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("20:00-09:00", "after the start"),
        ("9-20", "HH:MM"),
        ("", "HH:MM"),
        ("09:00-09:30", "one hour"),
        ("25:00-26:00", "HH:MM"),
    ],
)
def test_bad_send_windows_are_refused(text, message):
    with pytest.raises(PlanError, match=message):
        SendWindow.parse(text)


def _plan(**override):
    visit = {
        "key": "v1",
        "event": "v1_arm_1",
        "target_day": 10,
        "window": [8, 14],
        "reminders": [["open", 0]],
    }
    visit.update(override)
    return [visit]


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ([], "non-empty"),
        (_plan(window=[14, 8]), "before it opens"),
        (_plan(target_day=20), "outside its window"),
        (_plan(reminders=[["open", 9]]), "outside the window"),
        (_plan(reminders=[["close", 0]]), "outside the window"),
        (_plan(reminders=[["open", 2], ["open", 1]]), "strictly later"),
        (_plan(key="Week 4"), "lower-case"),
        (_plan(window=[0, 5], target_day=3), "after the anchor"),
        (_plan() + _plan(key="v2", event="v2_arm_1", window=[12, 20], target_day=15), "overlap"),
        (_plan() + _plan(key="v1", event="x_arm_1", window=[20, 30], target_day=25), "unique"),
        (_plan(reminders=[["soon", 1]]), "reminder"),
        (_plan(target_day="10"), "whole number"),
    ],
)
def test_bad_plans_are_refused_with_the_reason(raw, message):
    with pytest.raises(PlanError, match=message):
        parse_visit_plan(raw)


# --- properties -----------------------------------------------------------------------------


@st.composite
def plans(draw):
    """Random valid plans: 1-3 non-overlapping visits, each with 0-3 reminders on distinct days."""
    visits = []
    day = draw(st.integers(1, 40))
    for index in range(draw(st.integers(1, 3))):
        length = draw(st.integers(1, 40))
        start, end = day, day + length - 1
        days = sorted(draw(st.sets(st.integers(start, end), max_size=min(3, length))))
        reminders = []
        for reminder_day in days:
            if draw(st.booleans()):
                reminders.append(["open", reminder_day - start])
            else:
                reminders.append(["close", reminder_day - (end + 1)])
        target = draw(st.integers(start, end))
        visits.append(
            {
                "key": f"v{index}",
                "event": f"v{index}_arm_1",
                "target_day": target,
                "window": [start, end],
                "reminders": reminders,
            }
        )
        day = end + 1 + draw(st.integers(0, 30))
    return visits


send_windows = st.tuples(st.integers(0, 22), st.integers(0, 59), st.integers(1, 23)).map(
    lambda t: f"{t[0]:02d}:{t[1]:02d}-{min(t[0] + max(t[2], 1) + 1, 23):02d}:{t[1]:02d}"
)


@settings(max_examples=300, deadline=None)
@given(
    anchor=st.dates(min_value=date(2020, 1, 1), max_value=date(2035, 12, 31)),
    zone_name=st.sampled_from(ZONES),
    raw_plan=plans(),
    window_text=send_windows,
)
def test_reminders_lie_in_visit_window_and_send_window_and_are_ordered(
    anchor, zone_name, raw_plan, window_text
):
    zone = ZoneInfo(zone_name)
    window = SendWindow.parse(window_text)
    plan = parse_visit_plan(raw_plan)
    for visit in compute_schedule(anchor, zone, plan, window):
        assert visit.opens_at < visit.closes_at
        assert visit.window_start <= visit.target_date <= visit.window_end
        previous = None
        for reminder in visit.reminders:
            assert visit.opens_at <= reminder.due_at < visit.closes_at
            local_time = reminder.due_at.astimezone(zone)
            assert window.contains(local_time.time()), (local_time, window)
            if previous is not None:
                assert reminder.due_at > previous
            previous = reminder.due_at


@settings(max_examples=200, deadline=None)
@given(
    anchor=st.dates(min_value=date(2020, 1, 1), max_value=date(2035, 12, 31)),
    zone_name=st.sampled_from(["Asia/Shanghai", "America/New_York", "Europe/London"]),
)
def test_default_plan_keeps_every_reminder(anchor, zone_name):
    """With the default 09:00-20:00 window nothing is ever dropped, DST or not."""
    for visit in compute_schedule(anchor, ZoneInfo(zone_name), PLAN, WINDOW):
        assert len(visit.reminders) == 3
        assert visit.window_start == anchor + timedelta(days=PLAN.get(visit.key).window_start_day)
