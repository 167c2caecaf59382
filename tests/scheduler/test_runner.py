"""The scheduler runner in-process: jobs, lease gating, immediate first pass, standby, errors, clean stop."""

from __future__ import annotations

import gc
import threading
import time
from collections.abc import Callable
from datetime import timedelta

import pytest
from apscheduler.schedulers.base import BaseScheduler

from app import tick
from app.extensions import db
from app.health.checks import HEARTBEAT_KEY, health_report
from app.models import SchedulerLease, SystemState, utcnow
from scheduler.lease import LeaderLease
from scheduler.runner import SchedulerRunner, job_specs


@pytest.fixture
def backend() -> str:
    """SQLite only here: the lease tests and the PostgreSQL fault tests cover PostgreSQL."""
    return "sqlite"


@pytest.fixture
def calls(monkeypatch) -> list[tuple[str, str]]:
    """Replace the tick steps with recorders: (step name, thread name) per call."""
    seen: list[tuple[str, str]] = []

    def recorder(name: str) -> Callable:
        def step(now):
            seen.append((name, threading.current_thread().name))
            return {"done": 1}

        return step

    registry = {name: recorder(name) for name in ("sweep", "plan", "reconcile", "send", "push")}
    monkeypatch.setattr(tick, "steps", lambda: dict(registry))
    return seen


def _run_in_thread(runner: SchedulerRunner) -> threading.Thread:
    thread = threading.Thread(target=runner.run, kwargs={"install_signals": False}, daemon=True)
    thread.start()
    return thread


