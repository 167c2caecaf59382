"""Never overwrite staff's data: check REDCap before importing a submission, and let coordinators decide.

Before a batch is imported, the push calls `check_batch`: one export of the target events'
questionnaire fields for the batch's records. A submission whose visit already holds non-blank
questionnaire data in REDCap that did not come from this service is not imported: it is kept,
marked "conflict", and REDCap's values are stored beside it (`Submission.redcap_snapshot`) for the
console's side-by-side view. A coordinator may import it anyway or discard it (both audited); an
"import anyway" is bound to the hash of the REDCap values the coordinator saw, so a change in
REDCap after that makes it a conflict again instead of being overwritten.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from flask import current_app
from sqlalchemy import select

from app import audit
from app.extensions import db
from app.models import ConflictDecision, Participant, Submission, SyncStatus, Visit
from app.redcap.exports import export_records, questionnaire_fields

log = logging.getLogger(__name__)

ALREADY_PUSHED = (
    "pushed to REDCap once already; never pushed again over REDCap's current data (see reconcile)"
)
CONFLICT_MESSAGE = (
    "REDCap already holds questionnaire data for this visit that did not come from this service"
)
FILLED_STATUSES = ("1", "2")  # Unverified, Complete: someone worked on the form in REDCap


class ConflictChanged(Exception):
    """REDCap's side changed since the coordinator looked; the message says what to do."""


class ConflictStateError(Exception):
    """The submission is not (or no longer) a conflict waiting for a decision."""


@dataclass
class BatchCheck:
    """The outcome of checking one batch: what may be imported and what became a conflict."""

    cleared: list[Submission]
    conflicts: list[Submission]
    skipped: list[Submission]  # already pushed, discarded, or waiting for a coordinator
    calls: int = 0


def _complete_column() -> str:
    return f"{current_app.config['REDCAP_QUESTIONNAIRE_INSTRUMENT']}_complete"


def _blank(column: str, value: Any) -> bool:
    text = "" if value is None else str(value).strip()
    # An unticked checkbox exports as "0": that is not data anyone entered.
    return text == "" or ("___" in column and text == "0")


def redcap_values(row: Mapping[str, Any] | None) -> dict[str, Any]:
    """REDCap's side of one record-event: its non-blank questionnaire values and the form status."""
    if not row:
        return {"values": {}, "complete": ""}
    complete_column = _complete_column()
    id_field = current_app.config["REDCAP_ROSTER_FIELDS"]["record_id"]
    skip = {
        id_field,
        "redcap_event_name",
        "redcap_repeat_instrument",
        "redcap_repeat_instance",
        complete_column,
    }
    values = {
        column: str(value).strip()
        for column, value in row.items()
        if column not in skip and not _blank(column, value)
    }
    return {"values": dict(sorted(values.items())), "complete": str(row.get(complete_column) or "").strip()}


def snapshot_hash(side: Mapping[str, Any] | None) -> str:
    """A stable SHA-256 of REDCap's side (values and form status), to notice any later change."""
    side = side or {}
    canonical = json.dumps(
        {"values": side.get("values") or {}, "complete": side.get("complete") or ""},
        sort_keys=True,
        ensure_ascii=True,
    )
    return hashlib.sha256(canonical.encode("ascii")).hexdigest()


def differences(answers: Mapping[str, Any], side: Mapping[str, Any]) -> dict[str, tuple[str, str]]:
    """Columns where REDCap holds a non-blank value other than ours: {column: (ours, REDCap's)}."""
    found: dict[str, tuple[str, str]] = {}
    for column, theirs in (side.get("values") or {}).items():
        ours = "" if answers.get(column) is None else str(answers.get(column)).strip()
        if ours != theirs:
            found[column] = (ours, theirs)
    return found


