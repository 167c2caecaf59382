"""Benchmark: the REDCap push of 1,000 queued answers next to a PyCap loop of one record per call, same run.

Method (printed with the figures):
- The local REDCap-compatible server (devservers.redcap_api) runs in its own process, so its memory is not
  ours, with every API answer delayed by 100 ms (`latency_ms`), as a remote REDCap would be.
- The service runs on a fresh SQLite database of fictitious participants, each with an accepted week-4
  questionnaire queued for the push (all valid against the metadata fetched from the server).
- Ours: `app.redcap.push.run.push_pending` exactly as `flask --app wsgi redcap push` runs it, with the
  default settings (REDCAP_BATCH_SIZE, REDCAP_MAX_CALLS_PER_SECOND): validation against the stored
  metadata, the conflict check (one export per window of rows), imports with `returnContent=ids`, bulk
  status updates. Issue 17: 1,000 answers, `--rounds` times on fresh rows; the median is compared.
- Net of start-up: everything is timed inside this process once Python, the app and PyCap are loaded
  (the command's own start-up is bench_startup.py's business). Ours is timed whole (reads, validation,
  check, imports, commits); the loops time their import calls only (rows built beforehand, untimed).
- Baseline (issue 17), same run: plain PyCap, `Project.import_records([row])` per record, no ceiling (which
  REDCap would ban), on the same kind of rows; all of them unless `--baseline-records` says fewer
  (then extrapolated linearly and printed as such).
- Backlog: peak RSS growth of this process during a push of 2,000 and of `--submissions` (10,000),
  sampled every 20 ms (flat: the push streams rows), and one record per call through our client within
  the same ceiling on `--sample` rows, extrapolated to the backlog.

Run: .venv/bin/python bench/bench_redcap_push.py [--answers 1000] [--rounds 3] [--submissions 10000]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

# fmt: off
ANSWERS = {
    "fu_fever": "1", "fu_fever_days": "3", "fu_mmrc": "2", "fu_cough": "1", "fu_sneezing": "0",
    "fu_diarrhea": "0", "fu_readmitted": "0", "fu_ae___1": "0", "fu_ae___2": "1", "fu_ae___3": "0",
    "fu_ae___4": "0", "fu_ae___5": "0", "fu_health_today": "70", "fu_comments": "feeling better every week",
}
# fmt: on


class RssSampler:
    """Peak resident memory of this process while a block runs (Linux /proc), sampled every 20 ms."""

    def __init__(self) -> None:
        self.page = os.sysconf("SC_PAGE_SIZE")
        self.peak = 0
        self._stop = threading.Event()

    def rss(self) -> int:
        return int(Path("/proc/self/statm").read_text().split()[1]) * self.page

    def __enter__(self) -> RssSampler:
        self.start = self.peak = self.rss()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(0.02):
            self.peak = max(self.peak, self.rss())

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.rss())

    @property
    def growth_mib(self) -> float:
        return (self.peak - self.start) / 2**20


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def control(base: str, payload: dict | None = None) -> dict:
    data = None if payload is None else json.dumps(payload).encode()
    req = urllib.request.Request(f"{base}/_control", data=data, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        return json.loads(resp.read())


def start_server(port: int, token: str) -> subprocess.Popen:
    args = ["--port", str(port), "--project", "study", "--token", token]
    proc = subprocess.Popen(
        [sys.executable, "-m", "devservers.redcap_api", *args],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    for _ in range(100):
        try:
            control(f"http://127.0.0.1:{port}")
            return proc
        except OSError:
            time.sleep(0.1)
    proc.terminate()
    raise SystemExit("the local REDCap server did not start")


def queue_submissions(start: int, n: int, now: datetime) -> None:
    """N participants with a completed week-4 visit and a queued submission, inserted in bulk."""
    from sqlalchemy import insert, select

    from app.extensions import db
    from app.models import Participant, Submission, Visit

    discharge = date.today() - timedelta(days=27)
    for offset in range(0, n, 1000):
        ids = range(start + offset, start + min(n, offset + 1000))
        db.session.execute(
            insert(Participant),
            [
                {
                    "record_id": str(i),
                    "phone_e164": f"+861380013{8000 + i % 1000}",
                    "phone_status": "ok",
                    "language": "zh",
                    "timezone": "Asia/Shanghai",
                    "sms_consent": True,
                    "status": "active",
                    "anchor_date": discharge,
                }
                for i in ids
            ],
        )
        people = db.session.execute(
            select(Participant.id).where(Participant.record_id.in_([str(i) for i in ids]))
        ).scalars()
        opens = now - timedelta(days=2)
        visit_ids = db.session.execute(
            insert(Visit).returning(Visit.id),
            [
                {
                    "participant_id": pid,
                    "visit_key": "week_4",
                    "event_name": "week_4_arm_1",
                    "target_date": discharge + timedelta(days=28),
                    "window_start": discharge + timedelta(days=25),
                    "window_end": discharge + timedelta(days=35),
                    "opens_at": opens,
                    "closes_at": opens + timedelta(days=10),
                    "status": "completed",
                    "completed_at": now,
                    "completed_via": "questionnaire",
                    "invited_at": opens,
                    "reminders_sent": 1,
                }
                for pid in people
            ],
        ).scalars()
        db.session.execute(
            insert(Submission),
            [
                {
                    "visit_id": vid,
                    "answers": dict(ANSWERS, fu_health_today=str(40 + vid % 60)),
                    "sync_status": "pending",
                    "next_attempt_at": now,
                    "submitted_at": now,
                }
                for vid in visit_ids
            ],
        )
        db.session.commit()


def measure_ours(base: str, label: str, now: datetime) -> dict:
    from app.extensions import db
    from app.redcap.push.run import push_pending

    control(base, {"clear_calls": True})
    with RssSampler() as mem:
        started = time.perf_counter()
        report = push_pending(now)
        wall = time.perf_counter() - started
    db.session.remove()
    snap = control(base)
    counters = snap["counters"]
    return {
        "label": label,
        "pushed": report.pushed,
        "wall": wall,
        "calls": snap["calls"],
        "imports": counters.get("record.import", 0),
        "max_cps": snap["max_calls_per_second"],
        "rss": mem.growth_mib,
        "left": report.deferred + report.rejected + report.invalid,
    }


def queued_rows(n: int, now: datetime) -> tuple[list[Any], list[int]]:
    """The import rows of the `n` oldest queued submissions, built as the push builds them (not timed)."""
    from flask import current_app

    from app.redcap.client import client_from_config
    from app.redcap.push.queue import PassContext, PushReport
    from app.redcap.push.submissions import SubmissionQueue

    ctx = PassContext(
        client_from_config(current_app.config), now, current_app.config, 1, time.sleep, PushReport()
    )
    items, _ = SubmissionQueue(ctx, True).next_batch(0, n)
    return [item.row for item in items], [item.id for item in items]


def measure_loop(base: str, n: int, now: datetime, import_one: Callable[[Any], object]) -> dict:
    """One import call per record over `n` queued submissions; times the loop of calls only."""
    from sqlalchemy import update

    from app.extensions import db
    from app.models import Submission

    rows, ids = queued_rows(n, now)
    control(base, {"clear_calls": True})
    started = time.perf_counter()
    for row in rows:
        import_one(row)
    wall = time.perf_counter() - started
    db.session.execute(update(Submission).where(Submission.id.in_(ids)).values(sync_status="pushed"))
    db.session.commit()
    snap = control(base)
    return {
        "records": len(rows),
        "wall": wall,
        "calls": snap["calls"],
        "max_cps": snap["max_calls_per_second"],
    }


def pycap_loop(url: str, token: str) -> Callable[[Any], object]:
    """The issue's baseline: plain PyCap, `import_records([row])` per record, no ceiling, built untimed."""
    import redcap

    project = redcap.Project(url, token)
    return lambda row: project.import_records(
        [row], return_content="ids", overwrite="normal", date_format="YMD"
    )