def _wait(predicate: Callable[[], bool], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


def test_jobs_and_default_intervals(app):
    specs = {spec.id: spec for spec in job_specs(app.config)}
    assert {k: v.seconds for k, v in specs.items()} == {"send": 30, "push": 60, "sweep": 600, "roster": 900}
    assert specs["send"].steps == ("det", "sweep", "plan", "reconcile", "send")
    assert specs["push"].steps == ("push",) and specs["roster"].steps == ("roster", "metadata")
    assert all(spec.grace == spec.seconds for spec in specs.values())
    runner = SchedulerRunner(app)
    assert runner.heartbeat_seconds == 30 and runner.lease.seconds == 90


def test_intervals_follow_the_settings(app_factory):
    app = app_factory(SCHEDULER_SEND_SECONDS="5", SCHEDULER_PUSH_SECONDS="7", SCHEDULER_ROSTER_SECONDS="11")
    specs = {spec.id: spec.seconds for spec in job_specs(app.config)}
    assert specs["send"] == 5 and specs["push"] == 7 and specs["roster"] == 11


def test_no_job_runs_without_the_lease(app, calls):
    runner = SchedulerRunner(app)
    spec = runner.specs[0]
    assert runner.run_job(spec) is None
    assert calls == []
    assert LeaderLease(90, owner="someone-else").acquire(utcnow())
    assert runner.heartbeat() is False
    assert runner.run_job(spec) is None
    assert calls == []


def test_leader_runs_the_send_pass_in_order(app, calls):
    runner = SchedulerRunner(app)
    assert runner.heartbeat() is True
    summary = runner.run_job(next(s for s in runner.specs if s.id == "send"))
    assert [name for name, _ in calls] == ["sweep", "plan", "reconcile", "send"]
    assert summary == {f"{n}.done": 1 for n in ("sweep", "plan", "reconcile", "send")}


def test_a_failing_step_neither_stops_the_job_nor_the_next(app, calls, monkeypatch):
    registry = tick.steps()

    def broken(now):
        raise RuntimeError("boom")

    registry["plan"] = broken
    monkeypatch.setattr(tick, "steps", lambda: dict(registry))
    runner = SchedulerRunner(app)
    assert runner.heartbeat()
    summary = runner.run_job(next(s for s in runner.specs if s.id == "send"))
    assert summary["plan.error"] == 1
    assert summary["send.done"] == 1  # the steps after the failure still ran
    assert runner.run_job(next(s for s in runner.specs if s.id == "push")) == {"push.done": 1}


def test_heartbeat_writes_the_key_health_reads(app, calls):
    runner = SchedulerRunner(app)
    before = health_report(app.config)
    assert before["scheduler"] == "never seen"
    assert runner.heartbeat()
    row = db.session.get(SystemState, HEARTBEAT_KEY)
    assert abs((utcnow() - tick_time(row.value)).total_seconds()) < 5
    assert health_report(app.config)["scheduler"] == "ok"


def tick_time(value: str):
    from datetime import datetime

    return datetime.fromisoformat(value)


def test_heartbeat_failure_is_logged_and_drops_the_lease(app, calls, monkeypatch, caplog):
    runner = SchedulerRunner(app)
    assert runner.heartbeat()

    def broken(now):
        runner.lease.drop("database error while renewing")
        raise ConnectionError("database unavailable")

    monkeypatch.setattr(runner.lease, "acquire", broken)
    assert runner.heartbeat() is False
    assert "heartbeat failed" in caplog.text
    assert runner.run_job(runner.specs[0]) is None  # no lease, no jobs
    monkeypatch.undo()
    assert runner.heartbeat() is True  # recovered on the next beat


def test_first_passes_run_at_start_then_a_clean_stop_releases_the_lease(app, calls):
    runner = SchedulerRunner(app)  # default intervals: 30 s and more, so only the first pass can run
    thread = _run_in_thread(runner)
    assert _wait(lambda: {"send", "push"} <= {name for name, _ in calls}, timeout=5)
    runner.request_stop()
    thread.join(timeout=10)
    assert not thread.is_alive()
    db.session.expire_all()
    lease = db.session.get(SchedulerLease, "scheduler")
    assert lease.expires_at <= utcnow()  # released: a standby may take over at once


def test_standby_waits_then_takes_over_within_one_lease_period(app_factory, calls):
    app = app_factory(
        SCHEDULER_HEARTBEAT_SECONDS="1", SCHEDULER_LEASE_SECONDS="3", SCHEDULER_SEND_SECONDS="1"
    )
    with app.app_context():
        leader, standby = SchedulerRunner(app), SchedulerRunner(app)
        t1 = _run_in_thread(leader)
        assert _wait(leader.lease.held)
        t2 = _run_in_thread(standby)
        time.sleep(2.5)
        assert leader.lease.held() and not standby.lease.held()
        # The leader dies without releasing (as under SIGKILL): stop its loop, keep the row.
        leader.stop.requested.set()
        leader.lease._valid_until = None
        leader.scheduler.shutdown(wait=False)
        t1.join(timeout=5)
        died = time.monotonic()
        assert _wait(standby.lease.held, timeout=5)
        assert time.monotonic() - died <= 3 + 0.5  # lease period (+ scheduling slack)
        count = len(calls)
        assert _wait(lambda: len(calls) > count, timeout=3)  # and it runs the passes
        assert db.session.get(SchedulerLease, "scheduler").owner == standby.lease.owner
        standby.request_stop()
        t2.join(timeout=10)
        assert not t2.is_alive()


def test_the_same_step_never_runs_twice_at_once(app, monkeypatch):
    running = threading.Event()
    release = threading.Event()
    entered: list[int] = []

    def slow_sweep(now):
        entered.append(1)
        running.set()
        release.wait(5)
        return {"opened": 0}

    monkeypatch.setattr(tick, "steps", lambda: {"sweep": slow_sweep})
    runner = SchedulerRunner(app)
    assert runner.heartbeat()
    send = next(s for s in runner.specs if s.id == "send")
    sweep = next(s for s in runner.specs if s.id == "sweep")

    def run_send() -> None:
        with app.app_context():
            runner.run_job(send)

    thread = threading.Thread(target=run_send)
    thread.start()
    assert running.wait(5)
    assert runner.run_job(sweep) == {}  # skipped: the send job's sweep is in progress
    release.set()
    thread.join(5)
    assert entered == [1]


def test_lease_must_outlast_the_heartbeat(app_factory):
    app = app_factory(SCHEDULER_HEARTBEAT_SECONDS="30", SCHEDULER_LEASE_SECONDS="30")
    result = app.test_cli_runner().invoke(args=["scheduler"])
    assert result.exit_code != 0
    assert "SCHEDULER_LEASE_SECONDS must be longer" in result.output


def test_scheduler_command_has_help(app):
    result = app.test_cli_runner().invoke(args=["scheduler", "--help"])
    assert result.exit_code == 0
    assert "SIGTERM" in result.output


def test_the_web_app_starts_no_scheduler_and_no_thread(app_factory):
    schedulers_before = sum(isinstance(o, BaseScheduler) for o in gc.get_objects())
    threads_before = {t.ident for t in threading.enumerate()}
    app = app_factory()
    client = app.test_client()
    client.get("/healthz")
    client.get("/no-such-page")
    new_threads = [t.name for t in threading.enumerate() if t.ident not in threads_before]
    assert new_threads == []
    gc.collect()
    assert sum(isinstance(o, BaseScheduler) for o in gc.get_objects()) <= schedulers_before
    assert "scheduler" not in app.extensions


def test_renewal_is_visible_to_a_fresh_session(app, calls):
    runner = SchedulerRunner(app)
    assert runner.heartbeat()
    first = db.session.get(SchedulerLease, "scheduler").expires_at
    time.sleep(0.05)
    db.session.expire_all()
    assert runner.heartbeat()
    db.session.expire_all()
    assert db.session.get(SchedulerLease, "scheduler").expires_at >= first + timedelta(milliseconds=40)


def test_first_send_pass_logs_what_it_caught_up_and_skipped(app, monkeypatch, caplog):
    registry = {
        "plan": lambda now: {"planned": 4, "stale": 1},
        "send": lambda now: {"sent": 5, "caught_up": 3, "stale": 2, "skipped": 2},
    }
    monkeypatch.setattr(tick, "steps", lambda: dict(registry))
    runner = SchedulerRunner(app)
    assert runner.heartbeat()
    send = next(s for s in runner.specs if s.id == "send")
    with caplog.at_level("INFO", logger="scheduler.runner"):
        runner.run_job(send)
        runner.run_job(send)
    first = [r.getMessage() for r in caplog.records if "first send pass" in r.getMessage()]
    assert len(first) == 1
    assert "sent 5 (caught up late: 3), skipped 3 as stale" in first[0]


def test_unconfigured_steps_do_not_log_at_info(app, monkeypatch, caplog):
    monkeypatch.setattr(tick, "steps", lambda: {"push": lambda now: {"skipped": 1}})
    runner = SchedulerRunner(app)
    assert runner.heartbeat()
    with caplog.at_level("INFO", logger="scheduler.runner"):
        runner.run_job(next(s for s in runner.specs if s.id == "push"))
    assert not [r for r in caplog.records if r.levelname == "INFO" and "job push" in r.getMessage()]