def is_foreign(answers: Mapping[str, Any], side: Mapping[str, Any]) -> bool:
    """Whether REDCap's side holds data that this submission did not put there."""
    if differences(answers, side):
        return True
    # A form status set while every field is blank: staff marked the form, we never wrote it so.
    has_answers = any(not _blank(c, v) for c, v in answers.items())
    return not side.get("values") and side.get("complete") in FILLED_STATUSES and has_answers


def _latest_decision(submission: Submission) -> ConflictDecision | None:
    return db.session.scalar(
        select(ConflictDecision)
        .where(ConflictDecision.submission_id == submission.id)
        .order_by(ConflictDecision.id.desc())
        .limit(1)
    )


def _target(submission: Submission) -> tuple[str, str]:
    visit = submission.visit
    return visit.participant.record_id, visit.event_name


def export_sides(
    targets: Sequence[tuple[str, str]], client: Any = None
) -> dict[tuple[str, str], dict[str, Any]]:
    """REDCap's side for each (record, event), from ONE export of the questionnaire fields."""
    if not targets:
        return {}
    id_field = current_app.config["REDCAP_ROSTER_FIELDS"]["record_id"]
    records = sorted({record for record, _ in targets})
    events = sorted({event for _, event in targets})
    fields = [id_field, *questionnaire_fields(), _complete_column()]
    rows = export_records(records, fields=fields, events=events, client=client)
    by_key = {(str(r.get(id_field)), str(r.get("redcap_event_name") or "")): r for r in rows}
    return {key: redcap_values(by_key.get(key)) for key in targets}


def mark_conflict(submission: Submission, side: dict[str, Any], now: datetime, actor: str) -> None:
    """Keep the submission out of REDCap, with REDCap's side stored for the coordinators."""
    first = submission.sync_status != SyncStatus.CONFLICT
    submission.sync_status = SyncStatus.CONFLICT
    submission.redcap_snapshot = {**side, "hash": snapshot_hash(side), "checked_at": now.isoformat()}
    submission.last_error = CONFLICT_MESSAGE
    submission.next_attempt_at = None
    if first:
        audit.record(
            actor,
            "submission.conflict",
            visit=submission.visit,
            submission_id=submission.id,
            columns=sorted((side.get("values") or {}).keys()),
        )


def check_batch(
    submissions: Sequence[Submission], now: datetime, actor: str = "system:push", client: Any = None
) -> BatchCheck:
    """Decide which submissions of a push batch may be imported; ONE export for the whole batch.

    Raises the REDCap client's RedcapUnavailable (the batch stays queued) like any push call.
    Conflicts are flushed, not committed: the push commits with its own results.
    """
    result = BatchCheck(cleared=[], conflicts=[], skipped=[])
    candidates = []
    for submission in submissions:
        if submission.sync_status in (SyncStatus.PUSHED, SyncStatus.DISCARDED) or submission.pushed_at:
            result.skipped.append(submission)  # pushed once: never again over later staff edits
        elif submission.sync_status == SyncStatus.CONFLICT:
            result.skipped.append(submission)
        else:
            candidates.append(submission)
    if not candidates:
        return result
    sides = export_sides([_target(s) for s in candidates], client=client)
    result.calls = 1
    for submission in candidates:
        side = sides[_target(submission)]
        if not is_foreign(submission.answers or {}, side):
            result.cleared.append(submission)
            continue
        decision = _latest_decision(submission)
        if (
            decision is not None
            and decision.action == "import"
            and decision.snapshot_hash == snapshot_hash(side)
        ):
            result.cleared.append(submission)  # a coordinator chose to import over exactly these values
            continue
        mark_conflict(submission, side, now, actor)
        result.conflicts.append(submission)
    db.session.flush()
    return result


def open_conflicts() -> list[Submission]:
    """Submissions waiting for a coordinator's decision, oldest first."""
    return list(
        db.session.scalars(
            select(Submission)
            .join(Visit, Submission.visit_id == Visit.id)
            .join(Participant, Visit.participant_id == Participant.id)
            .where(Submission.sync_status == SyncStatus.CONFLICT)
            .order_by(Submission.submitted_at, Submission.id)
        ).all()
    )


