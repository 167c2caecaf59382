"""The call list and call outcomes: ranking, reasons, one-tap outcomes, their effects and bad input."""

from __future__ import annotations

import re
from datetime import timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from app.extensions import db
from app.models import CallAttempt, OutboundMessage, Participant, RedcapStatusPush, Visit
from app.participants import calls
from app.participants.call_list import build_call_list
from app.participants.calls import CallHistory, CallRefused, record_outcome, reminder_hold
from tests.console.conftest import NOW, add_message, add_visit
from tests.console.helpers import last_audit, refused, snapshot
from tests.factories import make_participant

SHANGHAI = ZoneInfo("Asia/Shanghai")


@pytest.fixture(autouse=True)
def _frozen(time_machine):
    time_machine.move_to(NOW, tick=False)


def _no_consent(record: str, closes_in: timedelta, **kw) -> Visit:
    p = make_participant(record, consent=False, commit=False, **kw)
    visit = add_visit(p, opens=NOW - timedelta(days=3), closes=NOW + closes_in)
    db.session.commit()
    return visit


def _order(html: str) -> list[str]:
    return re.findall(r'data-record="([^"]+)"', html)


def _post(client, visit_id: int, outcome: str, seen: int = 0, **extra):
    return client.post(
        f"/console/calls/{visit_id}/outcome", data={"outcome": outcome, "seen_attempts": seen, **extra}
    )


def test_the_list_ranks_a_window_closing_tomorrow_above_next_week_with_reasons(as_role, study):
    week = _no_consent("NC-WEEK", timedelta(days=7))
    tomorrow = _no_consent("NC-TMRW", timedelta(days=1))
    html = as_role("viewer").get("/console/calls").get_data(as_text=True)
    order = _order(html)
    assert order.index("NC-TMRW") < order.index("NC-WEEK")
    assert order[0] == "RF-001"  # a red flag nobody acknowledged comes before closing windows
    assert {"CL-002", "BO-005"} <= set(order)  # closing in 20 h; last text undelivered
    assert "OO-007" not in order and "MS-003" not in order  # nothing open to call about
    assert "No SMS consent" in html and "Window closes soon, no answer" in html
    assert "Texts not delivered" in html
    del week, tomorrow


def test_viewer_sees_masked_numbers_and_no_outcome_buttons(as_role, study):
    visit = _no_consent("NC-V", timedelta(days=2), phone="+8613800138123")
    viewer = as_role("viewer").get("/console/calls").get_data(as_text=True)
    assert "+8613800138123" not in viewer and "tel:" not in viewer
    assert "+861•••••••123" in viewer
    assert 'name="outcome"' not in viewer
    coordinator = as_role("coordinator").get("/console/calls").get_data(as_text=True)
    assert 'href="tel:+8613800138123"' in coordinator and 'name="outcome"' in coordinator
    assert as_role("viewer").post(f"/console/calls/{visit.id}/outcome", data={}).status_code == 403


def test_filter_by_reason(as_role, study):
    _no_consent("NC-F", timedelta(days=2))
    client = as_role("viewer")
    assert _order(client.get("/console/calls?reason=no_consent").get_data(as_text=True)) == ["NC-F"]
    assert "BO-005" in _order(client.get("/console/calls?reason=undelivered").get_data(as_text=True))
    assert "NC-F" in _order(client.get("/console/calls?reason=nonsense").get_data(as_text=True))


def test_chinese_call_list(as_role, study):
    client = as_role("viewer")
    client.post("/console/language", data={"lang": "zh"})
    html = client.get("/console/calls").get_data(as_text=True)
    assert "呼叫名单" in html and "未确认的红旗" in html


