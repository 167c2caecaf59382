"""End to end over real HTTP, with the real sender and the local Twilio server: the web page's opt-out
withdraws the queued invitation and nothing goes out; "Restart text reminders" lets texts go again; and
in entry mode a typed code opens the questionnaire."""

from __future__ import annotations

import re

import requests
from sqlalchemy import select

from app.extensions import db
from app.models import AuditEntry, OutboundMessage, Participant
from app.participants.entry_codes import issue_code
from app.participants.links import issue_link
from app.questionnaire.store import save_metadata
from app.sms.planner import plan_due, queue_manual_reminder
from app.sms.sender import send_due
from tests.patient.conftest import TRIAL, load_metadata
from tests.sms.conftest import NOW, open_visit


def test_web_opt_out_stops_every_text_and_restart_resumes(twilio_server):
    env = twilio_server
    save_metadata(load_metadata("trial_project"), TRIAL, NOW)
    participant, visit = open_visit()
    assert plan_due(NOW).planned == 1
    token = issue_link(visit, NOW)
    db.session.commit()
    base = f"{env.web.url}/s/{token}"

    page = requests.get(base, timeout=5)
    assert page.status_code == 200 and f'href="/s/{token}/stop"' in page.text
    assert "Stop text reminders?" in requests.get(f"{base}/stop", timeout=5).text
    done = requests.post(f"{base}/stop", timeout=5)
    assert done.status_code == 200 and "Text reminders stopped" in done.text

    db.session.expire_all()
    person = db.session.get(Participant, participant.id)
    assert person.opted_out and person.opted_out_via == "web"
    statuses = set(db.session.scalars(select(OutboundMessage.status)))
    assert statuses == {"cancelled"}
    assert send_due(NOW).get("sent", 0) == 0
    env.state.wait_idle()
    assert env.state.sent_to(participant.phone_e164) == []
    actions = set(db.session.scalars(select(AuditEntry.action).where(AuditEntry.participant_id == person.id)))
    assert {"sms.opted_out", "sms.cancelled"} <= actions

    restarted = requests.post(f"{base}/start", timeout=5)
    assert restarted.status_code == 200 and "Text reminders are on again" in restarted.text
    db.session.expire_all()
    person = db.session.get(Participant, participant.id)
    assert person.can_receive_sms
    queue_manual_reminder(db.session.get(type(visit), visit.id), NOW, "user:1")
    db.session.commit()
    send_due(NOW)
    env.state.wait_idle()
    assert len(env.state.sent_to(participant.phone_e164)) == 1


def test_a_typed_code_opens_the_questionnaire_over_http(twilio_env_factory):
    env = twilio_env_factory(SMS_LINK_MODE="entry")
    with env.app.app_context():
        save_metadata(load_metadata("trial_project"), TRIAL, NOW)
        _participant, visit = open_visit()
        code = issue_code(visit, NOW)
        db.session.commit()
        session = requests.Session()
        form = session.get(f"{env.web.url}/c", timeout=5)
        assert form.status_code == 200 and 'name="code"' in form.text
        wrong = session.post(f"{env.web.url}/c", data={"code": "WXYZ2345"}, timeout=5)
        assert wrong.status_code == 404 and "This code cannot be used" in wrong.text
        answer = session.post(f"{env.web.url}/c", data={"code": f"{code[:4].lower()} {code[4:]}"}, timeout=5)
        assert answer.status_code == 200 and 'id="qform"' in answer.text
        assert re.search(r"/s/[A-Za-z0-9_-]{22}$", answer.url) and code not in answer.url
        assert answer.history[0].status_code == 303
        db.session.remove()
