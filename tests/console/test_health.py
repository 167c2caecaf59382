"""`/healthz` for the hospital's monitoring: counts and ages only, 503 when the scheduler is silent."""

from __future__ import annotations

from datetime import timedelta

from app.extensions import db
from app.health.checks import HEARTBEAT_KEY, REDCAP_ERROR_KEY
from app.models import SystemState, utcnow
from tests.console.conftest import NOW, add_message, add_submission, add_visit
from tests.factories import make_participant


def test_health_reports_backlogs_and_last_redcap_error_without_participant_data(app, client):
    now = utcnow()
    participant = make_participant("HZ-001", commit=False)
    visit = add_visit(participant, opens=now - timedelta(days=1), closes=now + timedelta(days=5))
    add_message(participant, visit, "pending", 1)
    add_message(participant, visit, "delivered", 2)
    add_submission(visit, sync_status="pending", submitted_at=now)
    db.session.add(SystemState(key=HEARTBEAT_KEY, value=(now - timedelta(seconds=20)).isoformat()))
    db.session.add(SystemState(key=REDCAP_ERROR_KEY, value=NOW.isoformat()))
    db.session.commit()
    response = client.get("/healthz")
    assert response.status_code == 200 and response.is_json
    body = response.json
    assert body["ok"] is True and body["database"] == "ok" and body["scheduler"] == "ok"
    assert body["outbox_backlog"] == 1 and body["redcap_push_backlog"] == 1
    assert body["redcap_last_error_at"].startswith("2026-03-10T02:00")
    assert 15 <= body["scheduler_heartbeat_age_seconds"] < 120
    text = response.data.decode()
    assert "HZ-001" not in text and participant.phone_e164 not in text and "fu_spo2" not in text


def test_health_is_503_after_five_silent_minutes_and_needs_no_login(app, client):
    db.session.add(
        SystemState(key=HEARTBEAT_KEY, value=(utcnow() - timedelta(minutes=5, seconds=5)).isoformat())
    )
    db.session.commit()
    response = client.get("/healthz")
    assert response.status_code == 503 and response.json["scheduler"] == "stale"
    assert app.config["HEALTH_HEARTBEAT_MAX_AGE_SECONDS"] == 300
