"""Reconciliation: does REDCap still hold what participants answered here?

For every visit completed through the questionnaire, REDCap's questionnaire data for that visit is
compared with the stored submission, in batched exports (one per batch of visits). Differences are
reported as "missing in REDCap", "edited in REDCap" (staff changed a value after the push: REDCap
wins, nothing is pushed over it), "conflict pending" (a coordinator must decide) or "not yet
pushed". Nothing changes unless `repair` is asked: then pushes that REDCap is missing are queued again.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Select, select

from app import audit
from app.extensions import db
from app.models import Participant, Submission, SyncStatus, Visit, VisitStatus
from app.redcap.conflicts import FILLED_STATUSES, export_sides

MISSING = "missing in REDCap"
EDITED = "edited in REDCap"
CONFLICT = "conflict pending"
NOT_PUSHED = "not yet pushed"
KINDS = (MISSING, EDITED, CONFLICT, NOT_PUSHED)
BATCH = 200  # visits per export


@dataclass
class Difference:
    """One visit whose REDCap data differs from its submission. `columns` names fields, never values."""

    record_id: str
    visit_key: str
    event_name: str
    submission_id: int
    kind: str
    sync_status: str
    columns: list[str] = field(default_factory=list)
    requeued: bool = False


@dataclass
class ReconcileReport:
    """All differences found, with counts for the one-line summary."""

    checked: int = 0
    calls: int = 0
    differences: list[Difference] = field(default_factory=list)
    requeued: int = 0

    def count(self, kind: str) -> int:
        """How many differences of one kind."""
        return sum(1 for d in self.differences if d.kind == kind)

    def summary(self) -> str:
        """One line of counts, for the CLI."""
        counts = ", ".join(f"{kind}: {self.count(kind)}" for kind in KINDS)
        line = f"reconcile: {self.checked} completed visits checked in {self.calls} exports; {counts}"
        return line + (f"; re-queued {self.requeued}" if self.requeued else "")


def completed_count() -> int:
    """How many visits the service holds as completed through its questionnaire (for a progress bar)."""
    return len(db.session.scalars(_base_query().with_only_columns(Submission.id)).all())


def _base_query() -> Select[tuple[Submission, Visit, str]]:
    return (
        select(Submission, Visit, Participant.record_id)
        .join(Visit, Submission.visit_id == Visit.id)
        .join(Participant, Visit.participant_id == Participant.id)
        .where(Visit.status == VisitStatus.COMPLETED, Visit.completed_via == "questionnaire")
        .order_by(Submission.id)
    )


def _batches(size: int) -> Iterator[list[tuple[Submission, Visit, str]]]:
    last_id = 0
    while True:
        rows = db.session.execute(_base_query().where(Submission.id > last_id).limit(size)).all()
        if not rows:
            return
        yield [(s, v, r) for s, v, r in rows]
        last_id = rows[-1][0].id


def _edited_columns(answers: dict[str, Any], side: dict[str, Any]) -> list[str]:
    theirs = side.get("values") or {}
    ours = {
        c: str(v).strip()
        for c, v in answers.items()
        if v is not None and str(v).strip() and not ("___" in c and str(v).strip() == "0")
    }
    return sorted(c for c in set(ours) | set(theirs) if ours.get(c, "") != theirs.get(c, ""))


def classify(submission: Submission, side: dict[str, Any]) -> tuple[str, list[str]] | None:
    """The difference kind for one visit (and the columns involved), or None when REDCap agrees."""
    if submission.sync_status == SyncStatus.DISCARDED:
        return None  # a coordinator chose REDCap's values
    if submission.sync_status == SyncStatus.CONFLICT:
        return CONFLICT, sorted((submission.redcap_snapshot or {}).get("values", {}).keys())
    blank = not side.get("values") and side.get("complete") not in FILLED_STATUSES
    if submission.sync_status != SyncStatus.PUSHED:
        return (NOT_PUSHED, []) if blank else (NOT_PUSHED, _edited_columns(submission.answers or {}, side))
    if blank:
        return MISSING, []
    edited = _edited_columns(submission.answers or {}, side)
    return (EDITED, edited) if edited else None


def requeue_missing(submission: Submission, now: datetime, actor: str) -> None:
    """Queue again a pushed submission REDCap no longer holds (the conflict check still runs first)."""
    submission.requeue(now, forget_pushed=True)
    audit.record(actor, "redcap.reconcile_requeued", visit=submission.visit, submission_id=submission.id)


def reconcile(
    now: datetime,
    *,
    repair: bool = False,
    actor: str = "system:reconcile",
    progress: Callable[[int], None] | None = None,
    batch_size: int = BATCH,
) -> ReconcileReport:
    """Compare REDCap with every questionnaire-completed visit; with `repair`, re-queue missing pushes.

    Raises the REDCap client's exceptions; commits only when repairing.
    """
    report = ReconcileReport()
    for batch in _batches(batch_size):
        targets = [(record, visit.event_name) for _, visit, record in batch]
        sides = export_sides(targets)
        report.calls += 1
        for submission, visit, record in batch:
            report.checked += 1
            found = classify(submission, sides[(record, visit.event_name)])
            if found is None:
                continue
            kind, columns = found
            diff = Difference(
                record,
                visit.visit_key,
                visit.event_name,
                submission.id,
                kind,
                submission.sync_status,
                columns,
            )
            if repair and kind == MISSING:
                requeue_missing(submission, now, actor)
                diff.requeued = True
                report.requeued += 1
            report.differences.append(diff)
        if repair:
            db.session.commit()
        if progress is not None:
            progress(len(batch))
    return report
