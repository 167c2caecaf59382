"""Visits completed elsewhere: learn from REDCap which follow-up visits staff already entered.

Coordinators may do a visit in clinic or by phone and enter it straight into REDCap. Every roster
sync (and every Data Entry Trigger re-read) exports, for the follow-up events only, the
questionnaire's `{instrument}_complete` field and the contact status field — nothing else — in
record chunks, and marks such visits "completed in REDCap": their pending texts are cancelled at
once, their link stops taking answers, and the console shows where the visit was done.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from flask import current_app
from sqlalchemy import select, update

from app.extensions import db
from app.models import Participant, StudyStatus, Visit, VisitStatus
from app.models.visit import LIVE_STATUSES
from app.redcap.exports import RedcapRejected, chunks, export_records, followup_events

log = logging.getLogger(__name__)

# Exports are cheap for REDCap compared with imports; 500 records a call keeps 10,000 participants
# to 20 calls while each answer stays small (3 short columns per record and event).
STATUS_CHUNK = 500
COMPLETE = "2"


@dataclass
class StatusResult:
    """What one follow-up status refresh found and changed."""

    calls: int = 0
    rows: int = 0
    completed: list[int] = field(default_factory=list)  # visit ids newly completed in REDCap
    unknown_events: int = 0

    def as_dict(self) -> dict[str, int]:
        """Counts for the tick summary."""
        return {"calls": self.calls, "rows": self.rows, "completed": len(self.completed)}


def status_fields(with_contact: bool = True) -> list[str]:
    """The only columns requested: record id, `{questionnaire}_complete`, the contact status field."""
    config = current_app.config
    fields = [
        config["REDCAP_ROSTER_FIELDS"]["record_id"],
        f"{config['REDCAP_QUESTIONNAIRE_INSTRUMENT']}_complete",
    ]
    contact = (config.get("REDCAP_CONTACT_FIELDS") or {}).get("visit_status")
    if with_contact and contact:
        fields.append(contact)
    return fields


def export_status_rows(record_ids: Sequence[str], client: Any = None) -> list[dict[str, Any]]:
    """One export of the follow-up status columns of `record_ids` (a second one only if REDCap refuses
    the contact status field: a project without the contact instrument still has its questionnaire)."""
    events = followup_events()
    try:
        return export_records(record_ids, fields=status_fields(), events=events, client=client)
    except RedcapRejected as exc:
        if len(status_fields()) == len(status_fields(with_contact=False)):
            raise
        log.warning("REDCap refused the contact status field (%s); reading form status only", str(exc)[:200])
        return export_records(
            record_ids, fields=status_fields(with_contact=False), events=events, client=client
        )


def completion_reason(row: dict[str, Any]) -> str | None:
    """Why REDCap says this visit is done ("questionnaire complete in REDCap" …), or None."""
    config = current_app.config
    complete = str(row.get(f"{config['REDCAP_QUESTIONNAIRE_INSTRUMENT']}_complete") or "").strip()
    status = str(row.get(config["REDCAP_CONTACT_FIELDS"]["visit_status"]) or "").strip()
    if complete == COMPLETE:
        return "questionnaire complete in REDCap"
    if status:
        names = {code: name for name, code in config["REDCAP_VISIT_STATUS_CODES"].items()}
        return f"contact status '{names.get(status, status)}' set in REDCap"
    return None


def apply_status_rows(
    rows: Iterable[dict[str, Any]], now: datetime, actor: str = "system:redcap"
) -> StatusResult:
    """Complete the visits REDCap reports as done (rows as exported); returns what changed.

    Only visits still waiting (scheduled or open) are completed, plus a missed visit whose
    questionnaire staff entered later; a visit finished here is never changed back.
    """
    from app.participants.visits import complete_visit

    config = current_app.config
    id_field = config["REDCAP_ROSTER_FIELDS"]["record_id"]
    complete_field = f"{config['REDCAP_QUESTIONNAIRE_INSTRUMENT']}_complete"
    result = StatusResult()
    done: dict[tuple[str, str], str] = {}
    for row in rows:
        result.rows += 1
        reason = completion_reason(row)
        record = str(row.get(id_field) or "").strip()
        event = str(row.get("redcap_event_name") or "").strip()
        # A questionnaire marked complete outranks a contact status on the same record-event.
        outranks = str(row.get(complete_field) or "") == COMPLETE or (record, event) not in done
        if reason and record and event and outranks:
            done[(record, event)] = reason
    if not done:
        return result
    records = sorted({record for record, _ in done})
    for part in chunks(records, 900):  # bounded IN lists on every database
        visits = db.session.execute(
            select(Visit, Participant.record_id)
            .join(Participant, Visit.participant_id == Participant.id)
            .where(Participant.record_id.in_(part))
        ).all()
        for visit, record in visits:
            reason = done.get((record, visit.event_name))
            if reason is None:
                continue
            waiting = visit.status in LIVE_STATUSES
            late_entry = visit.status == VisitStatus.MISSED and reason.startswith("questionnaire")
            if (waiting or late_entry) and complete_visit(
                visit, via="redcap", now=now, actor=actor, reason=reason
            ):
                result.completed.append(visit.id)
    db.session.flush()
    return result


def refresh_followup_status(
    now: datetime, record_ids: Sequence[str] | None = None, actor: str = "system:redcap"
) -> StatusResult:
    """Export the follow-up status of `record_ids` (default: every participant with a waiting visit).

    Batched by record chunks, so 10,000 participants cost a bounded number of calls; raises the
    REDCap client's RedcapUnavailable/RedcapRejected and leaves the caller to commit.
    """
    if record_ids is None:
        record_ids = db.session.scalars(
            select(Participant.record_id)
            .join(Visit, Visit.participant_id == Participant.id)
            .where(Visit.status.in_(LIVE_STATUSES))
            .distinct()
            .order_by(Participant.record_id)
        ).all()
    total = StatusResult()
    for part in chunks(list(record_ids), STATUS_CHUNK):
        rows = export_status_rows(part)
        total.calls += 1
        step = apply_status_rows(rows, now, actor=actor)
        total.rows += step.rows
        total.completed.extend(step.completed)
    return total


def sync_followup_chunk(
    record_ids: Sequence[str], now: datetime, client: Any = None, actor: str = "system:roster"
) -> StatusResult:
    """Roster sync hook, once per roster chunk: one status export for those records, applied.

    Also stamps `roster_synced_at` on every participant of the chunk, changed or not: their REDCap
    facts were just re-read, which is what the send-time freshness check needs to know.
    """
    result = StatusResult()
    if not record_ids:
        return result
    try:
        rows = export_status_rows(record_ids, client=client)
    except RedcapRejected as exc:
        # e.g. a follow-up event or field name in the settings that REDCap does not know: the roster
        # itself still syncs; the reason is logged (REDCap's text names fields, never values).
        log.warning("follow-up status not read for %d records: %s", len(record_ids), str(exc)[:300])
        result.calls = 1
        return result
    result = apply_status_rows(rows, now, actor=actor)
    result.calls = 1
    for part in chunks(list(record_ids), 900):
        db.session.execute(
            update(Participant).where(Participant.record_id.in_(part)).values(roster_synced_at=now)
        )
    return result


def refresh_open_visits(now: datetime, actor: str = "system:redcap") -> StatusResult:
    """Before each send pass: the follow-up status of every participant whose visit window is open now.

    The roster sync runs every 15 minutes; this closes the gap for the only visits that can be texted,
    at one export per 500 such participants. Raises the REDCap client's exceptions.
    """
    record_ids = db.session.scalars(
        select(Participant.record_id)
        .join(Visit, Visit.participant_id == Participant.id)
        .where(
            Visit.status.in_(LIVE_STATUSES),
            Visit.opens_at <= now,
            Visit.closes_at > now,
            Participant.status == StudyStatus.ACTIVE,
        )
        .distinct()
        .order_by(Participant.record_id)
    ).all()
    if not record_ids:
        return StatusResult()
    return refresh_followup_status(now, record_ids, actor=actor)
