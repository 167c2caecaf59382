"""Benchmark: the scheduler process's idle CPU cost and its peak memory, next to a bare APScheduler.

Method (printed with the figures):
- Idle CPU: a SQLite database with 100,000 scheduled visits (50,000 participants, windows in the
  future, nothing due). `flask --app wsgi scheduler` runs with EVERY job on a 1-second interval
  (heartbeat lease 3 s) for MEASURE seconds after a warm-up. Each job logs its own thread CPU time;
  the process's total CPU comes from /proc. Per-run cost of each job x its runs per hour at the
  production intervals (send 30 s, push 60 s, sweep 600 s, roster+metadata 900 s, heartbeat 30 s),
  plus the CPU not attributed to any job (dispatch, pool threads, GC) per run x runs per hour, gives
  CPU-seconds per hour. REDCap is not configured, so roster, metadata and push are no-ops: their
  cost is REDCap's size and latency, not idleness.
- Baseline: an idle Python process running a bare APScheduler BlockingScheduler with the same job ids
  doing nothing, measured the same way (its whole CPU is dispatch), extrapolated with the same runs.
- Peak memory: VmHWM of the scheduler process on a database of 1,000,000 visits (500,000 participants)
  after every job ran several times, next to the bare APScheduler's VmHWM.

Targets (issue 7): under 60 CPU-seconds an hour idle, under 200 MB resident.
Run: .venv/bin/python bench/bench_scheduler.py [--measure 60] [--visits 100000] [--memory-visits 1000000]
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

PRODUCTION_SECONDS = {"heartbeat": 30, "send": 30, "push": 60, "sweep": 600, "roster": 900}
JOB_LINE = re.compile(r"job (\w+)\b.*?cpu ([0-9.]+) s")
CLK_TCK = os.sysconf("SC_CLK_TCK")

BARE_APSCHEDULER = """
import signal, sys
from apscheduler.schedulers.blocking import BlockingScheduler
sched = BlockingScheduler(job_defaults={"coalesce": True, "max_instances": 1}, timezone="UTC")
def nothing():
    pass
for job_id in ("heartbeat", "send", "push", "sweep", "roster"):
    sched.add_job(nothing, "interval", seconds=1, id=job_id)
