"""Write audit entries. Every automated and human action that changes a participant's course goes here."""

from __future__ import annotations

from typing import Any

from app.extensions import db
from app.models import AuditEntry, Participant, Visit


def record(
    actor: str,
    action: str,
    *,
    participant: Participant | None = None,
    visit: Visit | None = None,
    reason: str | None = None,
    **detail: Any,
) -> AuditEntry:
    """Add an audit entry to the current transaction (it commits with the change it describes).

    `detail` must hold no answers, phone numbers or tokens: the audit log is shown to every
    coordinator and exported with the study's records.
    """
    participant_id = participant.id if participant is not None else (visit.participant_id if visit else None)
    entry = AuditEntry(
        actor=actor,
        action=action,
        participant_id=participant_id,
        visit_id=visit.id if visit is not None else None,
        reason=reason,
        detail=detail,
    )
    db.session.add(entry)
    return entry
