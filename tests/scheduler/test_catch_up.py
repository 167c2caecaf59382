"""After downtime, the first send pass sends what is still valid, skips what went stale, and says so."""

from __future__ import annotations

import re
from collections import Counter

import pytest

from app.extensions import db
from app.models import utcnow
from tests.conftest import build_app
from tests.scheduler.harness import (
    add_due_reminders,
    twilio_settings,
    wait_until,
)

pytestmark = pytest.mark.slow


def test_first_pass_after_downtime_catches_up_once_and_skips_stale(tmp_path, twilio, schedulers):
    state, api_url = twilio
    settings = twilio_settings(api_url)
    app = build_app("sqlite", tmp_path, **settings)
    now = utcnow()
    with app.app_context():
        # Down since before these were due: 20 owe their first text (day 26); for 20 more the service
        # missed the first text and the second is due now (day 30): only the second may go out.
        fresh = add_due_reminders(20, now, start=0, days_since_discharge=26)
        behind = add_due_reminders(20, now, start=100, days_since_discharge=30)
        db.engine.dispose()
    env = schedulers.env(app.config["SQLALCHEMY_DATABASE_URI"], **settings)
    proc = schedulers.start(env)
    proc.wait_for_log("first send pass after start")
    assert wait_until(lambda: len(state.messages) >= 40, 10)
    assert proc.terminate() == 0
    schedulers.stop_all()
    line = next(line for line in proc.log().splitlines() if "first send pass after start" in line)
    match = re.search(r"sent (\d+) \(caught up late: (\d+)\), skipped (\d+) as stale", line)
    assert match, line
    sent, late, stale = map(int, match.groups())
    assert (sent, stale) == (40, 20), line
    assert late == 40  # every one of them was due long before this start
    assert state.duplicates() == []
    assert Counter(m.to for m in state.messages) == Counter(fresh + behind)  # once each, no burst
