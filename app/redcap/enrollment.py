"""Ended study statuses recorded in the console, pushed to REDCap's enrollment form so that they stick.

A coordinator's withdrawal or death is queued in the same transaction as the console action
(`RedcapEnrollmentStatusPush`) and written by the push pass into `REDCAP_ROSTER_FIELDS["status"]` at
`REDCAP_ENROLLMENT_EVENT`, with the code from `REDCAP_STATUS_CODES`. Before writing, the pass reads the
field (one export per batch): a status REDCap already holds is marked pushed; a different ended status
staff entered there is kept (the row fails, with the reason for coordinators). REDCap unavailable: the
row stays queued with backoff, like every push. Until REDCap has recorded it, the roster sync keeps the
console's status (see `console_end_pending`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import select

from app.extensions import db
from app.models import ENDED_STATUSES, Participant, SyncStatus
from app.models.redcap_sync import RedcapEnrollmentStatusPush


def status_code(config: Mapping[str, Any], status: str) -> str | None:
    """REDCap's code for a study status (REDCAP_STATUS_CODES reversed), or None if it has none."""
    for code, name in (config.get("REDCAP_STATUS_CODES") or {}).items():
        if name == status:
            return str(code)
    return None


def enrollment_push(participant: Participant) -> RedcapEnrollmentStatusPush | None:
    """The participant's queued enrollment status push, if any."""
    return db.session.scalar(
        select(RedcapEnrollmentStatusPush).where(RedcapEnrollmentStatusPush.participant_id == participant.id)
    )


def console_end_pending(participant: Participant) -> str | None:
    """Why REDCap's "active" must not undo this participant's console end yet, or None if it may.

    Held while the status was ended in the console and REDCap has not recorded it: the push is missing,
    pending or failed. Once REDCap recorded it (push landed, or REDCap showed it), staff's later
    re-activation in REDCap is applied as any roster change.
    """
    if participant.status_source != "console" or participant.status not in ENDED_STATUSES:
        return None
    row = enrollment_push(participant)
    if row is not None and row.sync_status == SyncStatus.PUSHED and row.status == participant.status:
        return None
    when = f"{participant.status_changed_at:%Y-%m-%d}" if participant.status_changed_at else "?"
    if row is None:
        state = "no status push is queued"
    elif row.sync_status == SyncStatus.FAILED:
        state = f"the status push failed: {(row.last_error or '?')[:120]}"
    else:
        state = "the status push is pending" + (f" ({row.last_error[:100]})" if row.last_error else "")
    return (
        f"{participant.status} in the console on {when}; REDCap still says active — {state}. "
        "Kept as "
        f"{participant.status}; record it in REDCap to clear this"
    )[:300]
