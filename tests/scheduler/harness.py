"""Fault-injection helpers: the scheduler as a real subprocess, and due reminders to send.

The scheduler runs as `flask --app wsgi scheduler` (or, to model a restart after downtime, through
`python -m tests.scheduler.shifted_clock`, which starts the same command with the wall clock moved
forward). The local Twilio- and REDCap-compatible servers run in the test process on loopback; the
subprocess gets their URLs in its environment.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from app.extensions import db
from app.models import Participant
from app.participants.visits import schedule_participant, sweep_visits
from app.schedule.study_plan import send_window, visit_plan

ROOT = Path(__file__).resolve().parents[2]
ACCOUNT_SID = "AC0123456789abcdef0123456789abcdef"  # fictitious
AUTH_TOKEN = "fedcba9876543210fedcba9876543210"  # fictitious
FROM_NUMBER = "+15550100"  # fictitious +1 555 01xx


def midday_zone(now: datetime) -> str:
    """A fixed-offset zone where `now` is between 12:00 and 13:00, inside any sensible send window."""
    offset = 12 - now.hour  # Etc/GMT signs are inverted: Etc/GMT-8 is UTC+8
    if offset == 0:
        return "Etc/GMT"
    return f"Etc/GMT{'-' if offset > 0 else '+'}{abs(offset)}"


def fake_phone(n: int) -> str:
    """The n-th fictitious number of +86 138 0013 8000-8999 (n < 1000)."""
    assert 0 <= n < 1000
    return f"+861380013{8000 + n}"


def add_due_reminders(count: int, now: datetime, start: int = 0, days_since_discharge: int = 26) -> list[str]:
    """`count` consenting participants whose week-4 visit is open (day 26: opened yesterday); commits.

    Returns their phone numbers. The zone puts `now` at local midday so every text is inside the window.
    """
    zone = midday_zone(now)
    local_today = now.astimezone(ZoneInfo(zone)).date()
    plan, window = visit_plan(), send_window()
    phones = []
    for i in range(start, start + count):
        phone = fake_phone(i)
        participant = Participant(
            record_id=f"F{i:04d}",
            phone_e164=phone,
            phone_status="ok",
            language="zh" if i % 2 else "en",
            timezone=zone,
            sms_consent=True,
            status="active",
            anchor_date=local_today - timedelta(days=days_since_discharge),
            roster_synced_at=now,
        )
        db.session.add(participant)
        db.session.flush()
        schedule_participant(participant, plan, window, now)
        phones.append(phone)
    db.session.commit()
    sweep_visits(now)
    db.session.commit()
    return phones


def scheduler_env(database_url: str, instance: Path, **settings: str) -> dict[str, str]:
    """The subprocess's environment: this database, short intervals, console SMS unless overridden."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("REDCAP_", "TWILIO_", "ALIYUN_", "TENCENT_", "SCHEDULER_", "SMS_"))
    }
    env.update(
        {
            "FOLLOWUP_ENV": "development",
            "DATABASE_URL": database_url,
            "SECRET_KEY": "fault-test-secret",
            "INSTANCE_PATH": str(instance),
            "SMS_BACKEND": "console",
            "SCHEDULER_SEND_SECONDS": "1",
            "SCHEDULER_PUSH_SECONDS": "1",
            "SCHEDULER_SWEEP_SECONDS": "5",
            "SCHEDULER_ROSTER_SECONDS": "3600",
            "SCHEDULER_HEARTBEAT_SECONDS": "1",
            "SCHEDULER_LEASE_SECONDS": "3",
            "LOG_LEVEL": "INFO",
            "PYTHONUNBUFFERED": "1",
        }
    )
    env.update(settings)
    return env


def twilio_settings(api_url: str) -> dict[str, str]:
    """Settings that send through the local Twilio-compatible server at 200 texts a second."""
    return {
        "SMS_BACKEND": "twilio",
        "TWILIO_ACCOUNT_SID": ACCOUNT_SID,
        "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
        "TWILIO_FROM_NUMBER": FROM_NUMBER,
        "TWILIO_API_URL": api_url,
        "TWILIO_TIMEOUT": "2",
        "SMS_RATE_PER_SECOND": "200",
        "SMS_MAX_IN_FLIGHT": "4",
    }


