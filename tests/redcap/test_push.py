"""The push to the local REDCap: batches, rejections isolated, outages with zero loss, idempotence, rate."""

from __future__ import annotations

import logging
from datetime import timedelta

from sqlalchemy import select

from app.extensions import db
from app.models import AuditEntry, Participant, Submission, SystemState, utcnow
from app.participants.visits import schedule_participant
from app.questionnaire.store import save_metadata
from app.redcap.client import get_client
from app.redcap.metadata import refresh_metadata
from app.redcap.push.run import push_pending
from app.redcap.push.submissions import retry_submission
from app.schedule.study_plan import send_window, visit_plan
from devservers.redcap_api import DEV_TOKEN
from tests.factories import make_participant

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
    "fu_comments": "private words about my health",
}


def submissions(
    n: int, *, start: int = 4000, answers: dict | None = None, red_flag_every: int = 0
) -> list[int]:
    """`n` participants with an accepted week-4 questionnaire each, queued for the push."""
    now = utcnow()
    ids = []
    for i in range(n):
        participant = make_participant(str(start + i), days_since_discharge=27, commit=False)
        db.session.flush()
        schedule_participant(participant, visit_plan(), send_window(), now)
        db.session.flush()
        visit = next(v for v in participant.visits if v.visit_key == "week_4")
        visit.status, visit.invited_at, visit.reminders_sent = "completed", now - timedelta(days=2), 2
        submission = Submission(
            visit_id=visit.id,
            answers=dict(answers or ANSWERS, fu_health_today=str(50 + i % 50)),
            red_flag=bool(red_flag_every and i % red_flag_every == 0),
            sync_status="pending",
            next_attempt_at=now,
        )
        db.session.add(submission)
        db.session.flush()
        ids.append(submission.id)
    db.session.commit()
    return ids


def ready(server) -> None:
    """Store the questionnaire's metadata (the push validates against it), then forget those calls."""
    refresh_metadata(utcnow())
    server.state.clear_calls()


def statuses() -> dict[str, int]:
    out: dict[str, int] = {}
    for status in db.session.scalars(select(Submission.sync_status)):
        out[status] = out.get(status, 0) + 1
    return out


def test_push_imports_in_batches_with_codes_dates_and_contact_fields(redcap_server):
    redcap_server.rebuild(REDCAP_BATCH_SIZE="10")
    ready(redcap_server)
    submissions(25, red_flag_every=5)
    result = redcap_server.cli("redcap", "push")
    assert result.exit_code == 0, result.output
    assert "25 submissions and 0 visit statuses pushed" in result.output
    imports = redcap_server.calls("record", "import")
    assert [c["record_count"] for c in imports] == [10, 10, 5]
    assert statuses() == {"pushed": 25}
    state = redcap_server.state
    assert state.value("4000", "fu_cough", "week_4_arm_1") == "1"
    assert state.value("4000", "fu_ae___2", "week_4_arm_1") == "1"
    assert state.value("4000", "fu_health_today", "week_4_arm_1") == "50"
    assert state.value("4000", "followup_questionnaire_complete", "week_4_arm_1") == "2"
    assert state.value("4000", "fu_visit_status", "week_4_arm_1") == "1"
    assert state.value("4000", "fu_reminders_sent", "week_4_arm_1") == "2"
    assert state.value("4000", "fu_red_flag", "week_4_arm_1") == "1"
    assert state.value("4001", "fu_red_flag", "week_4_arm_1") == "0"
    invited = state.value("4000", "fu_invited_at", "week_4_arm_1")
    assert len(invited) == 19 and invited[4] == "-" and invited[13] == ":"
    pushed = db.session.scalar(select(Submission).order_by(Submission.id))
    assert pushed.pushed_at is not None and pushed.last_error is None and pushed.sync_attempts == 1


def _store_metadata_allowing_cough_4() -> None:
    """Our stored questionnaire allows fu_cough = 4; REDCap's does not (its project changed since)."""
    rows = get_client().export_metadata(forms=["followup_questionnaire"])
    for row in rows:
        if row["field_name"] == "fu_cough":
            row["select_choices_or_calculations"] += " | 4, Very severe"
    save_metadata(rows, "followup_questionnaire", utcnow())


