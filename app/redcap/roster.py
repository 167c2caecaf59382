"""Roster sync: REDCap's enrollment rows become participants and scheduled visits.

Only the configured roster fields are exported, from the enrollment event, in record chunks. Each row is
checked on its own: a bad row is reported with its record id and skipped, the rest go on. A row whose hash
(its values plus the settings that shape the result) is unchanged is not touched at all, so re-running
the sync against an unchanged REDCap writes nothing. Participants are never deleted here.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, cast
from zoneinfo import ZoneInfo

from flask import current_app
from sqlalchemy import select, update

from app import audit
from app.extensions import db
from app.models import Participant, StudyStatus, SystemState
from app.models.participant import ENDED_STATUSES
from app.participants.lifecycle import end_participation
from app.participants.visits import ScheduleInputError, schedule_participant
from app.redcap.client import RedcapClient, get_client
from app.redcap.enrollment import console_end_pending
from app.redcap.roster_rows import (
    RosterRow,
    RowSkipped,
    normalize_phone,
    parse_row,
    roster_fields,
    row_hash,
    settings_fingerprint,
)
from app.redcap.status import sync_followup_chunk
from app.schedule.study_plan import send_window, visit_plan

log = logging.getLogger(__name__)

ACTOR = "system:roster"
CHUNK_SIZE = 500
LAST_SYNC_KEY = "roster.last_sync"
SKIPPED_PREFIX = "roster row not applied: "
MISSING_NOTE = "not found in REDCap's roster at the last sync (kept; check the record in REDCap)"


@dataclass
class RosterReport:
    """What one sync did, for the CLI line, the tick summary and tests. Holds no phone numbers."""

    rows: int = 0
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    skipped: list[str] = field(default_factory=list)
    skip_reasons: Counter[str] = field(default_factory=Counter)
    warnings: list[str] = field(default_factory=list)
    cancelled_visits: int = 0
    missing_from_redcap: list[str] = field(default_factory=list)
    empty: bool = False

    def summary(self) -> str:
        """One line: counts only, reasons counted, no phone numbers."""
        if self.empty:
            return "roster sync: REDCap returned an empty roster; nothing was created, changed or deleted"
        reasons = ", ".join(f"{reason}: {n}" for reason, n in sorted(self.skip_reasons.items()))
        parts = [
            f"roster sync: {self.rows} rows",
            f"created {self.created}",
            f"updated {self.updated}",
            f"unchanged {self.unchanged}",
            f"skipped {len(self.skipped)}" + (f" ({reasons})" if reasons else ""),
        ]
        if self.cancelled_visits:
            parts.append(f"visits cancelled {self.cancelled_visits}")
        if self.warnings:
            parts.append(f"warnings {len(self.warnings)}")
        if self.missing_from_redcap:
            parts.append(f"not in REDCap {len(self.missing_from_redcap)} (kept)")
        return "; ".join(parts)

    def as_dict(self) -> dict[str, Any]:
        return {
            "rows": self.rows,
            "created": self.created,
            "updated": self.updated,
            "unchanged": self.unchanged,
            "skipped": len(self.skipped),
            "cancelled_visits": self.cancelled_visits,
            "missing": len(self.missing_from_redcap),
        }


# ---------------------------------------------------------------- the sync


def export_record_ids(client: RedcapClient, record_field: str, events: list[str] | None) -> list[str]:
    """Every record id at the enrollment event (one call, one field), in REDCap's order."""
    rows = client.export_records([record_field], events=events)
    seen: dict[str, None] = {}
    for row in rows:
        rid = str(row.get(record_field, "") or "").strip()
        if rid:
            seen.setdefault(rid, None)
    return list(seen)


def sync_roster(
    now: datetime,
    *,
    client: RedcapClient | None = None,
    progress: Callable[[int], None] | None = None,
    on_total: Callable[[int], None] | None = None,
    chunk_size: int = CHUNK_SIZE,
) -> RosterReport:
    """Pull the roster from REDCap and apply it; commits per chunk. Raises the client's exceptions."""
    config = current_app.config
    client = client or get_client()
    fields = roster_fields(config)
    names = list(dict.fromkeys(fields.values()))
    events = [config["REDCAP_ENROLLMENT_EVENT"]] if client.is_longitudinal() else None
    ids = export_record_ids(client, fields["record_id"], events)
    report = RosterReport()
    if not ids:
        report.empty = True
        return report
    if on_total is not None:
        on_total(len(ids))
    fingerprint = settings_fingerprint(config)
    zone = ZoneInfo(config["STUDY_TIMEZONE"])
    for start in range(0, len(ids), chunk_size):
        chunk = ids[start : start + chunk_size]
        rows = client.export_records(names, records=chunk, events=events)
        _apply_chunk(rows, fields, config, fingerprint, zone, now, report, position=start)
        sync_followup_chunk(chunk, now, client=client)  # visits done in REDCap (issue 8)
        db.session.commit()
        if progress is not None:
            progress(len(chunk))
    _note_missing(set(ids), report)
    SystemState.write(LAST_SYNC_KEY, {"at": now.isoformat(), "records": len(ids)})
    db.session.commit()
    return report