def comparison(submission: Submission) -> list[dict[str, str]]:
    """Rows for the side-by-side view: column, ours, REDCap's, and whether they differ."""
    answers = {k: "" if v is None else str(v) for k, v in (submission.answers or {}).items()}
    theirs = dict((submission.redcap_snapshot or {}).get("values") or {})
    rows = []
    for column in dict.fromkeys([*answers, *theirs]):
        ours, redcaps = answers.get(column, ""), theirs.get(column, "")
        if _blank(column, ours) and _blank(column, redcaps):
            continue
        rows.append(
            {"column": column, "ours": ours, "redcap": redcaps, "differs": ours.strip() != redcaps.strip()}
        )
    return rows


def _require_conflict(submission: Submission) -> None:
    if submission.sync_status != SyncStatus.CONFLICT:
        raise ConflictStateError(
            f"submission {submission.id} is not a conflict any more (it is {submission.sync_status})"
        )


def import_anyway(
    submission: Submission, shown_hash: str, actor: str, now: datetime, note: str | None = None
) -> None:
    """Queue the submission for import over REDCap's values, if REDCap still holds what the coordinator saw.

    Re-reads REDCap first (one export). If REDCap changed since the page was shown, stores the new
    values, refuses with ConflictChanged, and changes nothing else. Commits on success.
    """
    _require_conflict(submission)
    side = export_sides([_target(submission)])[_target(submission)]
    current = snapshot_hash(side)
    if current != shown_hash:
        submission.redcap_snapshot = {**side, "hash": current, "checked_at": now.isoformat()}
        db.session.commit()
        raise ConflictChanged(
            "REDCap's values for this visit changed since this page was shown. "
            "Nothing was imported; review the new values and decide again."
        )
    db.session.add(
        ConflictDecision(
            submission_id=submission.id, action="import", snapshot_hash=current, actor=actor, note=note
        )
    )
    submission.requeue(now, keep_attempts=True)  # the hold lifted; the push's attempts stay as they were
    audit.record(
        actor, "submission.conflict_import", visit=submission.visit, reason=note, submission_id=submission.id
    )
    db.session.commit()


def discard(
    submission: Submission, shown_hash: str, actor: str, now: datetime, note: str | None = None
) -> None:
    """Keep REDCap's values and never push this submission (it stays stored here, marked discarded)."""
    _require_conflict(submission)
    db.session.add(
        ConflictDecision(
            submission_id=submission.id,
            action="discard",
            snapshot_hash=shown_hash[:64],
            actor=actor,
            note=note,
        )
    )
    submission.sync_status = SyncStatus.DISCARDED
    submission.next_attempt_at = None
    audit.record(
        actor, "submission.conflict_discard", visit=submission.visit, reason=note, submission_id=submission.id
    )
    db.session.commit()


def pre_push_check(items: Sequence[Any], client: Any, now: datetime) -> set[int]:
    """The push's pre-import hook: returns the submission ids held back (conflicts, already pushed).

    Raises the client's RedcapRejected when REDCap refuses the check export, so the push can isolate it.
    """
    ids = [item.id for item in items]
    if not ids:
        return set()
    submissions = list(db.session.scalars(select(Submission).where(Submission.id.in_(ids))).all())
    # RedcapRejected propagates: the push halves the batch until the record REDCap refuses stands alone
    # (it ends failed with REDCap's text) and checks and pushes the rest; RedcapUnavailable keeps the
    # batch queued. Never import blind, and never let one bad record hold the others.
    result = check_batch(submissions, now, client=client)
    held = {s.id for s in result.conflicts}
    for submission in result.skipped:
        if submission.sync_status == SyncStatus.PENDING:
            # Re-queued although pushed once: put it back, untouched.
            submission.sync_status = SyncStatus.PUSHED
            submission.last_error = ALREADY_PUSHED
        held.add(submission.id)
    db.session.flush()
    return held