def test_rejection_is_isolated_to_the_bad_record(redcap_server, caplog):
    ready(redcap_server)
    _store_metadata_allowing_cough_4()
    ids = submissions(8)
    bad = db.session.get(Submission, ids[5])
    bad.answers = {**ANSWERS, "fu_cough": "4"}
    db.session.commit()
    redcap_server.state.clear_calls()
    caplog.set_level(logging.DEBUG)
    report = push_pending(utcnow())
    assert (report.pushed, report.rejected, report.deferred) == (7, 1, 0)
    # The batch of 8 is refused whole, then halved down to the bad record (index 5): 8 refused,
    # 4 landed, 4 refused, 2 refused, 1 landed, 1 refused (the bad one), 2 landed.
    assert [c["record_count"] for c in redcap_server.calls("record", "import")] == [0, 4, 0, 0, 1, 0, 2]
    db.session.expire_all()
    bad = db.session.get(Submission, ids[5])
    assert bad.sync_status == "failed"
    assert bad.last_error == (
        'REDCap rejected this record: "4005","fu_cough","4","The value is not a valid category for fu_cough"'
    )
    assert redcap_server.state.value("4004", "fu_cough", "week_4_arm_1") == "1"
    assert redcap_server.state.value("4005", "fu_cough", "week_4_arm_1") == ""
    assert db.session.scalar(select(AuditEntry.action).where(AuditEntry.action == "redcap.push_rejected"))
    assert (
        DEV_TOKEN not in caplog.text and "private words" not in caplog.text and "fu_cough" not in caplog.text
    )
    assert db.session.get(SystemState, "redcap.last_error_at") is not None
    # A failed push is not retried by itself ...
    redcap_server.state.clear_calls()
    assert push_pending(utcnow() + timedelta(days=1)).calls == 0
    # ... only when a coordinator asks, and then it fails again with the same message.
    retry_submission(bad, utcnow(), actor="coordinator@example.org", reason="REDCap project fixed?")
    db.session.commit()
    redcap_server.state.clear_calls()
    again = push_pending(utcnow())
    assert again.rejected == 1 and len(redcap_server.calls("record", "import")) == 1
    assert "fu_cough" in db.session.get(Submission, ids[5]).last_error


def test_a_pre_push_check_refused_by_redcap_is_isolated_like_an_import(redcap_server, monkeypatch):
    """Another area's check (issue 8 registers one) that REDCap refuses is halved down to the bad row."""
    from app.redcap.client import RedcapRejected
    from app.redcap.push import run as redcap_push

    ready(redcap_server)
    ids = submissions(6)
    seen: list[int] = []

    def picky_check(items, client, now):
        seen.append(len(items))
        if ids[4] in {item.id for item in items}:
            raise RedcapRejected("The value you provided could not be validated (test check)")
        return set()

    monkeypatch.setattr(redcap_push, "_PRE_PUSH_CHECKS", [picky_check])
    report = push_pending(utcnow())
    assert (report.pushed, report.rejected) == (5, 1) and seen == [6, 3, 3, 1, 2, 1, 1]
    failed = db.session.get(Submission, ids[4])
    assert failed.sync_status == "failed" and "test check" in failed.last_error
    assert redcap_server.state.value("4004", "fu_cough", "week_4_arm_1") == ""
    assert redcap_server.state.value("4005", "fu_cough", "week_4_arm_1") == "1"


def test_answers_that_do_not_fit_the_metadata_are_never_sent(redcap_server):
    ready(redcap_server)
    [good] = submissions(1)
    [bad] = submissions(1, start=4100, answers={**ANSWERS, "fu_cough": "9", "fu_mood": "3"})
    report = push_pending(utcnow())
    assert (report.pushed, report.invalid) == (1, 1)
    failed = db.session.get(Submission, bad)
    assert (
        failed.sync_status == "failed" and "fu_cough" in failed.last_error and "fu_mood" in failed.last_error
    )
    assert "9" not in failed.last_error.split("fu_cough", 1)[1][:40]  # names the field, not the value
    assert redcap_server.calls("record", "import")[0]["record_count"] == 1
    assert redcap_server.state.value("4100", "fu_cough", "week_4_arm_1") == ""
    assert db.session.get(Submission, good).sync_status == "pushed"


