"""No text outside the participant's local send window, on and around daylight-saving changes.

Reminders fall on the days New York and London change their clocks; `run_tick` runs at chosen
instants every 45 minutes from the evening before each change to the morning after, and every text counted at the
local Twilio server must have left inside the window on the participant's own clock.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from app.extensions import db
from app.models import OutboundMessage
from app.schedule import SendWindow
from app.tick import run_tick
from tests.sms.conftest import open_visit

SMS_STEPS = ["sweep", "plan", "reconcile", "send"]
# (zone, the local date the clocks change)
DST_DAYS = [
    ("America/New_York", date(2026, 3, 8)),  # 02:00 -> 03:00
    ("America/New_York", date(2026, 11, 1)),  # 02:00 -> 01:00
    ("Europe/London", date(2026, 3, 29)),  # 01:00 -> 02:00
    ("Europe/London", date(2026, 10, 25)),  # 02:00 -> 01:00
]
# Day offsets of the default plan's week-4 reminders: opening (25), +3 (28), closing - 2 (34).
REMINDER_DAYS = (25, 28, 34)


@pytest.mark.parametrize("window_text", ["09:00-20:00", "01:00-04:00"])
@pytest.mark.parametrize(("zone_name", "dst_day"), DST_DAYS)
def test_no_text_outside_the_local_window_across_dst(twilio_env_factory, zone_name, dst_day, window_text):
    env = twilio_env_factory(SMS_SEND_WINDOW=window_text)
    zone, window = ZoneInfo(zone_name), SendWindow.parse(window_text)
    with env.app.app_context():
        start = datetime.combine(dst_day - timedelta(days=1), time(18, 0), zone)
        people = {}
        for offset in REMINDER_DAYS:
            # Discharged so that one reminder slot falls on the change day; created before the first tick.
            participant, _ = open_visit(start, timezone=zone_name, days_since_discharge=offset - 1)
            people[participant.phone_e164] = participant
        sent_seen = 0
        moment = start
        while moment < start + timedelta(hours=36):
            run_tick(moment, only=SMS_STEPS)
            messages = env.state.messages
            for message in messages[sent_seen:]:
                local = moment.astimezone(ZoneInfo(people[message.to].timezone))
                assert window.contains(local.time()), f"text at {local.isoformat()} outside {window_text}"
            sent_seen = len(messages)
            moment += timedelta(minutes=45)
        env.state.wait_idle()
        rows = list(
            db.session.scalars(select(OutboundMessage).where(OutboundMessage.provider_sid.is_not(None)))
        )
        # One text per planned row, each row sent once (late slots caught up on the first tick).
        assert len(env.state.messages) == len(rows) == len({(r.visit_id, r.slot) for r in rows})
        slot_on_change_day = {25: "r0", 28: "r1", 34: "r2"}
        for offset, phone in zip(REMINDER_DAYS, people, strict=True):
            row = next(r for r in rows if r.to_e164 == phone and r.slot == slot_on_change_day[offset])
            assert row.sent_at.astimezone(zone).date() == dst_day
        db.session.remove()