def client_loop(rate: float) -> Callable[[Any], object]:
    """One record per call through our client with the same ceiling (what a naive push would cost here)."""
    from flask import current_app

    from app.redcap.client import client_from_config

    client = client_from_config(dict(current_app.config, REDCAP_MAX_CALLS_PER_SECOND=rate))
    return lambda row: client.import_records([row])


def load() -> str:
    return "load average " + " ".join(f"{x:.2f}" for x in os.getloadavg())


def issue_comparison(base: str, args: argparse.Namespace, now: datetime, start: int) -> None:
    """Issue 17: the push of N queued answers vs a PyCap loop, one record per call, no ceiling, same run."""
    from flask import current_app

    rounds = []
    for r in range(args.rounds):
        queue_submissions(start + r * 100_000, args.answers, now)
        rounds.append(measure_ours(base, f"ours, {args.answers:,} answers, round {r + 1}", now))
    for row in rounds:
        print(
            f"{row['label']:>36}: {row['wall']:6.2f} s; {row['calls']} API calls ({row['imports']} imports); "
            f"max {row['max_cps']} calls in any 1 s; not pushed {row['left']}"
        )
    ours = statistics.median(row["wall"] for row in rounds)
    queue_submissions(start + 90_000, args.baseline_records, now)
    url, token = current_app.config["REDCAP_API_URL"], current_app.config["REDCAP_API_TOKEN"]
    loop = measure_loop(base, args.baseline_records, now, pycap_loop(url, token))
    total = loop["wall"] * args.answers / loop["records"]
    how = "measured" if loop["records"] == args.answers else f"extrapolated from {loop['records']}"
    print(
        f"{'PyCap loop, 1 record/call, no ceiling':>36}: {loop['records']} records in {loop['wall']:.1f} s "
        f"(max {loop['max_cps']} calls in any 1 s); {args.answers:,} records: {total:.1f} s ({how})"
    )
    print(
        f"issue 17: push of {args.answers:,} answers, median of {args.rounds}: {ours:.2f} s vs PyCap loop "
        f"{total:.1f} s -> ours is {total / ours:.1f}x faster (target >= 40x); {load()}"
    )


