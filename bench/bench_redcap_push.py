"""Benchmark: the batched REDCap push of 10,000 submissions next to a one-record-per-call push, same run.

Method (printed with the figures):
- The local REDCap-compatible server (devservers.redcap_api) runs in its own process, so its memory is not
  ours, with every API answer delayed by 100 ms (`latency_ms`), as a remote REDCap would be.
- The service runs on a fresh SQLite database holding N fictitious participants, each with an accepted
  week-4 questionnaire queued for the push (all valid against the metadata fetched from the server).
- Ours: `app.redcap.push.run.push_pending` exactly as `flask --app wsgi redcap push` runs it: batches of
  REDCAP_BATCH_SIZE (100), the REDCap client's ceiling REDCAP_MAX_CALLS_PER_SECOND (5), validation against
  the stored metadata, every pre-push check registered by other areas (issue 8 reads REDCap once per batch
  to refuse overwriting staff data), `returnContent=ids` confirmation, bulk status updates.
- Memory: peak RSS growth of this process during the push, sampled every 20 ms, measured for a backlog
  of 2,000 and then of N (10,000): flat means the push streams rows instead of loading the backlog.
- Baseline, in the same run: the same rows imported one record per call through the same client, on a
  sample (default 200) with the same ceiling, and on a sample without any ceiling (which REDCap would ban);
  both extrapolated linearly to N and printed as extrapolated.

Run: .venv/bin/python bench/bench_redcap_push.py [--submissions 10000] [--latency-ms 100] [--sample 200]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

ANSWERS = {
    "fu_fever": "1",
    "fu_fever_days": "3",
    "fu_mmrc": "2",
    "fu_cough": "1",
    "fu_sneezing": "0",
    "fu_diarrhea": "0",
    "fu_readmitted": "0",
    "fu_ae___1": "0",
    "fu_ae___2": "1",
    "fu_ae___3": "0",
    "fu_ae___4": "0",
    "fu_ae___5": "0",
    "fu_health_today": "70",
    "fu_comments": "feeling better every week",
}


class RssSampler:
    """Peak resident memory of this process while a block runs (Linux /proc), sampled every 20 ms."""

    def __init__(self) -> None:
        self.page = os.sysconf("SC_PAGE_SIZE")
        self.peak = 0
        self._stop = threading.Event()

    def rss(self) -> int:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * self.page

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
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "devservers.redcap_api",
            "--port",
            str(port),
            "--project",
            "study",
            "--token",
            token,
        ],
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


def measure_baseline(base: str, sample: int, now: datetime, rate: float) -> dict:
    """One import call per record, same rows and client, on `sample` queued submissions."""
    from flask import current_app
    from sqlalchemy import update

    from app.extensions import db
    from app.models import Submission
    from app.redcap.client import client_from_config
    from app.redcap.push.queue import PassContext, PushReport
    from app.redcap.push.submissions import SubmissionQueue

    config = dict(current_app.config, REDCAP_MAX_CALLS_PER_SECOND=rate)
    client = client_from_config(config)
    ctx = PassContext(client, now, current_app.config, 1, time.sleep, PushReport())
    items, _ = SubmissionQueue(ctx, True).next_batch(0, sample)
    control(base, {"clear_calls": True})
    started = time.perf_counter()
    for item in items:
        client.import_records([item.row])
    wall = time.perf_counter() - started
    db.session.execute(
        update(Submission).where(Submission.id.in_([i.id for i in items])).values(sync_status="pushed")
    )
    db.session.commit()
    snap = control(base)
    return {
        "records": len(items),
        "wall": wall,
        "calls": snap["calls"],
        "max_cps": snap["max_calls_per_second"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--submissions", type=int, default=10_000)
    parser.add_argument("--small", type=int, default=2_000, help="the smaller backlog for the memory check")
    parser.add_argument("--latency-ms", type=int, default=100)
    parser.add_argument(
        "--sample", type=int, default=200, help="records pushed one per call for the baseline"
    )
    parser.add_argument(
        "--roster-participants", type=int, default=10_000, help="roster sync with status (issue 8); 0 = skip"
    )
    args = parser.parse_args()
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
                f"ceiling {cps:g} calls/s, local server in its own process"
            )

            queue_submissions(900_000, 300, now)
            measure_ours(base, "warm-up (not reported)", now)  # first-use allocations are not backlog
            queue_submissions(1_000_000, args.small, now)
            small = measure_ours(base, f"ours, backlog {args.small:,}", now)
            queue_submissions(2_000_000, args.submissions, now)
            big = measure_ours(base, f"ours, backlog {args.submissions:,}", now)
            for row in (small, big):
                print(
                    f"{row['label']:>24}: {row['pushed']:>6,} pushed in {row['wall']:7.1f} s = "
                    f"{row['pushed'] / row['wall']:7.1f} records/s; {row['calls']} API calls "
                    f"({row['imports']} imports); max {row['max_cps']} calls in any 1 s; "
                    f"peak RSS growth {row['rss']:.1f} MiB; not pushed {row['left']}"
                )

            queue_submissions(3_000_000, args.sample * 2, now)
            same = measure_baseline(base, args.sample, now, cps)
            free = measure_baseline(base, args.sample, now, 10_000.0)
            ours_rate = big["pushed"] / big["wall"]
            for name, row in (("same ceiling", same), ("no ceiling (REDCap would ban)", free)):
                rate = row["records"] / row["wall"]
                extrapolated = args.submissions / rate
                print(
                    f"baseline 1 record/call, {name}: {row['records']} records in {row['wall']:.1f} s = "
                    f"{rate:.2f} records/s (max {row['max_cps']} calls in any 1 s); extrapolated to "
                    f"{args.submissions:,}: {extrapolated:,.0f} s -> ours is {ours_rate / rate:.0f}x faster"
                )
            print(
                f"memory: peak RSS growth {small['rss']:.1f} MiB at {args.small:,} queued vs "
                f"{big['rss']:.1f} MiB at {args.submissions:,} queued"
            )
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
