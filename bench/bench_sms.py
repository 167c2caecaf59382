"""Benchmark: the SMS engine's send rate against a slow provider, and the cost of a planning pass.

Method (printed with the figures):
1. Send, for each backend (twilio, aliyun, tencent): a SQLite database with 2,000 participants whose
   week-4 visit is open and whose first reminder is due. One plan pass, then one send pass, to the
   backend's local server (devservers/) running as its own process with 50 ms, then 300 ms latency
   per request (one pass each, in one process), SMS_RATE_PER_SECOND=100 and every other setting at
   its default (the number in flight follows from the rate and the observed latency,
   app.sms.concurrency). Achieved rate = texts accepted / wall time of the send pass; target >= 95 %
   of the configured rate. Baseline, side by side: the backend's own SDK client sending one text after
   another to the same server (no outbox, no rate limit), which is what latency alone allows.
2. Plan: one planning pass over 100,000 and over 1,000,000 scheduled visits of which 10,000 are open
   and due (SQLite file, bulk inserts), wall time and peak Python memory (tracemalloc, a second run).
   Baseline: a naive pass that computes the reminder times of every scheduled visit.

Run: .venv/bin/python bench/bench_sms.py [--send 2000] [--latencies-ms 50,300]
     [--backends twilio,aliyun,tencent] [--sizes 100000,1000000]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import tracemalloc
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import sms_backends  # noqa: E402  (bench/, after the path is set)

ZONE = "Asia/Shanghai"
NOW = datetime.combine(date.today(), datetime.min.time(), UTC).replace(hour=4)  # 12:00 in Shanghai


DATABASE_URL: str | None = None  # --database-url: PostgreSQL for the send figure


def make_app(db_path: Path, **extra: str):
    from app import create_app
    from config import DevelopmentConfig

    env = {
        "DATABASE_URL": extra.pop("DATABASE_URL", None) or f"sqlite:///{db_path}",
        "SECRET_KEY": "bench",
        "LOG_LEVEL": "WARNING",
        "PUBLIC_BASE_URL": "https://followup.example-hospital.org.cn",
        "STUDY_TIMEZONE": ZONE,
    }
    env.update(extra)
    return create_app(DevelopmentConfig(env, instance_path=db_path.parent / "instance"))


def build(app, scheduled: int, due: int, due_days: range) -> float:
    """`scheduled` visits in all, 2 per participant; `due` of them open now; returns seconds to build."""
    from sqlalchemy import insert

    from app.extensions import db
    from app.models import Participant, Visit
    from app.schedule import SendWindow, compute_visit, parse_visit_plan

    started = time.monotonic()
    plan = parse_visit_plan(app.config["VISIT_PLAN"])
    window = SendWindow.parse(app.config["SMS_SEND_WINDOW"])
    zone = ZoneInfo(ZONE)
    today = NOW.astimezone(zone).date()
    cache: dict = {}

    def schedule(anchor: date):
        if anchor not in cache:
            cache[anchor] = [compute_visit(anchor, zone, spec, window) for spec in plan.visits]
        return cache[anchor]

    with app.app_context():
        db.drop_all()
        db.create_all()
        participants = scheduled // 2
        batch = 20_000
        for start in range(0, participants, batch):
            people, visits = [], []
            for i in range(start, min(start + batch, participants)):
                is_due = i < due
                days = due_days[i % len(due_days)] if is_due else 1 + i % 20  # others: windows ahead
                anchor = today - timedelta(days=days)
                people.append(
                    {
                        "id": i + 1,
                        "record_id": f"B{i:07d}",
                        "phone_e164": f"+86138{i:08d}",
                        "phone_status": "ok",
                        "language": "zh" if i % 2 else "en",
                        "timezone": ZONE,
                        "sms_consent": True,
                        "status": "active",
                        "opted_out": False,
                        "anchor_date": anchor,
                    }
                )
                for n, computed in enumerate(schedule(anchor)):
                    visits.append(
                        {
                            "id": 2 * i + n + 1,
                            "participant_id": i + 1,
                            "visit_key": computed.key,
                            "event_name": computed.event_name,
                            "target_date": computed.target_date,
                            "window_start": computed.window_start,
                            "window_end": computed.window_end,
                            "opens_at": computed.opens_at,
                            "closes_at": computed.closes_at,
                            "status": "open" if is_due and n == 0 else "scheduled",
                        }
                    )
            db.session.execute(insert(Participant), people)
            db.session.execute(insert(Visit), visits)
            db.session.commit()
    return time.monotonic() - started


def bench_send(
    backend: str, count: int, rate: float, latency_ms: int, in_flight: int | None
) -> tuple[float, float]:
    """One send pass of `count` due texts; returns achieved / configured rate and the baseline's rate."""
    from sqlalchemy import func, select

    from app.extensions import db
    from app.models import OutboundMessage
    from app.sms import concurrency
    from app.sms.planner import plan_due
    from app.sms.sender import send_due

    concurrency._meters.clear()  # each pass learns its latency afresh, as a new process would
    proc, url = sms_backends.start_server(backend, latency_ms)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            app = make_app(
                Path(tmp) / "send.db",
                **sms_backends.settings(backend, url),
                SMS_RATE_PER_SECOND=str(rate),
                SMS_MAX_IN_FLIGHT=str(in_flight) if in_flight else "",
                DATABASE_URL=DATABASE_URL or "",
            )
            build(app, 2 * count, count, range(26, 27))
            with app.app_context():
                planned = plan_due(NOW).planned
                started = time.monotonic()
                summary = send_due(NOW)
                elapsed = time.monotonic() - started
                sized = f"{concurrency.wanted(app.config)} in flight at the end of the pass"
                sized += f" (ceiling SMS_MAX_IN_FLIGHT={app.config['SMS_MAX_IN_FLIGHT']})"
                accepted = db.session.scalar(
                    select(func.count())
                    .select_from(OutboundMessage)
                    .where(OutboundMessage.provider_sid.is_not(None))
                )
        at_server, most = sms_backends.counters(url)
        achieved = accepted / elapsed
        print(
            f"send {backend} ({'PostgreSQL' if DATABASE_URL else 'SQLite'}): planned {planned}, "
            f"sent {summary['sent']}, accepted by the server {at_server}"
        )
        peak = f"; most in any second at the server: {most}" if most is not None else ""
        print(
            f"send {backend}: {accepted} texts in {elapsed:.1f} s = {achieved:.1f}/s against {rate:.0f}/s "
            f"configured ({100 * achieved / rate:.1f} %), latency {latency_ms} ms, {sized}{peak}"
        )
        base = sms_backends.baseline(backend, url)
        print(
            f"baseline {backend}: the bare SDK client, sequential: {base:.1f}/s - what latency alone allows"
        )
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    return achieved / rate, base


