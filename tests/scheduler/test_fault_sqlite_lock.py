"""SQLite: another connection holds an exclusive lock on the database for a few seconds.

The scheduler's writes wait (busy timeout) instead of failing; its heartbeat stalls longer than the lease,
so it stops trusting its lease and pauses jobs; when the lock goes, it renews, beats and sends again,
without exiting and without a duplicate.
"""

from __future__ import annotations

import sqlite3
import time
from collections import Counter

import pytest
from sqlalchemy import func, select
from sqlalchemy.engine import make_url

from app.extensions import db
from app.health.checks import HEARTBEAT_KEY
from app.models import OutboundMessage, SystemState, utcnow
from tests.conftest import build_app
from tests.scheduler.harness import (
    add_due_reminders,
    twilio_settings,
    wait_until,
)

pytestmark = pytest.mark.slow


def test_exclusive_lock_pauses_the_scheduler_which_then_recovers(tmp_path, twilio, schedulers):
    state, api_url = twilio
    settings = twilio_settings(api_url)
    app = build_app("sqlite", tmp_path, **settings)
    url = app.config["SQLALCHEMY_DATABASE_URI"]
    env = schedulers.env(url, **settings)
    proc = schedulers.start(env)
    proc.wait_for_log("first send pass after start")
    locker = sqlite3.connect(make_url(url).database, timeout=10, isolation_level=None)
    locker.execute("BEGIN EXCLUSIVE")
    locked_at = time.monotonic()
    time.sleep(4.5)  # longer than the 3 s lease
    assert proc.alive()
    locker.execute("COMMIT")
    locker.close()
    released = utcnow()
    with app.app_context():

        def beating() -> bool:
            db.session.remove()
            row = db.session.get(SystemState, HEARTBEAT_KEY)
            return row is not None and row.value >= released.isoformat()

        assert wait_until(beating, 10), proc.log()[-3000:]
        # Work that arrives after the outage is done as usual.
        phones = add_due_reminders(50, utcnow())
        assert wait_until(lambda: len(state.messages) >= 50, 15), proc.log()[-3000:]
        assert wait_until(
            lambda: (
                db.session.scalar(
                    select(func.count())
                    .select_from(OutboundMessage)
                    .where(OutboundMessage.status.in_(("pending", "sending")))
                )
                == 0
            ),
            10,
        )
        db.session.remove()
        db.engine.dispose()
    log = proc.log()
    assert "heartbeat took" in log, log[-3000:]  # the stall was noticed and logged
    assert time.monotonic() - locked_at < 60
    assert proc.terminate() == 0
    schedulers.stop_all()
    assert state.duplicates() == []
    assert Counter(m.to for m in state.messages) == Counter(phones)