def _apply_chunk(
    rows: list[dict[str, Any]],
    fields: Mapping[str, str],
    config: Mapping[str, Any],
    fingerprint: str,
    zone: ZoneInfo,
    now: datetime,
    report: RosterReport,
    position: int,
) -> None:
    rid_field = fields["record_id"]
    wanted = [r for r in rows if not r.get("redcap_repeat_instrument")]
    ids = [str(r.get(rid_field, "") or "").strip() for r in wanted]
    existing = {
        p.record_id: p
        for p in db.session.scalars(
            select(Participant).where(Participant.record_id.in_([i for i in ids if i]))
        )
    }
    seen: set[str] = set()
    for offset, row in enumerate(wanted, start=1):
        rid = ids[offset - 1]
        if rid and rid in seen:
            continue  # one row per record at the enrollment event
        seen.add(rid)
        report.rows += 1
        participant = existing.get(rid)
        hashed = row_hash(row, fields, fingerprint)
        if participant is not None and participant.roster_hash == hashed:
            if participant.roster_problem == MISSING_NOTE:
                participant.roster_hash = None  # back in REDCap: apply the row again below
            elif (participant.roster_problem or "").startswith(SKIPPED_PREFIX):
                reason = cast(str, participant.roster_problem).removeprefix(SKIPPED_PREFIX)  # checked above
                report.skipped.append(reason)  # same bad row as last time: reported, nothing written
                report.skip_reasons[_reason_kind(reason)] += 1
                continue
            else:
                report.unchanged += 1  # unchanged row: not even parsed again
                continue
        today = now.astimezone(ZoneInfo(participant.timezone) if participant else zone).date()
        try:
            parsed = parse_row(row, fields, config, today, fingerprint, position + offset)
        except RowSkipped as exc:
            _skip(report, str(exc), participant, hashed)
            continue
        report.warnings.extend(f"record {parsed.record_id}: {p}" for p in parsed.problems)
        if participant is None:
            _create(parsed, config, now, report)
        else:
            _update(participant, parsed, now, report)


def _skip(report: RosterReport, reason: str, participant: Participant | None, hashed: str) -> None:
    report.skipped.append(reason)
    report.skip_reasons[_reason_kind(reason)] += 1
    if participant is not None and participant.roster_hash != hashed:
        # Keep what we had; tell coordinators why REDCap's new values were not applied.
        participant.roster_problem = f"{SKIPPED_PREFIX}{reason}"[:300]
        participant.roster_hash = hashed
        audit.record(ACTOR, "participant.roster_problem", participant=participant, reason=reason[:300])


def _reason_kind(reason: str) -> str:
    for needle, kind in (
        ("no record_id", "no record_id"),
        ("in the future", "discharge date in the future"),
        ("two years", "discharge date too old"),
        ("is missing", "discharge date missing"),
        ("not YYYY-MM-DD", "discharge date not a date"),
        ("study status", "unknown study status"),
    ):
        if needle in reason:
            return kind
    return "other"


def _create(parsed: RosterRow, config: Mapping[str, Any], now: datetime, report: RosterReport) -> None:
    participant = Participant(
        record_id=parsed.record_id,
        timezone=config["STUDY_TIMEZONE"],
        anchor_date=parsed.anchor,
        opted_out=False,
    )
    _assign(participant, parsed, now)
    db.session.add(participant)
    db.session.flush()
    audit.record(ACTOR, "participant.created", participant=participant, status=parsed.status)
    if parsed.status == StudyStatus.ACTIVE:
        schedule_participant(participant, visit_plan(), send_window(), now, actor=ACTOR)
    report.created += 1