def bench_plan(sizes: list[int], due: int) -> None:
    from sqlalchemy import select

    from app.extensions import db
    from app.models import Participant, Visit
    from app.schedule import SendWindow, compute_visit, parse_visit_plan
    from app.sms.planner import plan_due

    for size in sizes:
        with tempfile.TemporaryDirectory() as tmp:
            app = make_app(Path(tmp) / "plan.db")
            built = build(app, size, due, range(25, 35))
            with app.app_context():
                # Naive baseline: compute the reminders of every scheduled visit (what a full scan costs).
                plan = {s.key: s for s in parse_visit_plan(app.config["VISIT_PLAN"]).visits}
                window = SendWindow.parse(app.config["SMS_SEND_WINDOW"])
                started = time.monotonic()
                due_naive = 0
                rows = db.session.execute(
                    select(Visit.visit_key, Participant.anchor_date, Participant.timezone).join(Participant)
                )
                for key, anchor, zone in rows:
                    reminders = compute_visit(anchor, ZoneInfo(zone), plan[key], window).reminders
                    due_naive += any(r.due_at <= NOW for r in reminders)
                naive = time.monotonic() - started

                started = time.monotonic()
                result = plan_due(NOW)
                wall = time.monotonic() - started
                db.session.execute(db.text("DELETE FROM outbound_messages"))
                db.session.commit()
                tracemalloc.start()
                plan_due(NOW)
                _, peak = tracemalloc.get_traced_memory()
                tracemalloc.stop()
            print(
                f"plan: {size:>9,} scheduled visits, {result.visits:,} open, planned {result.planned:,} "
                f"(+{result.stale:,} stale slots skipped): {wall:.2f} s, "
                f"peak Python memory {peak / 2**20:.1f} MiB  | naive full scan: {naive:.2f} s "
                f"({due_naive:,} with a due slot)  [built in {built:.0f} s]"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--send", type=int, default=2_000)
    parser.add_argument("--rate", type=float, default=100.0)
    parser.add_argument("--latencies-ms", default="50,300", help="one send pass per server latency")
    parser.add_argument("--backends", default=",".join(sms_backends.BACKENDS), help="twilio,aliyun,tencent")
    parser.add_argument("--in-flight", type=int, help="SMS_MAX_IN_FLIGHT (default: the setting's default)")
    parser.add_argument("--sizes", default="100000,1000000")
    parser.add_argument("--due", type=int, default=10_000)
    parser.add_argument("--database-url", help="run the send figure on this database (e.g. PostgreSQL)")
    args = parser.parse_args()
    global DATABASE_URL
    DATABASE_URL = args.database_url
    if args.send:
        results = {
            (backend, ms): bench_send(backend, args.send, args.rate, int(ms), args.in_flight)
            for backend in args.backends.split(",")
            for ms in args.latencies_ms.split(",")
        }
        print(f"{'backend':8} {'latency':>8} {'achieved/configured':>20} {'bare SDK, sequential':>21}")
        for (backend, ms), (ratio, base) in results.items():
            verdict = "ok" if ratio >= 0.95 else "MISSED"
            print(
                f"{backend:8} {ms + ' ms':>8} {100 * ratio:19.1f} % {base:19.1f}/s"
                f"  (target >= 95 %) -> {verdict}"
            )
    sizes = [int(s) for s in args.sizes.split(",") if s]
    if sizes:
        bench_plan(sizes, args.due)


if __name__ == "__main__":
    main()
