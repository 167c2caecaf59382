"""Participant actions through the console (withdraw, record a death, opt back in) and common refusals."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from app.extensions import db
from app.models import InboundMessage, OutboundMessage, Participant, RedcapStatusPush
from tests.console.conftest import NOW, FreshClient, add_message
from tests.console.helpers import last_audit, refused
from tests.factories import make_user


@pytest.fixture(autouse=True)
def _frozen(time_machine):
    time_machine.move_to(NOW, tick=False)


# --- participants -----------------------------------------------------------------------------


@pytest.mark.parametrize(("path", "status"), [("withdraw", "withdrawn"), ("death", "deceased")])
def test_withdraw_or_record_death_cancels_everything_at_once(as_role, study, path, status):
    participant = db.session.get(Participant, study.closing_participant)
    open_visit = next(v for v in participant.visits if v.status == "open")
    pending = add_message(participant, open_visit, "pending", 9)
    db.session.commit()
    client = as_role("coordinator")
    url = f"/console/participants/{participant.id}/{path}"
    assert client.post(url, data={"reason": "family phoned"}).status_code == 303
    db.session.expire_all()
    participant = db.session.get(Participant, study.closing_participant)
    assert participant.status == status
    assert {v.status for v in participant.visits} == {"cancelled"}
    assert db.session.get(OutboundMessage, pending.id).status == "cancelled"
    pushes = db.session.scalars(
        select(RedcapStatusPush).where(RedcapStatusPush.visit_id.in_([v.id for v in participant.visits]))
    ).all()
    assert {p.status for p in pushes} == {"withdrawn"} and len(pushes) == 2
    entry = last_audit(f"participant.{status}")
    assert entry.reason == "family phoned" and entry.detail["visits_cancelled"] == 2
    refused(client, url, {"reason": "again"}, text="already")


def test_opt_back_in_only_after_start(as_role, study):
    client = as_role("coordinator")
    url = f"/console/participants/{study.opted_out_participant}/opt-in"
    refused(client, url, {"reason": "asked by phone"}, text="has not texted START")
    participant = db.session.get(Participant, study.opted_out_participant)

    def inbound(n, at):
        db.session.add(
            InboundMessage(
                provider_sid=f"SM{n:032d}",
                participant_id=participant.id,
                from_e164=participant.phone_e164,
                body="START",
                keyword="start",
                received_at=at,
            )
        )
        db.session.commit()

    inbound(1, participant.opted_out_at - timedelta(days=1))  # a START before the STOP does not count
    refused(client, url, {"reason": "asked by phone"}, text="has not texted START")
    inbound(2, participant.opted_out_at + timedelta(hours=1))
    assert client.post(url, data={"reason": "texted START"}).status_code == 303
    db.session.expire_all()
    assert db.session.get(Participant, study.opted_out_participant).opted_out is False
    assert last_audit("sms.opted_in").reason == "texted START"
    refused(client, url, {"reason": "again"}, text="not opted out")


# --- refusals common to all -------------------------------------------------------------------


ACTIONS = [
    ("visits/{closing_visit}/remind", {"reason": "x"}),
    ("visits/{closing_visit}/resend-link", {"reason": "x"}),
    ("visits/{closing_visit}/clinic", {"reason": "x"}),
    ("visits/{missed_visit}/reopen", {"reason": "x", "days": "5"}),
    ("submissions/{red_flag_submission}/acknowledge", {"note": "x"}),
    ("submissions/{failed_submission}/retry", {"reason": "x"}),
    ("status-pushes/{failed_status_push}/retry", {"reason": "x"}),
    ("participants/{closing_participant}/withdraw", {"reason": "x"}),
    ("participants/{closing_participant}/death", {"reason": "x"}),
    ("participants/{opted_out_participant}/opt-in", {"reason": "x"}),
]


def test_viewer_gets_403_on_every_action_and_nothing_changes(as_role, study):
    client = as_role("viewer")
    for path, data in ACTIONS:
        refused(client, "/console/" + path.format(**study.__dict__), data, status=403)


def test_missing_csrf_token_is_400_and_nothing_changes(app_factory, time_machine):
    app = app_factory(WTF_CSRF_ENABLED="true")
    app.test_client_class = FreshClient
    with app.app_context():
        from tests.console.conftest import add_submission, add_visit
        from tests.factories import make_participant

        user = make_user("coord@example.org", role="coordinator")
        participant = make_participant("CS-001", commit=False)
        visit = add_visit(participant)
        submission = add_submission(visit, red_flag=True, red_flag_reasons=["x"])
        db.session.commit()
        client = app.test_client()
        import re

        token = re.search(
            rb'name="csrf_token" type="hidden" value="([^"]+)"', client.get("/console/login").data
        )
        client.post(
            "/console/login",
            data={
                "email": user.email,
                "password": "correct horse battery",
                "csrf_token": token.group(1).decode(),
            },
        )
        for url, data in (
            (f"/console/visits/{visit.id}/clinic", {"reason": "x"}),
            (f"/console/submissions/{submission.id}/acknowledge", {"note": "x"}),
            (f"/console/participants/{participant.id}/withdraw", {"reason": "x"}),
        ):
            refused(client, url, data, status=400)


def test_refusals_speak_the_console_language(as_role, study):
    client = as_role("coordinator")
    client.post("/console/language", data={"lang": "zh", "next": "/console/"})
    response = refused(client, f"/console/visits/{study.missed_visit}/remind", {"reason": "x"})
    assert "随访当前为“已错过”，未开放" in response.data.decode()
    assert "未做任何更改" in response.data.decode()
