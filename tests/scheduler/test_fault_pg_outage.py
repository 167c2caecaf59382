"""PostgreSQL briefly unavailable: backends terminated and new connections refused for longer than the lease.

The scheduler logs, keeps running, pauses its jobs, and when the database is back re-acquires the lease,
beats and sends again (pool_pre_ping replaces the dead connections); a restart later settles the texts
whose provider call went out while the database was gone, each exactly once.
"""

from __future__ import annotations

import time
from collections import Counter

import pytest
from sqlalchemy import create_engine, func, select, text
from sqlalchemy.engine import make_url

from app.extensions import db
from app.health.checks import HEARTBEAT_KEY
from app.models import OutboundMessage, SystemState, utcnow
from tests.scheduler.harness import (
    add_due_reminders,
    wait_until,
)

pytestmark = [pytest.mark.slow, pytest.mark.postgres]


def _open_rows() -> int:
    db.session.remove()
    return db.session.scalar(
        select(func.count())
        .select_from(OutboundMessage)
        .where(OutboundMessage.status.in_(("pending", "sending")))
    )


def _admin_engine(database_url: str):
    admin = make_url(database_url).set(database="postgres")
    return create_engine(admin, isolation_level="AUTOCOMMIT")


def test_database_goes_away_and_comes_back(tmp_path, twilio, pg_app, schedulers):
    state, _ = twilio
    app = pg_app
    url = app.config["SQLALCHEMY_DATABASE_URI"]
    name = make_url(url).database
    with app.app_context():
        phones = add_due_reminders(100, utcnow())
    env = schedulers.env(url, **app.config["FAULT_SETTINGS"])
    proc = schedulers.start(env)
    admin = _admin_engine(url)
    try:
        assert wait_until(lambda: len(state.messages) >= 20, 20), proc.log()[-2000:]
        with app.app_context():
            db.session.remove()
            db.engine.dispose()  # our own pool must not hold sessions during the outage
        with admin.connect() as conn:
            conn.execute(text(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false'))
            conn.execute(
                text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :n"), {"n": name}
            )
            time.sleep(4)  # longer than the 3 s lease: the scheduler must pause, not die
            assert proc.alive(), proc.log()[-3000:]
            during = len(state.messages)
            conn.execute(text(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true'))
        back = utcnow()
        with app.app_context():

            def beating() -> bool:
                db.session.remove()
                row = db.session.get(SystemState, HEARTBEAT_KEY)
                return row is not None and row.value > back.isoformat()

            assert wait_until(beating, 10), proc.log()[-3000:]
            assert wait_until(lambda: len(state.messages) > during, 10)  # sending resumed
        log = proc.log()
        assert "heartbeat failed (database unavailable?)" in log
        assert log.count("scheduler lease acquired") >= 2  # paused, then re-acquired
        assert proc.alive()
        # Rows whose provider call went out while the database was gone are settled by reconcile once
        # their claims are old enough; the restart "later" shows nothing was lost or doubled.
        assert proc.terminate() == 0
        later = schedulers.start(env, shift_seconds=600)
        with app.app_context():
            assert wait_until(lambda: len(state.messages) >= len(phones) and _open_rows() == 0, 30), (
                later.log()[-3000:]
            )
        assert later.terminate() == 0
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true'))
        admin.dispose()
        schedulers.stop_all()
    assert state.duplicates() == []
    assert Counter(m.to for m in state.messages) == Counter(phones)
