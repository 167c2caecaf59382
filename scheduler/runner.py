"""The scheduler process: APScheduler's BlockingScheduler running the tick steps on their own intervals.

Jobs are defined here in code with fixed ids and kept in memory (a job store cannot be shared between
processes; restarts simply define them again). Each job runs inside an application context and calls
the same functions as `flask --app wsgi tick` (app.tick.run_step), so there is one implementation of
every pass. Jobs run only while this process holds the leader lease (scheduler.lease); the heartbeat job
renews it and writes the heartbeat that /healthz reads. A job's exception is logged and never ends the
process; SIGTERM lets the running job finish and exits 0 (scheduler.signals).
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.jobstores.memory import MemoryJobStore
from apscheduler.schedulers import SchedulerNotRunningError
from apscheduler.schedulers.blocking import BlockingScheduler
from flask import Flask

from app import tick
from app.extensions import db
from app.health.checks import HEARTBEAT_KEY
from app.models import SystemState, utcnow
from scheduler.lease import LeaderLease
from scheduler.signals import GracefulStop

log = logging.getLogger(__name__)

# Which tick steps each job runs, in order. The send pass first applies queued REDCap Data Entry
# Triggers ("det": a withdrawal saved in REDCap must stop texts before the next send, and an empty
# queue costs one indexed query), then sweeps: the sweep is two indexed range queries that find
# nothing most of the time, and running it here opens visit windows within one send interval instead
# of one sweep interval, so the first reminder is planned on time. The separate sweep job is the
# safety net when the send job is busy (a long send pass).
SEND_STEPS = ("det", "sweep", "plan", "reconcile", "send")
PUSH_STEPS = ("push",)
SWEEP_STEPS = ("sweep",)
ROSTER_STEPS = ("roster", "metadata")


@dataclass(frozen=True)
class JobSpec:
    """One scheduled job: a fixed id, its interval and misfire grace, and the steps it runs."""

    id: str
    seconds: int
    grace: int
    steps: tuple[str, ...]


def job_specs(config: Any) -> list[JobSpec]:
    """The jobs and their intervals from the SCHEDULER_* settings.

    Grace: a job that could not start on time may still start within its own interval; later than
    that, coalescing folds it into the next run (no burst of catch-up runs after a pause).
    """

    def spec(job_id: str, setting: str, job_steps: tuple[str, ...]) -> JobSpec:
        seconds = int(config[setting])
        return JobSpec(job_id, seconds, max(1, seconds), job_steps)

    return [
        spec("send", "SCHEDULER_SEND_SECONDS", SEND_STEPS),
        spec("push", "SCHEDULER_PUSH_SECONDS", PUSH_STEPS),
        spec("sweep", "SCHEDULER_SWEEP_SECONDS", SWEEP_STEPS),
        spec("roster", "SCHEDULER_ROSTER_SECONDS", ROSTER_STEPS),
    ]


def unassigned_steps(specs: list[JobSpec]) -> list[str]:
    """Registered tick steps no job runs; the push job picks them up so nothing in `tick` is left out."""
    assigned = {name for spec in specs for name in spec.steps}
    return [name for name in tick.steps() if name not in assigned]


def _has_work(summary: dict[str, Any]) -> bool:
    """Whether a job did something worth an INFO line (a step reporting only `skipped` is unconfigured)."""
    by_step: dict[str, dict[str, Any]] = {}
    for key, value in summary.items():
        step, _, name = key.partition(".")
        by_step.setdefault(step, {})[name] = value
    for values in by_step.values():
        if set(values) == {"skipped"}:
            continue
        if any(isinstance(v, int | float) and not isinstance(v, bool) and v for v in values.values()):
            return True
    return False


def _catch_up_numbers(summary: dict[str, Any]) -> tuple[int, int, int]:
    """(sent, of which caught up late, skipped as stale) from a send pass summary.

    The SMS engine defines the numbers: `send.sent` counts every text sent, `send.caught_up` those
    sent long after their due time, and `plan.stale` / `send.stale` those it refused to send because
    they went stale while nobody was running (visit closed, or a later reminder already due).
    """

    def number(key: str) -> int:
        value = summary.get(key, 0)
        return value if isinstance(value, int) and not isinstance(value, bool) else 0

    stale = sum(number(key) for key in summary if key.endswith(".stale"))
    return number("send.sent"), number("send.caught_up"), stale


class SchedulerRunner:
    """Owns the BlockingScheduler, the lease and the stop signal for one scheduler process."""

    def __init__(self, app: Flask, lease: LeaderLease | None = None) -> None:
        self.app = app
        config = app.config
        self.heartbeat_seconds = int(config["SCHEDULER_HEARTBEAT_SECONDS"])
        self.lease = lease or LeaderLease(int(config["SCHEDULER_LEASE_SECONDS"]))
        self.specs = job_specs(config)
        extra = unassigned_steps(self.specs)
        if extra:
            push = next(s for s in self.specs if s.id == "push")
            self.specs[self.specs.index(push)] = JobSpec(
                push.id, push.seconds, push.grace, push.steps + tuple(extra)
            )
        self.stop = GracefulStop()
        self._step_locks: dict[str, threading.Lock] = {}
        self._caught_up = False
        self.scheduler = BlockingScheduler(
            jobstores={"default": MemoryJobStore()},
            executors={"default": ThreadPoolExecutor(max_workers=len(self.specs) + 1)},
            job_defaults={"coalesce": True, "max_instances": 1},
            timezone=UTC,
        )
        self._finished = threading.Event()
        # APScheduler logs every run at INFO ("Running job…", "executed successfully"): noise every few
        # seconds. Failures and missed runs are WARNING and still come through.
        logging.getLogger("apscheduler.executors").setLevel(logging.WARNING)
        logging.getLogger("apscheduler.scheduler").setLevel(logging.WARNING)  # "Added job…" ×5 at start

    # --- the jobs ---------------------------------------------------------------------------
    def heartbeat(self) -> bool:
        """Renew (or try to take) the lease; the leader also writes the heartbeat. True when leader."""
        if self.stop.requested.is_set():
            return False
        was_leader = self.lease.held()
        cpu, started = time.thread_time(), time.monotonic()
        with self.stop.job(), self.app.app_context():
            now = utcnow()
            try:
                leader = self.lease.acquire(now)
                if leader:
                    SystemState.write(HEARTBEAT_KEY, now.isoformat())
                    db.session.commit()
                else:
                    self._standby_next_try(now)
            except Exception as exc:  # the database is down or locked: log one line, try next beat
                db.session.rollback()
                log.warning(
                    "heartbeat failed (database unavailable?), retrying in %d s: %s: %s",
                    self.heartbeat_seconds,
                    type(exc).__name__,
                    str(exc).splitlines()[0][:200] if str(exc) else "",
                )
                return False
        elapsed = time.monotonic() - started
        if elapsed > self.lease.seconds / 2:
            log.warning(
                "heartbeat took %.1f s (database slow or locked; lease %d s): jobs pause if the lease lapses",
                elapsed,
                self.lease.seconds,
            )
        log.debug("job heartbeat leader=%s, cpu %.5f s", leader, time.thread_time() - cpu)
        if leader and not was_leader:
            self._caught_up = False
            self._run_all_now()
        return leader

    def _standby_next_try(self, now: datetime) -> None:
        """A standby tries again as soon as the leader's lease would expire, not a whole beat later."""
        expires = self.lease.expires_at()
        if expires is None or not self.scheduler.running:
            return
        soon = max(expires, now) + timedelta(milliseconds=200)
        if soon < now + timedelta(seconds=self.heartbeat_seconds):
            self.scheduler.modify_job("heartbeat", next_run_time=soon)

    def _run_all_now(self) -> None:
        """On becoming leader, start every pass now instead of waiting a full interval."""
        if not self.scheduler.running:
            return
        now = datetime.now(UTC)
        for spec in self.specs:
            try:
                self.scheduler.modify_job(spec.id, next_run_time=now)
            except Exception:  # the job may be mid-removal at shutdown
                log.debug("could not reschedule %s", spec.id, exc_info=True)

    def run_job(self, spec: JobSpec) -> dict[str, Any] | None:
        """Run one job's steps in an application context, if we are the leader and not stopping."""
        if self.stop.requested.is_set() or not self.lease.held():
            return None
        started, cpu = time.monotonic(), time.thread_time()
        summary: dict[str, Any] = {}
        with self.stop.job(), self.app.app_context():
            registered = tick.steps()
            for name in spec.steps:
                if name not in registered:
                    continue
                if not self.lease.held():
                    log.warning("job %s: lease lost, stopping before step %s", spec.id, name)
                    break
                lock = self._step_locks.setdefault(name, threading.Lock())
                if not lock.acquire(blocking=False):
                    continue  # the same step is running in another job right now
                try:
                    result = tick.run_step(name, utcnow())
                except Exception:  # run_step has its own boundary; this is the last one
                    db.session.rollback()
                    log.exception("job %s: step %s failed", spec.id, name)
                    result = {"error": 1}
                finally:
                    lock.release()
                summary.update({f"{name}.{key}": value for key, value in result.items()})
        self._log_summary(spec, summary, time.monotonic() - started, time.thread_time() - cpu)
        return summary

    def _log_summary(self, spec: JobSpec, summary: dict[str, Any], seconds: float, cpu: float) -> None:
        text = " ".join(f"{k}={v}" for k, v in summary.items())
        # Every line ends with this thread's CPU time for the job: bench/bench_scheduler.py adds them up.
        timing = f"in {seconds:.4f} s, cpu {cpu:.5f} s"
        if spec.id == "send" and not self._caught_up:
            self._caught_up = True
            sent, late, stale = _catch_up_numbers(summary)
            log.info(
                "first send pass after start/takeover: sent %d (caught up late: %d), "
                "skipped %d as stale (%s) %s",
                sent,
                late,
                stale,
                text,
                timing,
            )
        elif any(k.endswith(".error") for k in summary):
            log.warning("job %s finished with errors: %s %s", spec.id, text, timing)
        elif _has_work(summary):
            log.info("job %s: %s %s", spec.id, text, timing)
        else:
            log.debug("job %s idle %s", spec.id, timing)

    # --- lifecycle --------------------------------------------------------------------------
    def add_jobs(self) -> None:
        """Define the jobs (fixed ids, replace_existing) with their first run right now."""
        now = datetime.now(UTC)
        self.scheduler.add_job(
            self.heartbeat,
            "interval",
            seconds=self.heartbeat_seconds,
            id="heartbeat",
            name="heartbeat and lease renewal",
            misfire_grace_time=self.heartbeat_seconds,
            next_run_time=now + timedelta(seconds=self.heartbeat_seconds),
            replace_existing=True,
        )
        for spec in self.specs:
            self.scheduler.add_job(
                self.run_job,
                "interval",
                args=[spec],
                seconds=spec.seconds,
                id=spec.id,
                name=f"{spec.id}: {', '.join(spec.steps)}",
                misfire_grace_time=spec.grace,
                next_run_time=now,
                replace_existing=True,
            )

    def _request_shutdown(self) -> None:
        """Stop the scheduler loop (from the signal helper thread), retrying until it has started."""
        while not self._finished.is_set():
            try:
                self.scheduler.shutdown(wait=False)
                return
            except SchedulerNotRunningError:
                if self._finished.wait(0.05):
                    return

    def run(self, install_signals: bool = True) -> int:
        """Run until SIGTERM/SIGINT; returns the process exit code (0 after a clean stop)."""
        if self.lease.seconds <= self.heartbeat_seconds:
            raise ValueError(
                "SCHEDULER_LEASE_SECONDS must be longer than SCHEDULER_HEARTBEAT_SECONDS "
                f"({self.lease.seconds} <= {self.heartbeat_seconds}), or the lease lapses between renewals"
            )
        if install_signals:
            self.stop.install(self._request_shutdown)
        log.info(
            "scheduler %s starting: %s; heartbeat every %d s, lease %d s",
            self.lease.owner,
            ", ".join(f"{s.id} every {s.seconds} s" for s in self.specs),
            self.heartbeat_seconds,
            self.lease.seconds,
        )
        leader = self.heartbeat()
        if not leader:
            log.info("another scheduler holds the lease: waiting as a standby")
        self.add_jobs()
        try:
            if not self.stop.requested.is_set():
                self.scheduler.start()
        finally:
            self._finished.set()
        self.stop.wait_idle()
        self._release()
        log.info("scheduler %s stopped", self.lease.owner)
        return 0

    def request_stop(self) -> None:
        """Ask the scheduler to stop as SIGTERM would (for tests and embedding)."""
        self.stop.requested.set()
        threading.Thread(target=self._request_shutdown, daemon=True).start()

    def _release(self) -> None:
        if not self.lease.held():
            return
        with self.app.app_context():
            try:
                self.lease.release(utcnow())
            except Exception:
                db.session.rollback()
                log.warning("could not release the lease; it expires by itself", exc_info=True)


def run_scheduler(app: Flask, install_signals: bool = True) -> int:
    """Build and run the scheduler for `app`; the CLI command's whole body."""
    return SchedulerRunner(app).run(install_signals=install_signals)
