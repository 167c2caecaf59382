"""The leader lease: one holder at a time, takeover after expiry, renewal failures stop the jobs."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
from datetime import timedelta

import pytest
from sqlalchemy.exc import OperationalError

from app.extensions import db
from app.models import SchedulerLease, utcnow
from scheduler.lease import LeaderLease, _machine_tag, make_owner_id, owner_is_dead_here


class FakeClock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def test_first_taker_wins_and_second_waits(app):
    now = utcnow()
    a, b = LeaderLease(90, owner="a"), LeaderLease(90, owner="b")
    assert a.acquire(now) is True
    assert b.acquire(now + timedelta(seconds=1)) is False
    assert a.held() and not b.held()
    row = db.session.get(SchedulerLease, "scheduler")
    assert row.owner == "a"
    assert row.expires_at == now + timedelta(seconds=90)


def test_renewal_extends_the_lease(app):
    now = utcnow()
    a = LeaderLease(90, owner="a")
    assert a.acquire(now)
    assert a.acquire(now + timedelta(seconds=30))
    assert db.session.get(SchedulerLease, "scheduler").expires_at == now + timedelta(seconds=120)
    assert LeaderLease(90, owner="b").acquire(now + timedelta(seconds=100)) is False


def test_standby_takes_over_after_expiry_and_old_leader_stops(app):
    now = utcnow()
    clock = FakeClock()
    a, b = LeaderLease(90, owner="a", clock=clock), LeaderLease(90, owner="b")
    assert a.acquire(now)
    assert b.acquire(now + timedelta(seconds=89)) is False
    assert b.acquire(now + timedelta(seconds=90)) is True  # expired: taken
    # The old leader wakes up (it was paused) and its renewal finds another owner: it stops.
    assert a.acquire(now + timedelta(seconds=91)) is False
    assert not a.held()
    assert db.session.get(SchedulerLease, "scheduler").owner == "b"


def test_local_view_expires_even_without_a_renewal_attempt(app):
    clock = FakeClock()
    a = LeaderLease(90, owner="a", clock=clock)
    assert a.acquire(utcnow())
    clock.t += 80
    assert a.held()
    clock.t += 6  # past 90 s minus the 5 s safety margin
    assert not a.held()


def test_release_lets_the_standby_take_over_at_once(app):
    now = utcnow()
    a, b = LeaderLease(90, owner="a"), LeaderLease(90, owner="b")
    assert a.acquire(now)
    a.release(now + timedelta(seconds=1))
    assert not a.held()
    assert b.acquire(now + timedelta(seconds=1))


def test_database_error_drops_the_lease_and_propagates(app, monkeypatch):
    a = LeaderLease(90, owner="a")
    assert a.acquire(utcnow())

    def broken(*args, **kwargs):
        raise OperationalError("UPDATE", {}, Exception("server closed the connection"))

    monkeypatch.setattr(a, "_take_or_renew", broken)
    with pytest.raises(OperationalError):
        a.acquire(utcnow())
    assert not a.held()


def test_racing_processes_elect_exactly_one(app):
    """Eight would-be leaders hit an empty table at the same instant: one wins."""
    flask_app = app
    now = utcnow()
    leases = [LeaderLease(90, owner=f"p{i}") for i in range(8)]
    results: dict[str, bool] = {}
    barrier = threading.Barrier(len(leases))

    def contend(lease: LeaderLease) -> None:
        with flask_app.app_context():
            barrier.wait()
            results[lease.owner] = lease.acquire(now)

    threads = [threading.Thread(target=contend, args=(lease,)) for lease in leases]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert sorted(results.values()).count(True) == 1
    winner = next(owner for owner, won in results.items() if won)
    assert db.session.get(SchedulerLease, "scheduler").owner == winner


def test_racing_takeover_of_an_expired_lease_elects_one(app):
    flask_app = app
    now = utcnow()
    assert LeaderLease(10, owner="dead").acquire(now - timedelta(seconds=60))
    leases = [LeaderLease(90, owner=f"s{i}") for i in range(6)]
    results: list[bool] = []
    barrier = threading.Barrier(len(leases))

    def contend(lease: LeaderLease) -> None:
        with flask_app.app_context():
            barrier.wait()
            results.append(lease.acquire(now))

    threads = [threading.Thread(target=contend, args=(lease,)) for lease in leases]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert results.count(True) == 1


def test_owner_ids_are_unique_per_instance():
    assert make_owner_id() != make_owner_id()


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_a_restart_on_the_same_machine_takes_over_from_its_dead_predecessor(app):
    now = utcnow()
    dead = f"{socket.gethostname()}:{_dead_pid()}:abcdef:{_machine_tag()}"
    assert owner_is_dead_here(dead)
    assert LeaderLease(90, owner=dead).acquire(now)
    # The lease is unexpired, but its owner is gone from this machine: no need to wait 90 s.
    assert LeaderLease(90, owner="restarted").acquire(now + timedelta(seconds=1))
    assert db.session.get(SchedulerLease, "scheduler").owner == "restarted"


def test_owners_that_may_be_alive_are_never_taken_over(app):
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        alive = f"{socket.gethostname()}:{sleeper.pid}:abcdef:{_machine_tag()}"
        other_host = f"another-host:{_dead_pid()}:abcdef:{_machine_tag()}"
        other_namespace = f"{socket.gethostname()}:{_dead_pid()}:abcdef:000000000000"
        for owner in (alive, other_host, other_namespace, "garbage", f"{socket.gethostname()}:x:y:z"):
            assert not owner_is_dead_here(owner), owner
        assert not owner_is_dead_here(make_owner_id())  # ourselves
        now = utcnow()
        assert LeaderLease(90, owner=alive).acquire(now)
        assert not LeaderLease(90, owner="restarted").acquire(now + timedelta(seconds=1))
    finally:
        sleeper.kill()
        sleeper.wait()
