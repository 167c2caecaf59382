"""Benchmark: API calls and wall time of one roster sync of 10,000 participants with their follow-up status.

Method (printed with the figures):
- The local REDCap-compatible server (devservers) holds N fictitious participants at baseline and, for
  10 % of them, a week-4 questionnaire entered by staff (complete). Every API answer is delayed by
  100 ms (`set_latency(100)`), as a remote REDCap would be.
- Ours: `app.redcap.roster.sync_roster` on an empty SQLite database, as `flask --app wsgi roster sync`
  runs it:
  one export of record ids, then per chunk of 500 records one enrollment export and ONE follow-up status
  export (`{questionnaire}_complete` and the contact status field, follow-up events only), all through the
  REDCap client (rate ceiling REDCAP_MAX_CALLS_PER_SECOND, here 10). Calls are counted by the server.
  A second sync against the unchanged REDCap is measured too (nothing changes; the calls are the same).
- Baseline, in the same run: the status read done one record per call (what a per-record check costs),
  timed on a sample of records and extrapolated to N (printed as extrapolated).

Run: .venv/bin/python bench/bench_roster_sync.py [--participants 10000] [--latency-ms 100] [--sample 100]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def seed_rows(n: int, today) -> list[dict[str, str]]:
    """Fictitious baseline rows (+86 138 0013 8xxx) and staff-entered week-4 questionnaires for 10 %."""
    rows: list[dict[str, str]] = []
    for i in range(n):
        record = str(100000 + i)
        discharge = (today - timedelta(days=20 + i % 150)).isoformat()
        rows.append(
            {
                "record_id": record,
                "redcap_event_name": "baseline_arm_1",
                "enrol_date": discharge,
                "discharge_date": discharge,
                "mobile_phone": f"1380013{8000 + i % 1000}",
                "sms_consent": "1",
                "preferred_language": str(1 + i % 2),
                "study_status": "1",
                "randomization_group": str(1 + i % 2),
                "enrollment_complete": "2",
            }
        )
        if i % 10 == 0:
            rows.append(
                {
                    "record_id": record,
                    "redcap_event_name": "week_4_arm_1",
                    "fu_fever": "0",
                    "fu_mmrc": "1",
                    "fu_cough": "0",
                    "followup_questionnaire_complete": "2",
                }
            )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--participants", type=int, default=10_000)
    parser.add_argument("--latency-ms", type=int, default=100)
    parser.add_argument("--sample", type=int, default=100, help="records read one per call for the baseline")
    args = parser.parse_args()
    run(args.participants, args.latency_ms, args.sample)


def run(participants: int, latency_ms: int, sample: int = 100) -> None:
    """Measure and print (also called by bench/bench_redcap_push.py, the REDCap bridge's benchmark)."""
    args = argparse.Namespace(participants=participants, latency_ms=latency_ms, sample=sample)
    import logging

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one access line per API call otherwise

    from app import create_app
    from app.extensions import db
    from app.models import Visit
    from app.redcap.roster import sync_roster
    from app.redcap.status import export_status_rows
    from config import TestingConfig
    from devservers.redcap_api import DEV_TOKEN, create_redcap_app
    from devservers.redcap_project import ProjectDefinition
    from devservers.redcap_state import RedcapState
    from devservers.runner import serve_in_thread

    state = RedcapState(ProjectDefinition.load(ROOT / "study"), DEV_TOKEN)
    now = datetime.now(UTC)
    started = time.perf_counter()
    state.seed_records(seed_rows(args.participants, now.date()))
    seeded = time.perf_counter() - started
    print(f"seeded {args.participants} participants in the local REDCap in {seeded:.1f} s")
    server = serve_in_thread(create_redcap_app(state.project, state=state))
    tmp = Path(tempfile.mkdtemp(prefix="bench-roster-"))
    app = create_app(
        TestingConfig(
            {
                "DATABASE_URL": f"sqlite:///{tmp / 'bench.db'}",
                "REDCAP_API_URL": f"{server.url}/api/",
                "REDCAP_API_TOKEN": DEV_TOKEN,
                "REDCAP_MAX_CALLS_PER_SECOND": "10",
                "SMS_BACKEND": "console",
                "LOG_LEVEL": "WARNING",
            },
            instance_path=tmp / "instance",
        )
    )
    try:
        with app.app_context():
            db.create_all()
            state.set_latency(args.latency_ms)
            rows = []
            for label in ("first sync (creates everyone)", "second sync (REDCap unchanged)"):
                state.clear_calls()
                t0 = time.perf_counter()
                report = sync_roster(now)
                wall = time.perf_counter() - t0
                calls = len(state.calls)
                status_calls = sum(
                    1 for c in state.calls if "followup_questionnaire_complete" in c.get("fields", [])
                )
                rows.append((label, calls, status_calls, wall, report.summary()))
            completed = db.session.query(Visit).filter_by(status="completed", completed_via="redcap").count()

            ids = [str(100000 + i) for i in range(min(args.sample, args.participants))]
            state.clear_calls()
            t0 = time.perf_counter()
            for record in ids:
                export_status_rows([record])
            per_call = (time.perf_counter() - t0) / max(1, len(ids))
    finally:
        state.close()
        server.stop()

    n = args.participants
    print(f"\nRoster sync of {n} participants with follow-up status, {args.latency_ms} ms added to each call")
    print(f"{'run':34} {'API calls':>9} {'of which status':>15} {'wall s':>8} {'calls x latency s':>17}")
    for label, calls, status_calls, wall, _ in rows:
        print(f"{label:34} {calls:9d} {status_calls:15d} {wall:8.1f} {calls * args.latency_ms / 1000:17.1f}")
    floor = n * args.latency_ms / 1000
    print(
        f"{'baseline: status 1 record per call':34} {n:9d} {n:15d} {per_call * n:8.1f} {floor:17.1f}"
        f"  (extrapolated from {len(ids)} calls at {per_call * 1000:.0f} ms each)"
    )
    print(
        f"\nweek-4 visits marked completed in REDCap by the first sync: {completed} "
        f"(seeded: {len(range(0, n, 10))})"
    )
    print(f"first sync report: {rows[0][4]}")
    print(f"status export calls per sync: {rows[0][2]} = ceil({n} / 500)")


if __name__ == "__main__":
    main()