def test_no_answer_and_busy_are_counted_audited_and_shown(as_role, study):
    visit = _no_consent("NC-N", timedelta(days=2))
    client = as_role("coordinator")
    assert _post(client, visit.id, "no_answer", 0, note="rang 10 times").status_code == 303
    assert _post(client, visit.id, "busy", 1).status_code == 303
    attempts = db.session.scalars(select(CallAttempt).where(CallAttempt.visit_id == visit.id)).all()
    assert [(a.attempt_no, a.outcome) for a in attempts] == [(1, "no_answer"), (2, "busy")]
    entry = last_audit("call.outcome")
    assert entry.detail["outcome"] == "busy" and entry.visit_id == visit.id and entry.at == NOW
    html = client.get("/console/calls").get_data(as_text=True)
    assert "2 attempts" in html and "last: Busy" in html
    page = client.get(f"/console/participants/{visit.participant_id}").get_data(as_text=True)
    assert "call.outcome" in page and "rang 10 times" in page  # in the participant's timeline


def test_the_attempt_cap_is_shown_and_more_tries_are_refused(as_role, study, app):
    app.config["CALL_MAX_ATTEMPTS"] = 2
    visit = _no_consent("NC-CAP", timedelta(days=2))
    client = as_role("coordinator")
    _post(client, visit.id, "no_answer", 0)
    _post(client, visit.id, "no_answer", 1)
    html = client.get("/console/calls").get_data(as_text=True)
    assert "the limit for this visit is reached" in html
    assert _order(html)[-1] == "NC-CAP"  # capped rows go last
    refused(client, f"/console/calls/{visit.id}/outcome", {"outcome": "busy", "seen_attempts": 2}, 409)
    assert _post(client, visit.id, "refused", 2).status_code == 303  # a person reached is still recorded


def test_callback_moves_the_row_suppresses_reminders_then_tops_the_list(as_role, study):
    visit = _no_consent("NC-CB", timedelta(days=6))
    client = as_role("coordinator")
    local = (NOW + timedelta(hours=3)).astimezone(SHANGHAI)  # 13:00 today in Shanghai
    assert (
        _post(client, visit.id, "callback", 0, callback_at=local.strftime("%Y-%m-%dT%H:%M")).status_code
        == 303
    )
    attempt = db.session.scalar(select(CallAttempt).where(CallAttempt.visit_id == visit.id))
    assert attempt.callback_at == NOW + timedelta(hours=3)
    assert reminder_hold(visit.id, NOW).action == "defer"
    assert reminder_hold(visit.id, NOW).until == NOW + timedelta(hours=3)
    assert reminder_hold(visit.id, NOW + timedelta(hours=4)) is None
    push = db.session.scalar(select(RedcapStatusPush).where(RedcapStatusPush.visit_id == visit.id))
    assert push.status == "callback"
    later = build_call_list(NOW + timedelta(hours=3, minutes=1), 5)
    assert later[0].visit.id == visit.id and later[0].reasons[0] == "callback"


def test_callback_in_the_past_or_after_the_window_is_refused(as_role, study):
    visit = _no_consent("NC-BAD", timedelta(days=2))
    client = as_role("coordinator")
    url = f"/console/calls/{visit.id}/outcome"
    past = (NOW - timedelta(hours=1)).astimezone(SHANGHAI).strftime("%Y-%m-%dT%H:%M")
    late = (NOW + timedelta(days=3)).astimezone(SHANGHAI).strftime("%Y-%m-%dT%H:%M")
    refused(client, url, {"outcome": "callback", "seen_attempts": 0, "callback_at": past}, 400, "in the past")
    refused(
        client, url, {"outcome": "callback", "seen_attempts": 0, "callback_at": late}, 400, "window closes"
    )
    refused(client, url, {"outcome": "callback", "seen_attempts": 0}, 400, "date and time")


