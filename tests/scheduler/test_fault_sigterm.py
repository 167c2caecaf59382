"""SIGTERM during a send pass: the pass finishes (nothing left half-sent), the lease is released, exit 0."""

from __future__ import annotations

import signal
from collections import Counter

import pytest
from sqlalchemy import select

from app.extensions import db
from app.models import OutboundMessage, SchedulerLease, utcnow
from tests.conftest import build_app
from tests.scheduler.harness import (
    add_due_reminders,
    twilio_settings,
    wait_until,
)

pytestmark = pytest.mark.slow


def test_sigterm_mid_pass_finishes_the_pass_and_exits_zero(tmp_path, twilio, schedulers):
    state, api_url = twilio
    settings = {**twilio_settings(api_url), "SMS_RATE_PER_SECOND": "100"}
    app = build_app("sqlite", tmp_path, **settings)
    with app.app_context():
        phones = add_due_reminders(200, utcnow())
    env = schedulers.env(app.config["SQLALCHEMY_DATABASE_URI"], **settings)
    proc = schedulers.start(env)
    assert wait_until(lambda: len(state.messages) >= 20, 20), proc.log()[-3000:]
    proc.signal(signal.SIGTERM)
    in_flight_at_signal = len(state.messages)
    code = proc.terminate(timeout=30)
    schedulers.stop_all()
    log = proc.log()
    assert code == 0, log[-3000:]
    assert "SIGTERM received: finishing the job in progress" in log
    assert "stopped" in log.splitlines()[-1]
    assert "Traceback" not in log
    # The pass that was running finished: every due text went out once, none is left mid-send.
    assert in_flight_at_signal < len(phones)
    assert state.duplicates() == []
    assert Counter(m.to for m in state.messages) == Counter(phones)
    with app.app_context():
        statuses = set(db.session.scalars(select(OutboundMessage.status)))
        assert statuses <= {"queued", "sent", "delivered"}
        lease = db.session.get(SchedulerLease, "scheduler")
        assert lease.expires_at <= utcnow()  # released: a standby takes over at its next beat
        db.session.remove()
        db.engine.dispose()


def test_sigterm_while_idle_exits_at_once(tmp_path, schedulers):
    app = build_app("sqlite", tmp_path)
    env = schedulers.env(app.config["SQLALCHEMY_DATABASE_URI"])
    proc = schedulers.start(env)
    proc.wait_for_log("first send pass after start")
    assert proc.terminate(timeout=10) == 0
    schedulers.stop_all()
    with app.app_context():
        db.engine.dispose()
