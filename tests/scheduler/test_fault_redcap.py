"""REDCap down (HTTP 500s, then timeouts, then a ban) for a series of push passes while 500 questionnaires
arrive; then REDCap comes back: all 500 are in REDCap, each once, none lost.

The scheduler is a real subprocess pushing every second to the local REDCap-compatible server through
PyCap. Submissions arrive through the same domain function the questionnaire page uses
(`accept_submission`). Deferred batches wait out the push's backoff (15-30 s after a first failure,
doubling after each); rather than sleep through it, the scheduler is stopped with SIGTERM and restarted
with its clock an hour ahead, the backoff's cap (tests/scheduler/shifted_clock.py): a restart in the
middle of a backlog loses nothing.
"""

from __future__ import annotations

import time
from collections import Counter
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from app.extensions import db
from app.models import Participant, Submission, utcnow
from app.participants.links import find_link, issue_link
from app.participants.submissions import accept_submission
from app.participants.visits import schedule_participant, sweep_visits
from app.redcap.metadata import refresh_metadata
from app.schedule.study_plan import send_window, visit_plan
from devservers.redcap_api import DEV_TOKEN, create_redcap_app
from devservers.redcap_project import ProjectDefinition
from devservers.redcap_state import RedcapState
from devservers.runner import serve_in_thread
from tests.conftest import build_app
from tests.scheduler.harness import fake_phone, wait_until

pytestmark = pytest.mark.slow

STUDY = Path(__file__).resolve().parents[2] / "study"
TOTAL = 500
EVENT = "week_4_arm_1"
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
    "fu_comments": "fictitious free text",
}


@pytest.fixture
def redcap():
    definition = ProjectDefinition.load(STUDY)
    state = RedcapState(definition, DEV_TOKEN)
    handle = serve_in_thread(create_redcap_app(definition, state=state))
    yield state, f"{handle.url}/api/"
    state.close()
    handle.stop()


def _participants(count: int) -> list[int]:
    """`count` participants whose week-4 visit is open now; returns the visits' ids."""
    now = utcnow()
    for i in range(count):
        participant = Participant(
            record_id=str(5000 + i),
            phone_e164=fake_phone(i),
            phone_status="ok",
            language="en",
            timezone="Asia/Shanghai",
            sms_consent=False,  # no reminders: this test is about the push
            status="active",
            anchor_date=(now + timedelta(hours=8)).date() - timedelta(days=27),
            roster_synced_at=now,
        )
        db.session.add(participant)
        db.session.flush()
        schedule_participant(participant, visit_plan(), send_window(), now)
    db.session.commit()
    sweep_visits(now)
    db.session.commit()
    rows = db.session.execute(select(Participant.record_id, Participant.id)).all()
    from app.models import Visit

    return [
        db.session.scalar(select(Visit.id).where(Visit.participant_id == pid, Visit.visit_key == "week_4"))
        for _, pid in sorted(rows, key=lambda r: int(r[0]))
    ]


def _arrive(visit_ids: list[int], n: int) -> None:
    """The next `n` participants answer (the questionnaire page's own domain call)."""
    from app.models import Visit

    for visit_id in visit_ids[:n]:
        now = utcnow()
        visit = db.session.get(Visit, visit_id)
        link = find_link(issue_link(visit, now))
        answers = dict(ANSWERS, fu_health_today=str(40 + visit_id % 60))
        outcome = accept_submission(link, answers, now=now)
        assert outcome.submission_id is not None, outcome
    del visit_ids[:n]


def _refused_calls(state: RedcapState) -> int:
    """Record calls (the push's conflict-check export or its import) that met the outage."""
    return sum(
        1
        for call in state.calls
        if call.get("content") == "record"
        and (str(call.get("outcome")).startswith("fault:") or call.get("outcome") == "banned")
    )


def test_redcap_outage_during_arrivals_loses_nothing(tmp_path, redcap, schedulers):
    state, api_url = redcap
    settings = {
        "REDCAP_API_URL": api_url,
        "REDCAP_API_TOKEN": DEV_TOKEN,
        "REDCAP_BATCH_SIZE": "50",
        "REDCAP_TIMEOUT": "0.5",
        "REDCAP_MAX_CALLS_PER_SECOND": "1000",
        "REDCAP_DET_WORKER": "false",
        "SCHEDULER_SEND_SECONDS": "3600",
    }
    app = build_app("sqlite", tmp_path, **settings)
    with app.app_context():
        refresh_metadata(utcnow())  # the push checks answers against the stored metadata
        waiting = _participants(TOTAL)
    env = schedulers.env(app.config["SQLALCHEMY_DATABASE_URI"], **settings)
    log_path = tmp_path / "scheduler.log"
    proc = schedulers.start(env, log_path)
    later = None
    proc.wait_for_log("first send pass after start")
    with app.app_context():
        for kind, count in (("500", 160), ("timeout", 170), ("ban", 170)):
            state.reset()
            state.fail(kind, count=None, hang_s=1.0)
            failed_before = _refused_calls(state)
            for _ in range(4):  # arrivals spread over several push passes
                _arrive(waiting, count // 4 + (1 if _ < count % 4 else 0))
                time.sleep(0.3)
            assert wait_until(lambda fb=failed_before: _refused_calls(state) >= fb + 2, 15), kind
            db.session.remove()
        assert waiting == []
        state.reset()  # REDCap is back (the ban lifted)
        # REDCap refused or timed out every import so far: nothing is in its questionnaire event yet.
        assert not [
            r for r in state.records(events=[EVENT], fields=["record_id", "fu_comments"]) if r["fu_comments"]
        ]
        db.session.remove()
    assert proc.alive(), proc.log()[-3000:]
    assert proc.terminate() == 0
    later = schedulers.start(env, log_path, shift_seconds=3600)
    with app.app_context():

        def all_pushed() -> bool:
            db.session.remove()
            return Counter(db.session.scalars(select(Submission.sync_status))) == Counter({"pushed": TOTAL})

        assert wait_until(all_pushed, 30, 0.2), later.log()[-3000:]
        db.session.remove()
        db.engine.dispose()
    assert later.terminate() == 0
    schedulers.stop_all()
    rows = state.records(events=[EVENT], fields=["record_id", "fu_comments", "fu_health_today"])
    rows = [row for row in rows if row.get("fu_comments")]
    assert len(rows) == TOTAL
    assert Counter(row["record_id"] for row in rows) == Counter({str(5000 + i): 1 for i in range(TOTAL)})
    assert all(row["fu_comments"] == ANSWERS["fu_comments"] for row in rows)
    log = log_path.read_text()
    assert DEV_TOKEN not in log and "fictitious free text" not in log
