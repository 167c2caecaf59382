"""Helpers shared by the console action tests: a database snapshot to prove refusals change nothing."""

from __future__ import annotations

from sqlalchemy import func, select

from app.extensions import db
from app.models import (
    AuditEntry,
    OutboundMessage,
    Participant,
    RedcapStatusPush,
    Submission,
    SurveyLink,
    User,
    Visit,
)


def snapshot() -> dict:
    """Everything an action could change, to prove a refusal changed nothing."""
    db.session.expire_all()

    def rows(model, *cols):
        return sorted(tuple(getattr(r, c) for c in cols) for r in db.session.scalars(select(model)).all())

    return {
        "visits": rows(Visit, "id", "status", "opens_at", "closes_at", "schedule_version", "completed_via"),
        "participants": rows(Participant, "id", "status", "opted_out"),
        "submissions": rows(Submission, "id", "sync_status", "red_flag_acknowledged_at", "red_flag_note"),
        "messages": rows(OutboundMessage, "id", "status"),
        "links": rows(SurveyLink, "id", "revoked_at"),
        "status_pushes": rows(RedcapStatusPush, "id", "status", "sync_status"),
        "users": rows(User, "id", "role", "active"),
        "audit": db.session.scalar(select(func.count()).select_from(AuditEntry)),
    }


def last_audit(action: str) -> AuditEntry:
    entry = db.session.scalar(
        select(AuditEntry).where(AuditEntry.action == action).order_by(AuditEntry.id.desc())
    )
    assert entry is not None, f"no audit entry {action}"
    return entry


def refused(client, url, data, status=409, text: str | None = None):
    before = snapshot()
    response = client.post(url, data=data)
    assert response.status_code == status, (url, response.status_code, response.data[:500])
    if text:
        assert text.encode() in response.data
    assert snapshot() == before, f"{url} changed the database although refused"
    return response