def backlog_runs(base: str, args: argparse.Namespace, now: datetime, cps: float) -> None:
    """Memory stays flat with the backlog; one record per call within the same ceiling, extrapolated."""
    queue_submissions(1_000_000, args.small, now)
    small = measure_ours(base, f"ours, backlog {args.small:,}", now)
    queue_submissions(2_000_000, args.submissions, now)
    big = measure_ours(base, f"ours, backlog {args.submissions:,}", now)
    for row in (small, big):
        print(
            f"{row['label']:>36}: {row['pushed']:>6,} pushed in {row['wall']:7.1f} s = "
            f"{row['pushed'] / row['wall']:7.1f} records/s; {row['calls']} API calls "
            f"({row['imports']} imports); max {row['max_cps']} calls in any 1 s; "
            f"peak RSS growth {row['rss']:.1f} MiB; not pushed {row['left']}"
        )
    if args.sample:
        queue_submissions(3_000_000, args.sample, now)
        same = measure_loop(base, args.sample, now, client_loop(cps))
        rate = same["records"] / same["wall"]
        print(
            f"our client, 1 record/call, same ceiling: {same['records']} records in {same['wall']:.1f} s "
            f"(max {same['max_cps']} calls in any 1 s); extrapolated to {args.submissions:,}: "
            f"{args.submissions / rate:,.0f} s -> ours is {big['pushed'] / big['wall'] / rate:.0f}x faster"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--answers", type=int, default=1_000, help="issue 17: queued answers per round")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of our push (the median is compared)")
    parser.add_argument(
        "--baseline-records", type=int, default=None, help="records the PyCap loop imports (default: all)"
    )
    parser.add_argument(
        "--submissions", type=int, default=10_000, help="backlog for the memory check; 0 = skip"
    )
    parser.add_argument("--small", type=int, default=2_000, help="the smaller backlog for the memory check")
    parser.add_argument("--latency-ms", type=int, default=100)
    parser.add_argument("--sample", type=int, default=200, help="records one per call within the ceiling")
    parser.add_argument(
        "--roster-participants", type=int, default=10_000, help="roster sync with status (issue 8); 0 = skip"
    )
    args = parser.parse_args()
    args.baseline_records = args.baseline_records or args.answers
    logging.disable(logging.WARNING)

    from app import create_app
    from app.extensions import db
    from app.redcap.metadata import refresh_metadata
    from config import TestingConfig
    from devservers.redcap_api import DEV_TOKEN

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    server = start_server(port, DEV_TOKEN)
    tmp = tempfile.mkdtemp(prefix="bench-push-")
    try:
        app = create_app(
            TestingConfig(
                {
                    "DATABASE_URL": f"sqlite:///{tmp}/bench.db",
                    "REDCAP_API_URL": f"{base}/api/",
                    "REDCAP_API_TOKEN": DEV_TOKEN,
                    "SMS_BACKEND": "console",
                },
                instance_path=Path(tmp) / "instance",
            )
        )
        with app.app_context():
            db.create_all()
            cps, batch = app.config["REDCAP_MAX_CALLS_PER_SECOND"], app.config["REDCAP_BATCH_SIZE"]
            now = datetime.now(UTC)
            refresh_metadata(now)
            control(base, {"latency_ms": args.latency_ms})
            print(
                f"REDCap push benchmark: {args.latency_ms} ms added to every API call, batch {batch}, "
                f"ceiling {cps:g} calls/s (default settings), local server in its own process; {load()}"
            )
            queue_submissions(900_000, 300, now)
            measure_ours(base, "warm-up (not reported)", now)  # first-use allocations are not backlog
            issue_comparison(base, args, now, 4_000_000)
            if args.submissions:
                backlog_runs(base, args, now, cps)
    finally:
        server.terminate()
        server.wait(timeout=10)
    if args.roster_participants:
        roster_sync_with_status(args.roster_participants, args.latency_ms)


def roster_sync_with_status(participants: int, latency_ms: int) -> None:
    """Issue 8: API calls and wall time of one roster sync of N participants with their follow-up status."""
    sys.path.insert(0, str(ROOT / "bench"))
    from bench_roster_sync import run

    print()
    run(participants, latency_ms, sample=100)


if __name__ == "__main__":
    main()