signal.signal(signal.SIGTERM, lambda *_: sched.shutdown(wait=False))
print("started", flush=True)
sched.start()
"""


def build_database(path: Path, visits: int) -> float:
    """Create the schema and `visits` scheduled visits (2 per participant) in the future; returns seconds."""
    from sqlalchemy import insert

    from app import create_app
    from app.extensions import db
    from app.models import Participant, Visit
    from config import DevelopmentConfig

    started = time.monotonic()
    env = {"DATABASE_URL": f"sqlite:///{path}", "SECRET_KEY": "bench", "LOG_LEVEL": "WARNING"}
    app = create_app(DevelopmentConfig(env, instance_path=path.parent / "instance"))
    today = date.today()
    now = datetime.now(UTC)
    with app.app_context():
        db.create_all()
        participants = visits // 2
        batch = 20_000
        for start in range(0, participants, batch):
            stop = min(start + batch, participants)
            db.session.execute(
                insert(Participant),
                [
                    {
                        "id": i + 1,
                        "record_id": f"B{i:07d}",
                        "phone_e164": f"+861380013{8000 + i % 1000}",
                        "phone_status": "ok",
                        "language": "en",
                        "timezone": "Asia/Shanghai",
                        "sms_consent": True,
                        "status": "active",
                        "anchor_date": today - timedelta(days=2),
                    }
                    for i in range(start, stop)
                ],
            )
            rows = []
            for i in range(start, stop):
                anchor = today - timedelta(days=2) + timedelta(days=i % 7)
                for key, target, low, high in (("week_4", 28, 25, 35), ("month_6", 182, 168, 196)):
                    opens = now + timedelta(days=low - 2 + i % 7)
                    rows.append(
                        {
                            "participant_id": i + 1,
                            "visit_key": key,
                            "event_name": f"{key}_arm_1",
                            "target_date": anchor + timedelta(days=target),
                            "window_start": anchor + timedelta(days=low),
                            "window_end": anchor + timedelta(days=high),
                            "opens_at": opens,
                            "closes_at": opens + timedelta(days=high - low + 1),
                            "status": "scheduled",
                        }
                    )
            db.session.execute(insert(Visit), rows)
            db.session.commit()
        db.session.remove()
        db.engine.dispose()
    return time.monotonic() - started


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime + stime


def _peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _scheduler_env(db_path: Path, interval: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("REDCAP_", "TWILIO_", "SCHEDULER_"))}
    env.update(
        {
            "FOLLOWUP_ENV": "development",
            "DATABASE_URL": f"sqlite:///{db_path}",
            "SECRET_KEY": "bench",
            "INSTANCE_PATH": str(db_path.parent / "instance"),
            "SMS_BACKEND": "console",
            "LOG_LEVEL": "DEBUG",
            "SCHEDULER_SEND_SECONDS": str(interval),
            "SCHEDULER_PUSH_SECONDS": str(interval),
            "SCHEDULER_SWEEP_SECONDS": str(interval),
            "SCHEDULER_ROSTER_SECONDS": str(interval),
            "SCHEDULER_HEARTBEAT_SECONDS": str(interval),
            "SCHEDULER_LEASE_SECONDS": str(max(3, 3 * interval)),
            "PYTHONUNBUFFERED": "1",
        }
    )
    return env


def _wait_for(log_path: Path, text: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while text not in log_path.read_text(errors="replace"):
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {text!r}:\n{log_path.read_text()[-3000:]}")
        time.sleep(0.1)


def measure_scheduler(db_path: Path, seconds: float, warmup: float) -> dict:
    """Run the real scheduler on 1-second intervals; CPU per job run and in total, over `seconds`."""
    log_path = db_path.parent / f"scheduler-{db_path.stem}.log"
    with log_path.open("wb") as log_file:
        proc = subprocess.Popen(
            [sys.executable, "-m", "flask", "--app", "wsgi", "scheduler"],
            cwd=ROOT,
            env=_scheduler_env(db_path, 1),
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
        try:
            _wait_for(log_path, "first send pass after start", 120)
            time.sleep(warmup)
            offset = len(log_path.read_bytes())
            cpu0, t0 = _cpu_seconds(proc.pid), time.monotonic()
            time.sleep(seconds)
            cpu1, t1 = _cpu_seconds(proc.pid), time.monotonic()
            window = log_path.read_bytes()[offset:].decode(errors="replace")
            peak = _peak_rss_mb(proc.pid)
        finally:
            proc.terminate()
            code = proc.wait(timeout=60)
    runs: dict[str, int] = defaultdict(int)
    cpu: dict[str, float] = defaultdict(float)
    for match in JOB_LINE.finditer(window):
        runs[match.group(1)] += 1
        cpu[match.group(1)] += float(match.group(2))
    return {
        "elapsed": t1 - t0,
        "process_cpu": cpu1 - cpu0,
        "runs": dict(runs),
        "job_cpu": dict(cpu),
        "peak_mb": peak,
        "exit_code": code,
        "errors": [line for line in window.splitlines() if " ERROR " in line or "Traceback" in line][:5],
    }


def measure_bare(seconds: float, warmup: float) -> dict:
    """The baseline: a bare BlockingScheduler with the same five job ids on 1-second intervals."""
    proc = subprocess.Popen(
        [sys.executable, "-c", BARE_APSCHEDULER], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
    )
    try:
        proc.stdout.readline()
        time.sleep(warmup)
        cpu0, t0 = _cpu_seconds(proc.pid), time.monotonic()
        time.sleep(seconds)
        cpu1, t1 = _cpu_seconds(proc.pid), time.monotonic()
        peak = _peak_rss_mb(proc.pid)
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        proc.stdout.close()
    elapsed = t1 - t0
    return {"elapsed": elapsed, "process_cpu": cpu1 - cpu0, "runs_total": 5 * elapsed, "peak_mb": peak}


def per_hour(measured: dict) -> tuple[float, dict[str, float]]:
    """Extrapolate a 1-second-interval measurement to CPU-seconds per hour at the production intervals."""
    runs_per_hour = {job: 3600 / seconds for job, seconds in PRODUCTION_SECONDS.items()}
    total_runs = sum(measured["runs"].values()) or 1
    unattributed = max(0.0, measured["process_cpu"] - sum(measured["job_cpu"].values())) / total_runs
    parts = {}
    for job, per_h in runs_per_hour.items():
        n = measured["runs"].get(job, 0)
        per_run = measured["job_cpu"].get(job, 0.0) / n if n else 0.0
        parts[job] = (per_run + unattributed) * per_h
    return sum(parts.values()), parts


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--measure", type=float, default=60.0, help="seconds of measurement per process")
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--visits", type=int, default=100_000)
    parser.add_argument("--memory-visits", type=int, default=1_000_000)
    parser.add_argument("--memory-seconds", type=float, default=12.0)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench-scheduler-") as tmp:
        tmpdir = Path(tmp)
        idle_db = tmpdir / "idle.db"
        built = build_database(idle_db, args.visits)
        print(f"database: {args.visits:,} scheduled visits, nothing due (built in {built:.1f} s)")
        ours = measure_scheduler(idle_db, args.measure, args.warmup)
        bare = measure_bare(args.measure, args.warmup)
        ours_h, parts = per_hour(ours)
        runs_per_hour = sum(3600 / s for s in PRODUCTION_SECONDS.values())
        bare_h = bare["process_cpu"] / bare["runs_total"] * runs_per_hour
        print(
            f"measured over {ours['elapsed']:.0f} s with every job every 1 s: scheduler "
            f"{ours['process_cpu']:.2f} CPU-s for {sum(ours['runs'].values())} job runs "
            f"({', '.join(f'{k} {v}' for k, v in sorted(ours['runs'].items()))}); "
            f"bare APScheduler {bare['process_cpu']:.2f} CPU-s for {bare['runs_total']:.0f} runs"
        )
        print(
            "per-run CPU (ms): "
            + ", ".join(
                f"{job} {1000 * ours['job_cpu'].get(job, 0) / max(1, ours['runs'].get(job, 0)):.2f}"
                for job in PRODUCTION_SECONDS
            )
        )
        if ours["errors"]:
            print("errors in the scheduler's log during the run:", *ours["errors"], sep="\n  ")

        mem_db = tmpdir / "memory.db"
        built = build_database(mem_db, args.memory_visits)
        print(f"database: {args.memory_visits:,} scheduled visits (built in {built:.1f} s)")
        memory = measure_scheduler(mem_db, args.memory_seconds, 1.0)

        print()
        print(f"{'':34}{'scheduler':>14}{'bare APScheduler':>20}{'target':>10}")
        print(
            f"{'idle CPU-seconds per hour':34}{ours_h:>14.1f}{bare_h:>20.2f}{'< 60':>10}"
            f"   ({args.visits:,} visits, production intervals)"
        )
        print(
            f"{'peak RSS (MB)':34}{memory['peak_mb']:>14.1f}{bare['peak_mb']:>20.1f}{'< 200':>10}"
            f"   ({args.memory_visits:,} visits)"
        )
        print("idle CPU per hour by job: " + ", ".join(f"{k} {v:.1f} s" for k, v in parts.items()))
        print(f"scheduler exit codes after SIGTERM: {ours['exit_code']}, {memory['exit_code']}")
        ok = ours_h < 60 and memory["peak_mb"] < 200
        print("targets met" if ok else "TARGETS NOT MET")
    return 0


if __name__ == "__main__":
    sys.exit(main())