def test_outcome_for_a_completed_cancelled_or_missed_visit_is_refused(as_role, study):
    client = as_role("coordinator")
    for visit_id in (study.red_flag_visit, study.missed_visit):
        refused(
            client, f"/console/calls/{visit_id}/outcome", {"outcome": "no_answer", "seen_attempts": 0}, 409
        )
    visit = _no_consent("NC-CX", timedelta(days=2))
    visit.status = "cancelled"
    db.session.commit()
    refused(
        client,
        f"/console/calls/{visit.id}/outcome",
        {"outcome": "busy", "seen_attempts": 0},
        409,
        "cancelled",
    )


def test_two_coordinators_on_one_row_the_second_is_told_and_nothing_is_half_written(
    as_role, study, monkeypatch
):
    visit = _no_consent("NC-2", timedelta(days=2))
    first, second = as_role("coordinator"), as_role("admin")
    assert _post(first, visit.id, "no_answer", 0).status_code == 303
    response = refused(
        second, f"/console/calls/{visit.id}/outcome", {"outcome": "refused", "seen_attempts": 0}
    )
    assert b"Someone else recorded a call" in response.data and b"no_answer" in response.data
    # The same race below the page: both read one attempt; the unique attempt number refuses the second.
    db.session.add(
        CallAttempt(
            visit_id=visit.id,
            participant_id=visit.participant_id,
            attempt_no=2,
            actor="user:x",
            at=NOW,
            outcome="busy",
        )
    )
    db.session.commit()
    monkeypatch.setattr(calls, "history", lambda _visit: CallHistory(1, None))
    before = snapshot()
    with pytest.raises(CallRefused, match="same moment"):
        record_outcome(db.session.get(Visit, visit.id), "refused", NOW, "user:y", seen_attempts=1)
    db.session.rollback()
    assert snapshot() == before
    assert db.session.get(Visit, visit.id).status == "open"


def test_refused_ends_the_visits_reminders_and_takes_it_off_the_list(as_role, study):
    visit = db.session.get(Visit, study.closing_visit)
    pending = add_message(visit.participant, visit, "pending", 9)
    db.session.commit()
    assert _post(as_role("coordinator"), visit.id, "refused", 0, note="too tired").status_code == 303
    assert db.session.get(OutboundMessage, pending.id).status == "cancelled"
    assert reminder_hold(visit.id, NOW + timedelta(days=1)).action == "skip"
    assert (
        db.session.scalar(select(RedcapStatusPush.status).where(RedcapStatusPush.visit_id == visit.id))
        == "refused"
    )
    assert "CL-002" not in [r.participant.record_id for r in build_call_list(NOW, 5)]


def test_wrong_number_stop_texts_and_withdrew_use_the_one_path(as_role, study):
    client = as_role("coordinator")
    a = _no_consent("NC-WN", timedelta(days=2))
    b = _no_consent("NC-ST", timedelta(days=2))
    c = _no_consent("NC-WD", timedelta(days=2))
    assert _post(client, a.id, "wrong_number", 0).status_code == 303
    assert _post(client, b.id, "stop_texts", 0).status_code == 303
    assert _post(client, c.id, "withdrew", 0, note="does not want follow-up").status_code == 303
    db.session.expire_all()
    pa, pb, pc = (db.session.get(Participant, v.participant_id) for v in (a, b, c))
    assert pa.phone_status == "unusable" and last_audit("sms.phone_flagged").participant_id == pa.id
    assert pb.opted_out and pb.opted_out_via == "coordinator" and pb.status == "active"
    assert pc.status == "withdrawn" and pc.status_source == "console"
    assert {v.status for v in pc.visits} == {"cancelled"}
    assert last_audit("participant.withdrawn").participant_id == pc.id


def test_unknown_outcome_and_tampered_visit(as_role, study):
    client = as_role("coordinator")
    visit = _no_consent("NC-U", timedelta(days=2))
    refused(client, f"/console/calls/{visit.id}/outcome", {"outcome": "teleported", "seen_attempts": 0}, 400)
    assert _post(client, 999999, "busy").status_code == 404
    assert client.get("/console/calls/999999/questionnaire").status_code == 404