def test_outage_keeps_everything_queued_then_recovers_with_zero_loss(redcap_server, caplog):
    redcap_server.rebuild(REDCAP_BATCH_SIZE="5", REDCAP_TIMEOUT="0.3")
    ready(redcap_server)
    submissions(12)
    now = utcnow()
    caplog.set_level(logging.DEBUG)
    for kind in ("500", "timeout", "ban"):
        redcap_server.state.fail(kind, count=None, hang_s=1.0)
        report = push_pending(now, sleep=lambda s: None)
        assert report.unavailable and report.pushed == 0 and report.deferred > 0, kind
        redcap_server.state.reset()
        db.session.expire_all()
        assert statuses() == {"pending": 12}
        # Backoff: what the outage hit waits (a batch, or the window the pre-push check reads at once).
        waiting = db.session.scalars(select(Submission).where(Submission.sync_attempts > 0)).all()
        assert waiting and all(s.next_attempt_at > now + timedelta(seconds=10) for s in waiting)
        assert all("REDCap unavailable" in s.last_error for s in waiting)
        for s in waiting:
            s.next_attempt_at, s.sync_attempts = now, 0  # as if the backoff had passed
        db.session.commit()
    assert db.session.get(SystemState, "redcap.last_error_at") is not None
    redcap_server.state.fail("500", count=None)
    result = redcap_server.cli("redcap", "push")
    assert result.exit_code != 0 and "REDCap unavailable" in result.output
    redcap_server.state.reset()
    result = redcap_server.cli("redcap", "push", "--now", (now + timedelta(hours=2)).isoformat())
    assert result.exit_code == 0, result.output
    assert statuses() == {"pushed": 12}
    rows = redcap_server.state.records(events=["week_4_arm_1"], fields=["fu_comments"])
    assert len(rows) == 12 and all(r["fu_comments"] == ANSWERS["fu_comments"] for r in rows)
    assert DEV_TOKEN not in caplog.text and "private words" not in caplog.text


def test_pushing_the_same_submission_twice_leaves_the_same_data(redcap_server):
    ready(redcap_server)
    ids = submissions(3)
    push_pending(utcnow())
    first = redcap_server.state.records()
    # A crash after REDCap took the batch but before "pushed" was committed: the rows are pending again.
    db.session.execute(
        Submission.__table__.update().values(sync_status="pending", pushed_at=None, next_attempt_at=None)
    )
    db.session.commit()
    report = push_pending(utcnow())
    assert report.pushed == 3 and len(redcap_server.calls("record", "import")) == 2
    assert redcap_server.state.records() == first
    assert {db.session.get(Submission, sid).sync_status for sid in ids} == {"pushed"}


def test_calls_per_second_ceiling_is_respected(redcap_server):
    redcap_server.rebuild(REDCAP_BATCH_SIZE="1", REDCAP_MAX_CALLS_PER_SECOND="4")
    ready(redcap_server)
    submissions(10)
    report = push_pending(utcnow())
    assert report.pushed == 10 and len(redcap_server.calls("record", "import")) == 10
    assert redcap_server.state.max_calls_in_window(1.0) <= 4
    times = [c["t"] for c in redcap_server.state.calls]
    assert times[-1] - times[0] >= 2.0  # 10 calls at 4 per second cannot take less