def _assign(participant: Participant, parsed: RosterRow, now: datetime, source: str = "redcap") -> list[str]:
    """Copy the row onto the participant; returns the names of the attributes that changed."""
    keep_unusable = (
        participant.phone_status == "unusable"
        and parsed.phone_e164
        and participant.phone_e164 == parsed.phone_e164
    )
    values: dict[str, Any] = {
        "anchor_date": parsed.anchor,
        "language": parsed.language,
        "status": parsed.status,
        "sms_consent": parsed.consent,
        "phone_e164": parsed.phone_e164,
        "roster_problem": "; ".join(parsed.problems)[:300] or None,
    }
    if not keep_unusable:  # an SMS failure marked this number unusable; only a new number clears it
        values["phone_status"] = parsed.phone_status
        values["phone_error"] = parsed.phone_error
    changed = [name for name, value in values.items() if getattr(participant, name, None) != value]
    if "status" in changed or participant.status_changed_at is None:
        participant.status_changed_at = now
    participant.status_source = source
    for name, value in values.items():
        setattr(participant, name, value)
    participant.roster_hash = parsed.row_hash
    participant.roster_synced_at = now
    return changed


def _update(participant: Participant, parsed: RosterRow, now: datetime, report: RosterReport) -> None:
    previous_status = participant.status
    held = console_end_pending(participant) if parsed.status == StudyStatus.ACTIVE else None
    if held:  # ended in the console, not yet recorded in REDCap: REDCap's "active" must not undo it
        parsed = replace(parsed, status=participant.status, problems=[held, *parsed.problems])
    elif parsed.status in ENDED_STATUSES:  # the one way to end (also the console's); it sets the status
        report.cancelled_visits += end_participation(
            participant, parsed.status, now, source="redcap", actor=ACTOR
        )
    changed = _assign(participant, parsed, now, source=participant.status_source if held else "redcap")
    if participant.status != previous_status and "status" not in changed:
        changed.append("status")
    audit.record(
        ACTOR,
        "participant.roster_updated",
        participant=participant,
        changed=sorted(c for c in changed if c != "roster_problem"),
        **cast(
            dict[str, Any],
            {"old_status": previous_status, "new_status": parsed.status} if "status" in changed else {},
        ),
    )
    if parsed.status not in ENDED_STATUSES:
        try:
            schedule_participant(participant, visit_plan(), send_window(), now, actor=ACTOR)
        except ScheduleInputError as exc:  # the zone was edited by hand; report, keep the old visits
            report.warnings.append(str(exc))
    report.updated += 1


def _note_missing(present: set[str], report: RosterReport) -> None:
    """Participants REDCap no longer lists are kept and flagged for coordinators, never deleted."""
    note = MISSING_NOTE
    last_id = 0
    while True:
        batch = db.session.execute(
            select(Participant.id, Participant.record_id, Participant.roster_problem)
            .where(Participant.id > last_id)
            .order_by(Participant.id)
            .limit(1000)
        ).all()
        if not batch:
            return
        for pid, record_id, problem in batch:
            if record_id not in present:
                report.missing_from_redcap.append(record_id)
                if problem != note:
                    db.session.execute(
                        update(Participant).where(Participant.id == pid).values(roster_problem=note)
                    )
        last_id = batch[-1][0]


def roster_step(now: datetime) -> dict[str, Any]:
    """Tick step "roster": one roster sync; skipped when no REDCap token is configured."""
    if not current_app.config.get("REDCAP_API_TOKEN"):
        return {"skipped": 1}
    from app.redcap.client import RedcapClientError
    from app.redcap.state import note_redcap_error

    try:
        report = sync_roster(now)
    except RedcapClientError:
        db.session.rollback()
        note_redcap_error(now)
        db.session.commit()
        raise
    return {"empty": 1} if report.empty else report.as_dict()


def apply_rows(rows: list[dict[str, Any]], now: datetime) -> RosterReport:
    """Apply exported enrollment rows with the sync's own logic (e.g. one record re-read after a DET post).

    Rows of other events are ignored; flushes only, the caller commits.
    """
    config = current_app.config
    event = config["REDCAP_ENROLLMENT_EVENT"]
    wanted = [r for r in rows if r.get("redcap_event_name") in (None, "", event)]
    report = RosterReport()
    fields = roster_fields(config)
    zone = ZoneInfo(config["STUDY_TIMEZONE"])
    _apply_chunk(wanted, fields, config, settings_fingerprint(config), zone, now, report, position=0)
    db.session.flush()
    return report


# Kept importable from here: the DET re-read (app.redcap.rereads) and tests use these names
# (`end_participation` is app.participants.lifecycle's, the one both the roster and the console call).
_settings_fingerprint = settings_fingerprint
__all__ = [
    "ENDED_STATUSES",
    "RosterReport",
    "RosterRow",
    "RowSkipped",
    "apply_rows",
    "end_participation",
    "normalize_phone",
    "parse_row",
    "roster_fields",
    "roster_step",
    "row_hash",
    "sync_roster",
]
