"""A whole phone follow-up over HTTP, into the local REDCap; and the phone questionnaire's bad input."""

from __future__ import annotations

import re
from datetime import timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from app.extensions import db
from app.models import AuditEntry, CallAttempt, OutboundMessage, Submission, User, Visit
from app.redcap.metadata import refresh_metadata
from app.redcap.push.run import push_pending
from app.sms.planner import plan_due
from app.sms.sender import send_due
from tests.console.conftest import _FAST_HASH, NOW, PASSWORD, FreshClient, add_visit, sign_in
from tests.factories import make_participant
from tests.redcap.conftest import redcap_env_factory, redcap_server  # noqa: F401  (fixtures)

SHANGHAI = ZoneInfo("Asia/Shanghai")
TYPED = {  # what the coordinator types as the participant answers (REDCap raw codes)
    "fu_fever": "1",
    "fu_fever_days": "3",
    "fu_mmrc": "2",
    "fu_cough": "1",
    "fu_sneezing": "0",
    "fu_diarrhea": "0",
    "fu_readmitted": "0",
    "fu_ae___2": "1",
    "fu_health_today": "70",
    "fu_comments": "said by phone",
}


@pytest.fixture
def phone(redcap_server, time_machine):  # noqa: F811
    """The app on the local REDCap with its metadata, a coordinator signed in, the clock at NOW."""
    time_machine.move_to(NOW, tick=False)
    app = redcap_server.app
    app.test_client_class = FreshClient
    refresh_metadata(NOW)
    db.session.add(User(email="coord@example.org", role="coordinator", password_hash=_FAST_HASH))
    db.session.commit()
    client = app.test_client()
    assert sign_in(client, db.session.scalar(select(User))).status_code == 302
    return redcap_server, client


def _visit(record: str, closes_in: timedelta, consent: bool = True) -> Visit:
    p = make_participant(record, consent=consent, commit=False, days_since_discharge=29)
    visit = add_visit(p, opens=NOW - timedelta(days=3), closes=NOW + closes_in)
    db.session.commit()
    return visit


def _order(client) -> list[str]:
    return re.findall(r'data-record="([^"]+)"', client.get("/console/calls").get_data(as_text=True))


def test_a_whole_phone_follow_up_through_the_console_into_redcap(phone):
    server, client = phone
    week = _visit("5101", timedelta(days=7), consent=False)
    tomorrow = _visit("5102", timedelta(days=1), consent=False)
    texted = _visit("5103", timedelta(hours=30))
    assert _order(client) == ["5102", "5103", "5101"]  # tomorrow, then 30 h, then next week

    # Outcomes: no answer on one; the texted participant asks to be called back at 10:20 their time.
    assert (
        client.post(
            f"/console/calls/{week.id}/outcome", data={"outcome": "no_answer", "seen_attempts": 0}
        ).status_code
        == 303
    )
    at = (NOW + timedelta(minutes=20)).astimezone(SHANGHAI).strftime("%Y-%m-%dT%H:%M")
    response = client.post(
        f"/console/calls/{texted.id}/outcome",
        data={"outcome": "callback", "seen_attempts": 0, "callback_at": at, "note": "at work"},
    )
    assert response.status_code == 303
    # The reminder plan and the send pass run: nothing goes to the participant who is waiting for a call.
    plan_due(NOW)
    db.session.add(
        OutboundMessage(
            dedupe_key=f"visit:{texted.id}:late",
            kind="reminder",
            participant_id=texted.participant_id,
            visit_id=texted.id,
            slot="late",
            to_e164="+8613800138555",
            status="pending",
            due_at=NOW,
            schedule_version=1,
            created_by="system:plan",
        )
    )
    db.session.commit()
    send_due(NOW + timedelta(minutes=1))
    sent = db.session.scalars(
        select(OutboundMessage).where(
            OutboundMessage.visit_id == texted.id, OutboundMessage.status.in_(("queued", "sent", "delivered"))
        )
    ).all()
    assert sent == []
    assert "call back at 2026-03-10 10:20" in client.get("/console/calls").get_data(as_text=True)

    # At the callback time the row is at the top; the coordinator calls and takes the questionnaire.
    later = NOW + timedelta(minutes=21)
    from time_machine import travel

    with travel(later, tick=False):
        assert _order(client)[0] == "5103"
        form = client.get(f"/console/calls/{texted.id}/questionnaire")
        assert form.status_code == 200 and b"fu_fever" in form.data
        response = client.post(f"/console/calls/{texted.id}/questionnaire", data={**TYPED, "language": "en"})
        assert response.status_code == 303, response.data[:800]
        # A replay (double tap, back button) is refused and says which submission won.
        replay = client.post(f"/console/calls/{texted.id}/questionnaire", data={**TYPED, "language": "en"})
        assert replay.status_code == 409 and b"already submitted" in replay.data
    submission = db.session.scalar(select(Submission).where(Submission.visit_id == texted.id))
    assert submission.source == "interviewer"
    assert {k: submission.answers[k] for k in TYPED} == TYPED
    accepted = db.session.scalar(select(AuditEntry).where(AuditEntry.action == "submission.accepted"))
    assert accepted.actor.startswith("user:")
    reached = db.session.scalars(select(CallAttempt.outcome).where(CallAttempt.visit_id == texted.id)).all()
    assert reached == ["callback", "reached_done"]
    assert "5103" not in _order(client)

    report = push_pending(later)
    assert report.pushed == 1, report.summary()
    state = server.state
    for name, value in TYPED.items():
        assert state.value("5103", name, "week_4_arm_1") == value, name
    assert state.value("5103", "fu_mode", "week_4_arm_1") == "2"
    assert state.value("5103", "fu_visit_status", "week_4_arm_1") == "1"
    assert state.value("5103", "followup_questionnaire_complete", "week_4_arm_1") == "2"
    assert push_pending(later).pushed == 0  # pushed once
    del tomorrow


