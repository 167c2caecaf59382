"""PostgreSQL: two schedulers at once for a whole run, forced to overlap.

Both start together (one leads, one waits); the leader is frozen with SIGSTOP mid send pass for longer
than its lease, the standby takes over, then the old leader is thawed and finishes the pass it was in,
claiming rows beside the new leader. Only the outbox claims (FOR UPDATE SKIP LOCKED) stand
between that and a double text, and the provider must count each reminder exactly once.
"""

from __future__ import annotations

import re
import signal
import time
from collections import Counter

import pytest
from sqlalchemy import func, select

from app.extensions import db
from app.models import OutboundMessage, SchedulerLease, utcnow
from tests.scheduler.harness import (
    add_due_reminders,
    wait_until,
)

pytestmark = [pytest.mark.slow, pytest.mark.postgres]


def _leader_pid() -> int | None:
    db.session.remove()
    lease = db.session.get(SchedulerLease, "scheduler")
    if lease is None or lease.expires_at <= utcnow():
        return None
    return int(lease.owner.rsplit(":", 3)[1])


def _open_rows() -> int:
    db.session.remove()
    return db.session.scalar(
        select(func.count())
        .select_from(OutboundMessage)
        .where(OutboundMessage.status.in_(("pending", "sending")))
    )


def test_two_schedulers_overlapping_on_postgres_send_each_reminder_once(tmp_path, twilio, pg_app, schedulers):
    state, _ = twilio
    app = pg_app
    with app.app_context():
        phones = add_due_reminders(200, utcnow())
    env = schedulers.env(app.config["SQLALCHEMY_DATABASE_URI"], **app.config["FAULT_SETTINGS"])
    first = schedulers.start(env, tmp_path / "a.log")
    second = schedulers.start(env, tmp_path / "b.log")
    procs = {first.pid: first, second.pid: second}
    with app.app_context():
        assert wait_until(lambda: len(state.messages) >= 40, 20), first.log()[-2000:]
        leader = procs[_leader_pid()]
        standby = second if leader is first else first
        leader.signal(signal.SIGSTOP)  # frozen mid-pass, lease running out
        assert wait_until(lambda: _leader_pid() == standby.pid, 6), standby.log()[-2000:]
        # Thaw soon after the takeover: the frozen process may hold a short row lock (the shared rate
        # bucket), which would hold the new leader up too; the point is the overlap that follows.
        time.sleep(0.5)
        leader.signal(signal.SIGCONT)  # the old leader wakes inside its send pass
        assert wait_until(lambda: len(state.messages) >= len(phones) and _open_rows() == 0, 40), (
            f"{len(state.messages)} sent\n{leader.log()[-2000:]}\n{standby.log()[-2000:]}"
        )
        db.session.remove()
    assert first.terminate() == 0 and second.terminate() == 0
    schedulers.stop_all()
    assert state.duplicates() == []
    assert Counter(m.to for m in state.messages) == Counter(phones)
    # Both really sent (each process's send passes report what they sent).
    sent_by = {
        proc.pid: sum(int(n) for n in re.findall(r"send\.sent=(\d+)", proc.log())) for proc in procs.values()
    }
    assert all(sent_by.values()) and sum(sent_by.values()) == len(phones), sent_by
    assert "another scheduler holds the lease" in leader.log() + standby.log()
