"""A withdrawal or death recorded in the console sticks: pushed to REDCap's enrollment form, kept by the roster."""

from __future__ import annotations

from datetime import date, timedelta

from sqlalchemy import select

from app.console.actions import end_participation
from app.console.worklist import build_worklist
from app.extensions import db
from app.models import AuditEntry, OutboundMessage, Participant, RedcapEnrollmentStatusPush, utcnow
from app.redcap.push.run import push_pending
from app.redcap.roster import sync_roster
from tests.redcap.conftest import baseline_row

DISCHARGE = (date.today() - timedelta(days=26)).isoformat()


def _participant(record: str) -> Participant:
    return db.session.scalar(select(Participant).where(Participant.record_id == record))


def _push_row(participant: Participant) -> RedcapEnrollmentStatusPush:
    return db.session.scalar(
        select(RedcapEnrollmentStatusPush).where(RedcapEnrollmentStatusPush.participant_id == participant.id)
    )


def _enrolled(server, *records: str) -> None:
    server.state.seed_records([baseline_row(r, DISCHARGE) for r in records])
    sync_roster(utcnow())


def _end_in_console(record: str, status: str = "withdrawn") -> None:
    end_participation(_participant(record), status, utcnow(), "user:coord", "asked by phone")
    db.session.commit()


def test_console_withdrawal_and_death_are_pushed_to_the_enrollment_form(redcap_server):
    _enrolled(redcap_server, "3101", "3102", "3103")
    _end_in_console("3101", "withdrawn")
    _end_in_console("3102", "deceased")
    p = _participant("3101")
    assert (p.status, p.status_source, _push_row(p).sync_status) == ("withdrawn", "console", "pending")

    report = push_pending(utcnow())
    assert report.enrollment_pushed == 2 and report.unavailable is None
    assert redcap_server.state.value("3101", "study_status", "baseline_arm_1") == "2"
    assert redcap_server.state.value("3102", "study_status", "baseline_arm_1") == "3"
    assert redcap_server.state.value("3103", "study_status", "baseline_arm_1") == "1"  # untouched
    assert redcap_server.state.value("3101", "mobile_phone", "baseline_arm_1") == "13800138001"
    db.session.expire_all()
    assert _push_row(_participant("3101")).sync_status == "pushed"

    # A second pass writes nothing more.
    redcap_server.state.clear_calls()
    assert push_pending(utcnow()).enrollment_pushed == 0
    assert redcap_server.calls("record", "import") == []


def test_redcap_down_keeps_the_status_push_queued_and_a_later_pass_lands_it(redcap_server):
    _enrolled(redcap_server, "3201")
    _end_in_console("3201")
    redcap_server.state.fail("503", count=None)
    report = push_pending(utcnow(), attempts_per_pass=1, sleep=lambda _s: None)
    assert report.unavailable
    db.session.expire_all()
    row = _push_row(_participant("3201"))
    assert row.sync_status == "pending" and row.sync_attempts == 1  # deferred with backoff, not dropped
    assert row.next_attempt_at > utcnow() and "REDCap unavailable" in row.last_error
    redcap_server.state.reset()
    assert redcap_server.state.value("3201", "study_status", "baseline_arm_1") == "1"

    report = push_pending(utcnow() + timedelta(hours=2))
    assert report.enrollment_pushed == 1
    assert redcap_server.state.value("3201", "study_status", "baseline_arm_1") == "2"


def test_roster_sync_after_a_phone_edit_keeps_the_console_withdrawal_until_redcap_has_it(redcap_server):
    _enrolled(redcap_server, "3301")
    _end_in_console("3301")
    # Staff edit the phone in REDCap; the status push has not landed: REDCap still says active.
    redcap_server.state.seed_records([baseline_row("3301", DISCHARGE, phone="13800138099")])
    report = sync_roster(utcnow())
    assert report.updated == 1
    db.session.expire_all()
    p = _participant("3301")
    assert p.phone_e164 == "+8613800138099"  # the rest of the row is applied
    assert p.status == "withdrawn" and p.status_source == "console" and not p.can_receive_sms
    assert {v.status for v in p.visits} == {"cancelled"}
    assert "REDCap still says active" in p.roster_problem and "pending" in p.roster_problem
    live = select(OutboundMessage).where(OutboundMessage.status != "cancelled")
    assert db.session.scalars(live).all() == []  # nothing texted or planned
    assert not db.session.scalars(
        select(AuditEntry).where(AuditEntry.action == "visit.scheduled", AuditEntry.at > p.status_changed_at)
    ).all()

    # The push lands; the next sync sees REDCap's withdrawn and the problem clears.
    assert push_pending(utcnow()).enrollment_pushed == 1
    sync_roster(utcnow())
    db.session.expire_all()
    p = _participant("3301")
    assert (p.status, p.status_source, p.roster_problem) == ("withdrawn", "redcap", None)
    assert {v.status for v in p.visits} == {"cancelled"}


def test_staff_reactivation_after_redcap_recorded_the_withdrawal_is_applied(redcap_server):
    _enrolled(redcap_server, "3401")
    _end_in_console("3401")
    assert push_pending(utcnow()).enrollment_pushed == 1
    # Staff deliberately set the participant back to active in REDCap (no roster sync in between).
    redcap_server.state.seed_records([baseline_row("3401", DISCHARGE, status="1")])
    sync_roster(utcnow())
    db.session.expire_all()
    p = _participant("3401")
    assert (p.status, p.status_source, p.roster_problem) == ("active", "redcap", None)


def test_a_different_ended_status_entered_in_redcap_is_never_overwritten(redcap_server):
    _enrolled(redcap_server, "3501")
    _end_in_console("3501", "withdrawn")
    redcap_server.state.seed_records([baseline_row("3501", DISCHARGE, status="3")])  # staff: deceased
    push_pending(utcnow())
    assert redcap_server.state.value("3501", "study_status", "baseline_arm_1") == "3"
    db.session.expire_all()
    row = _push_row(_participant("3501"))
    assert row.sync_status == "failed" and "REDCap's value was kept" in row.last_error
    with redcap_server.app.test_request_context():  # the work list's texts are translated per request
        work = [i for i in build_worklist(utcnow()).items if i.kind == "enrollment_push_failed"]
    assert [i.record_id for i in work] == ["3501"] and "REDCap's value was kept" in work[0].why
    sync_roster(utcnow())
    db.session.expire_all()
    p = _participant("3501")
    assert (p.status, p.status_source, p.roster_problem) == ("deceased", "redcap", None)
    with redcap_server.app.test_request_context():
        assert not [i for i in build_worklist(utcnow()).items if i.kind == "enrollment_push_failed"]