def test_the_participants_own_answers_win_and_the_coordinator_is_told(phone):
    _server, client = phone
    visit = _visit("5201", timedelta(days=2))
    assert client.get(f"/console/calls/{visit.id}/questionnaire").status_code == 200
    # Meanwhile the participant answers through their text link.
    db.session.add(
        Submission(visit_id=visit.id, answers={"fu_fever": "0"}, source="participant", submitted_at=NOW)
    )
    db.session.get(Visit, visit.id).status = "completed"
    db.session.commit()
    response = client.post(f"/console/calls/{visit.id}/questionnaire", data={**TYPED, "language": "zh"})
    assert response.status_code == 409
    assert b"own answers (through their text link) arrived first" in response.data
    assert (
        db.session.scalar(select(Submission.source).where(Submission.visit_id == visit.id)) == "participant"
    )


def test_invalid_answers_come_back_with_errors_and_nothing_is_stored(phone):
    _server, client = phone
    visit = _visit("5301", timedelta(days=2))
    response = client.post(
        f"/console/calls/{visit.id}/questionnaire", data={**TYPED, "fu_fever_days": "999", "language": "en"}
    )
    assert (
        response.status_code == 400
        and b"Please check" in response.data
        and b'value="said by phone"' not in response.data
    )
    assert b"said by phone" in response.data  # the typed answers are kept
    assert db.session.scalar(select(Submission)) is None


def test_session_expired_mid_form_keeps_the_answers_then_sign_in_and_submit(phone, time_machine):
    _server, client = phone
    visit = _visit("5401", timedelta(days=2))
    assert client.get(f"/console/calls/{visit.id}/questionnaire").status_code == 200
    time_machine.move_to(NOW + timedelta(hours=5), tick=False)  # longer than SESSION_IDLE_MINUTES
    response = client.post(f"/console/calls/{visit.id}/questionnaire", data={**TYPED, "language": "en"})
    assert response.status_code == 401
    html = response.get_data(as_text=True)
    assert "Your session ended" in html and "said by phone" in html and "5401" not in html
    assert db.session.scalar(select(Submission)) is None
    wrong = client.post(
        f"/console/calls/{visit.id}/questionnaire",
        data={**TYPED, "language": "en", "relogin_email": "coord@example.org", "relogin_password": "nope"},
    )
    assert wrong.status_code == 401 and b"not accepted" in wrong.data and b"said by phone" in wrong.data
    response = client.post(
        f"/console/calls/{visit.id}/questionnaire",
        data={**TYPED, "language": "en", "relogin_email": "coord@example.org", "relogin_password": PASSWORD},
    )
    assert response.status_code == 303
    assert db.session.scalar(select(Submission.source)) == "interviewer"


def test_a_closed_visit_cannot_be_taken_by_phone(phone):
    _server, client = phone
    visit = _visit("5501", timedelta(days=2))
    db.session.get(Visit, visit.id).status = "cancelled"
    db.session.commit()
    assert client.get(f"/console/calls/{visit.id}/questionnaire").status_code == 409
    response = client.post(f"/console/calls/{visit.id}/questionnaire", data={**TYPED, "language": "en"})
    assert response.status_code == 409 and db.session.scalar(select(Submission)) is None