def test_missed_withdrawn_and_opted_out_visits_are_pushed_as_their_codes(redcap_server):
    ready(redcap_server)
    now = utcnow()
    people = {}
    for record, opted_out in (("4201", False), ("4202", True), ("4203", False)):
        p = make_participant(record, days_since_discharge=40, commit=False)
        p.opted_out = opted_out
        db.session.flush()
        schedule_participant(p, visit_plan(), send_window(), now)
        people[record] = p
    db.session.commit()
    from app.participants.visits import cancel_visit, sweep_visits
    from app.redcap.push.visit_statuses import queue_status_push

    month6 = next(v for v in people["4203"].visits if v.visit_key == "month_6")
    cancel_visit(month6, "participant withdrawn", "test")
    queue_status_push(month6, "withdrawn", now)
    sweep_visits(now)
    db.session.commit()
    redcap_server.state.fail("503", count=3)
    assert push_pending(now, sleep=lambda s: None).unavailable  # an outage loses nothing
    report = push_pending(now + timedelta(hours=2))
    assert report.statuses_pushed == 4 and report.unavailable is None
    value = redcap_server.state.value
    assert value("4201", "fu_visit_status", "week_4_arm_1") == "2"  # missed
    assert value("4202", "fu_visit_status", "week_4_arm_1") == "3"  # opted out
    assert value("4203", "fu_visit_status", "week_4_arm_1") == "2"
    assert value("4203", "fu_visit_status", "month_6_arm_1") == "4"  # withdrawn
    assert value("4201", "fu_red_flag", "week_4_arm_1") == ""  # no questionnaire: no red-flag value
    # Nothing is queued twice: the next pass finds no new missed visit and makes no call.
    assert push_pending(now + timedelta(hours=3)).calls == 0


def test_push_is_a_tick_step(redcap_server):
    from app.tick import run_tick

    ready(redcap_server)
    submissions(2)
    summary = run_tick(utcnow(), only=["push"])
    assert summary["push.pushed"] == 2 and statuses() == {"pushed": 2}
    assert db.session.scalar(select(Participant.record_id).where(Participant.record_id == "4000"))


def test_push_without_stored_metadata_keeps_submissions_queued_and_says_why(redcap_server):
    submissions(2)
    result = redcap_server.cli("redcap", "push")
    assert result.exit_code != 0
    assert (
        "no stored metadata for followup_questionnaire" in result.output
        and "refresh-metadata" in result.output
    )
    assert statuses() == {"pending": 2} and redcap_server.calls("record", "import") == []
    assert redcap_server.cli("redcap", "refresh-metadata").exit_code == 0
    assert redcap_server.cli("redcap", "push").exit_code == 0 and statuses() == {"pushed": 2}


def test_a_visit_status_entered_in_redcap_is_never_overwritten(redcap_server):
    ready(redcap_server)
    now = utcnow()
    for record in ("4301", "4302", "4303"):
        p = make_participant(record, days_since_discharge=40, commit=False)
        db.session.flush()
        schedule_participant(p, visit_plan(), send_window(), now)
    db.session.commit()
    redcap_server.state.seed_records(
        [
            {
                "record_id": "4301",
                "redcap_event_name": "week_4_arm_1",
                "fu_visit_status": "1",
            },  # done in clinic
            {
                "record_id": "4302",
                "redcap_event_name": "week_4_arm_1",
                "fu_visit_status": "2",
            },  # already missed
        ]
    )
    from app.models.redcap_sync import RedcapStatusPush
    from app.participants.visits import sweep_visits

    sweep_visits(now)
    db.session.commit()
    redcap_server.state.clear_calls()
    report = push_pending(now)
    assert report.statuses_pushed == 2  # 4302 already said missed; 4303 imported
    imports = redcap_server.calls("record", "import")
    assert [c["record_count"] for c in imports] == [1]
    value = redcap_server.state.value
    assert value("4301", "fu_visit_status", "week_4_arm_1") == "1"  # staff's value kept
    assert value("4303", "fu_visit_status", "week_4_arm_1") == "2"
    kept = db.session.scalar(
        select(RedcapStatusPush).join(RedcapStatusPush.visit).where(RedcapStatusPush.sync_status == "failed")
    )
    assert kept is not None and "already holds visit status code '1'" in kept.last_error
    assert kept.visit.participant.record_id == "4301"