class SchedulerProcess:
    """One `flask --app wsgi scheduler` subprocess with its output in a log file."""

    def __init__(self, env: dict[str, str], log_path: Path, shift_seconds: float = 0) -> None:
        self.env = env
        self.log_path = log_path
        self.shift_seconds = shift_seconds
        self.proc: subprocess.Popen | None = None
        self._offset = log_path.stat().st_size if log_path.exists() else 0

    def start(self) -> SchedulerProcess:
        if self.shift_seconds:
            command = [sys.executable, "-m", "tests.scheduler.shifted_clock", str(self.shift_seconds)]
        else:
            command = [sys.executable, "-m", "flask", "--app", "wsgi", "scheduler"]
        with self.log_path.open("ab") as log_file:
            self.proc = subprocess.Popen(
                command, cwd=ROOT, env=self.env, stdout=log_file, stderr=subprocess.STDOUT
            )
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log(self) -> str:
        """This process's part of the log file."""
        with self.log_path.open("rb") as handle:
            handle.seek(self._offset)
            return handle.read().decode(errors="replace")

    def wait_for_log(self, text: str, timeout: float = 20.0) -> None:
        if not wait_until(lambda: text in self.log() or not self.alive(), timeout) or text not in self.log():
            raise AssertionError(f"{text!r} not logged within {timeout} s:\n{self.log()[-4000:]}")

    def kill(self) -> None:
        """SIGKILL: no handler, no cleanup, no lease release."""
        if self.alive():
            self.proc.kill()
        if self.proc is not None:
            self.proc.wait(timeout=10)

    def signal(self, signum: int) -> None:
        if self.alive():
            os.kill(self.pid, signum)

    def terminate(self, timeout: float = 30.0) -> int:
        """SIGTERM and wait; returns the exit code (SIGKILL after `timeout`, then the test fails)."""
        if self.proc is None:
            return 0
        if self.alive():
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)
            raise AssertionError(
                f"scheduler ignored SIGTERM for {timeout} s:\n{self.log()[-4000:]}"
            ) from None

    def stop_quietly(self) -> None:
        """Teardown: make sure nothing outlives the test."""
        if self.alive():
            self.proc.kill()
        if self.proc is not None:
            self.proc.wait(timeout=10)


def wait_until(predicate: Callable[[], bool], timeout: float, interval: float = 0.05) -> bool:
    """Poll `predicate` until true or `timeout` seconds pass; returns its last value."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return bool(predicate())


class SchedulerProcesses:
    """The `schedulers` fixture: starts scheduler subprocesses for one test and kills every one after it."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.started: list[SchedulerProcess] = []

    def env(self, database_url: str, **settings: str) -> dict[str, str]:
        """The environment of a scheduler process on `database_url`, instance folder in the test's tmp."""
        return scheduler_env(database_url, self.tmp_path / "instance", **settings)

    def start(
        self, env: dict[str, str], log_path: Path | None = None, shift_seconds: float = 0
    ) -> SchedulerProcess:
        """Start one scheduler (log in tmp/scheduler.log unless told), tracked for teardown."""
        proc = SchedulerProcess(env, log_path or self.tmp_path / "scheduler.log", shift_seconds).start()
        self.started.append(proc)
        return proc

    def stop_all(self) -> None:
        """Teardown: nothing outlives the test, whatever failed."""
        for proc in self.started:
            proc.stop_quietly()


def aliyun_settings(api_url: str) -> dict[str, str]:
    """Settings that send through the local Aliyun-compatible server (its default keys and demo templates)."""
    from devservers.aliyun_protocol import DEMO_SMS_TEMPLATES as templates
    from devservers.aliyun_sms import DEFAULT_ACCESS_KEY_ID, DEFAULT_ACCESS_KEY_SECRET, DEFAULT_SIGN_NAME

    return {
        "SMS_BACKEND": "aliyun",
        "ALIYUN_ACCESS_KEY_ID": DEFAULT_ACCESS_KEY_ID,
        "ALIYUN_ACCESS_KEY_SECRET": DEFAULT_ACCESS_KEY_SECRET,
        "ALIYUN_SMS_SIGN_NAME": DEFAULT_SIGN_NAME,
        "ALIYUN_SMS_ENDPOINT": api_url,
        "ALIYUN_SMS_TIMEOUT": "2",
        "SMS_TEMPLATES": json.dumps(templates),
        "SMS_CALLBACK_SECRET": "fault-callback-secret",  # fictitious
        "SMS_RATE_PER_SECOND": "200",
        "SMS_MAX_IN_FLIGHT": "4",
    }


def tencent_settings(api_url: str) -> dict[str, str]:
    """Settings that send through the local Tencent-compatible server (its default keys and demo templates)."""
    from devservers.tencent_sms import DEFAULT_APP_ID, DEFAULT_SECRET_ID, DEFAULT_SECRET_KEY, DEFAULT_SIGN
    from devservers.tencent_state import DEMO_SMS_TEMPLATES as templates

    return {
        "SMS_BACKEND": "tencent",
        "TENCENT_SECRET_ID": DEFAULT_SECRET_ID,
        "TENCENT_SECRET_KEY": DEFAULT_SECRET_KEY,
        "TENCENT_SMS_SDK_APP_ID": DEFAULT_APP_ID,
        "TENCENT_SMS_SIGN_NAME": DEFAULT_SIGN,
        "TENCENT_SMS_ENDPOINT": api_url,
        "TENCENT_SMS_TIMEOUT": "2",
        "TENCENT_SMS_PARAM_MAX_CHARS": "30",
        "SMS_TEMPLATES": json.dumps(templates),
        "SMS_CALLBACK_SECRET": "fault-callback-secret",  # fictitious
        "SMS_RATE_PER_SECOND": "200",
        "SMS_MAX_IN_FLIGHT": "4",
    }
