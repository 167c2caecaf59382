"""The whole path over real HTTP: a participant enrolled in the local REDCap answers by the personal link,
and the answers, in REDCap's raw codes, with the red flag, land in the visit's event through the push."""

from __future__ import annotations

from datetime import timedelta

import requests
from sqlalchemy import select

from app.extensions import db
from app.models import Participant, utcnow
from app.participants.links import issue_link
from app.tick import run_step
from devservers.runner import serve_in_thread
from tests.factories import GOOD_ANSWERS as GOOD
from tests.redcap.conftest import baseline_row, redcap_env_factory, redcap_server  # noqa: F401


def test_answers_reach_the_visit_event_in_redcap(redcap_server):  # noqa: F811
    env = redcap_server
    now = utcnow()
    discharge = (now - timedelta(days=27)).date().isoformat()
    env.state.seed_records([baseline_row("7001", discharge, language="1")])
    assert not run_step("roster", now).get("error")
    assert not run_step("metadata", now).get("error")
    run_step("sweep", now)
    participant = db.session.scalar(select(Participant).where(Participant.record_id == "7001"))
    visit = next(v for v in participant.visits if v.visit_key == "week_4")
    assert visit.is_open_at(now)
    token = issue_link(visit, now)
    db.session.commit()

    web = serve_in_thread(env.app)
    try:
        answers = dict(GOOD, fu_mmrc="4", fu_ae___3="1", fu_comments="Coughing <less>")
        response = requests.post(f"{web.url}/s/{token}", data=answers, timeout=10)
    finally:
        web.stop()
    assert response.status_code == 200 and "Please get help now" in response.text

    assert not run_step("push", utcnow()).get("error")
    stored = {r["redcap_event_name"]: r for r in env.state.records() if r.get("record_id") == "7001"}[
        "week_4_arm_1"
    ]
    assert stored["fu_mmrc"] == "4" and stored["fu_ae___3"] == "1" and stored["fu_ae___2"] == "0"
    assert stored["fu_spo2"] == "97" and stored["fu_health_today"] == "80"
    assert stored["fu_comments"] == "Coughing <less>"
    assert stored["fu_red_flag"] == "1"
    assert stored.get("followup_questionnaire_complete") == "2"
