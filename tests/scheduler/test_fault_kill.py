"""SIGKILL at random points while 1,000 reminders are due, restart, ten times: each delivered exactly once.

Counted at the local Twilio-compatible server (its duplicates() and per-number counts). The scheduler is a
real subprocess sending over loopback with the real twilio client. Rows a killed sender left in `sending`
are settled by the SMS engine's reconcile step only once their claim is older than any live send could be
(minutes, see app/sms/reconcile.py); instead of sleeping that long, the last restart runs with its clock
ten minutes ahead, i.e. the scheduler "came back later" (tests/scheduler/shifted_clock.py).
"""

from __future__ import annotations

import os
import random
import time
from collections import Counter

import pytest
from sqlalchemy import func, select

from app.extensions import db
from app.models import OutboundMessage, utcnow
from devservers.runner import serve_in_thread
from devservers.twilio_api import TwilioState, create_twilio_app
from tests.conftest import build_app
from tests.scheduler.harness import (
    ACCOUNT_SID,
    AUTH_TOKEN,
    add_due_reminders,
    twilio_settings,
    wait_until,
)

pytestmark = pytest.mark.slow

REMINDERS = 1000
KILLS = 10


@pytest.fixture
def twilio():
    """The Twilio-compatible server in this process; no status callbacks (no web app is running)."""
    state = TwilioState({ACCOUNT_SID: AUTH_TOKEN}, callbacks_enabled=False, hang_seconds=1.0)
    handle = serve_in_thread(create_twilio_app(state=state))
    yield state, handle.url
    state.close()
    handle.stop()


def _open_rows() -> int:
    db.session.remove()
    return db.session.scalar(
        select(func.count())
        .select_from(OutboundMessage)
        .where(OutboundMessage.status.in_(("pending", "sending")))
    )


def test_sigkill_ten_times_while_1000_reminders_are_due(tmp_path, twilio, schedulers):
    state, api_url = twilio
    settings = {**twilio_settings(api_url), "SMS_RATE_PER_SECOND": "200", "SCHEDULER_LEASE_SECONDS": "2"}
    app = build_app("sqlite", tmp_path, **settings)
    seed = int(os.environ.get("FAULT_SEED", random.randrange(1_000_000)))
    rng = random.Random(seed)
    print(f"FAULT_SEED={seed}")
    with app.app_context():
        phones = add_due_reminders(REMINDERS, utcnow())
    env = schedulers.env(app.config["SQLALCHEMY_DATABASE_URI"], **settings)
    log_path = tmp_path / "scheduler.log"
    started = time.monotonic()
    for kill in range(KILLS):
        proc = schedulers.start(env, log_path)
        before = len(state.messages)
        if rng.random() < 0.3:
            time.sleep(rng.uniform(0.2, 2.5))  # anywhere: start-up, standby wait, planning, sending
        else:
            target = before + rng.randint(1, 80)
            wait_until(lambda t=target, p=proc: len(state.messages) >= t or not p.alive(), 10)
            time.sleep(rng.uniform(0, 0.03))  # mid-request, mid-commit, between rows
        assert proc.alive(), proc.log()[-3000:]
        proc.kill()
        print(f"kill {kill + 1} at {time.monotonic() - started:.1f} s: {len(state.messages)} sent")
    sent_during_kills = len(state.messages)
    final = schedulers.start(env, log_path, shift_seconds=600)
    with app.app_context():
        done = wait_until(lambda: len(state.messages) >= REMINDERS and _open_rows() == 0, 45, 0.2)
    assert done, f"seed {seed}: {len(state.messages)} sent, log:\n{final.log()[-4000:]}"
    print(f"all settled at {time.monotonic() - started:.1f} s")
    assert final.terminate() == 0
    schedulers.stop_all()

    # Exactly once, counted at the provider.
    assert state.duplicates() == [], f"seed {seed}"
    per_number = Counter(message.to for message in state.messages)
    assert set(per_number) == set(phones)
    assert set(per_number.values()) == {1}, f"seed {seed}"
    # And the outbox agrees: every row settled with the provider's id.
    with app.app_context():
        rows = db.session.execute(select(OutboundMessage.status, OutboundMessage.provider_sid)).all()
        assert len(rows) == REMINDERS
        assert {sid for _, sid in rows} == {message.sid for message in state.messages}
        assert {status for status, _ in rows} <= {"queued", "sent", "delivered"}
        db.session.remove()
        db.engine.dispose()
    # Some work was interrupted and caught up (otherwise the kills proved nothing).
    assert 0 < sent_during_kills < REMINDERS, f"seed {seed}: {sent_during_kills} sent before the last restart"
