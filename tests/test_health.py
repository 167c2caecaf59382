"""`/healthz`: database and scheduler heartbeat, no participant data."""

from __future__ import annotations

from datetime import timedelta

from app.extensions import db
from app.health.checks import HEARTBEAT_KEY
from app.models import SystemState, utcnow


def test_health_is_503_without_a_scheduler_heartbeat(client):
    response = client.get("/healthz")
    assert response.status_code == 503
    assert response.json["database"] == "ok" and response.json["scheduler"] == "never seen"


def test_health_is_200_with_a_fresh_heartbeat_and_503_when_stale(app, client):
    db.session.add(SystemState(key=HEARTBEAT_KEY, value=utcnow().isoformat()))
    db.session.commit()
    response = client.get("/healthz")
    assert response.status_code == 200
    assert set(response.json) >= {
        "outbox_backlog",
        "redcap_push_backlog",
        "redcap_last_error_at",
        "scheduler_heartbeat_age_seconds",
    }
    db.session.get(SystemState, HEARTBEAT_KEY).value = (utcnow() - timedelta(minutes=6)).isoformat()
    db.session.commit()
    assert client.get("/healthz").status_code == 503
