"""Apply queued re-reads of single REDCap records (from the Data Entry Trigger and send-time checks).

A re-read exports that record's enrollment fields (never the randomization group) and its
follow-up status in ONE call, applies the enrollment row through the roster sync's own row logic
and the status through `app.redcap.status`. The "det" tick step drains the queue; a small worker
thread started by the webhook does the same within seconds. Both are idempotent: applying a row
twice changes nothing. A REDCap error leaves the row queued for a later attempt, with backoff.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from flask import Flask, current_app
from sqlalchemy import delete, func, or_, select
from sqlalchemy.exc import IntegrityError

from app.backoff import backoff_ceiling
from app.extensions import db
from app.models import Participant, RecordRefresh, utcnow
from app.redcap.exports import RedcapClientError, RedcapRejected, chunks, export_records, followup_events
from app.redcap.failure_pause import note_failure, recently_failed
from app.redcap.status import apply_status_rows, status_fields

log = logging.getLogger(__name__)

ACTOR = "system:redcap-det"
BATCH = 200  # records per drain round: one export each
MAX_BACKOFF = timedelta(minutes=15)
KEEP_DONE = timedelta(days=30)  # done re-reads are kept this long as a trail, then pruned
NOT_IN_REDCAP = "record not found in REDCap; nothing was changed or deleted here"


@dataclass
class RefreshResult:
    """What one drain of the queue did."""

    applied: int = 0
    not_found: int = 0
    failed: int = 0
    calls: int = 0
    completed_visits: list[int] = field(default_factory=list)

    def as_dict(self) -> dict[str, int]:
        """Counts for the tick summary."""
        return {
            "applied": self.applied,
            "not_found": self.not_found,
            "failed": self.failed,
            "calls": self.calls,
            "completed": len(self.completed_visits),
        }


# ---------------------------------------------------------------- the queue


def pending_count() -> int:
    """How many re-reads are waiting (the DET endpoint refuses new ones above REDCAP_DET_MAX_PENDING)."""
    return db.session.scalar(select(func.count(RecordRefresh.id)).where(RecordRefresh.done_at.is_(None))) or 0


def is_pending(record_id: str) -> bool:
    """Whether a re-read of `record_id` is already waiting."""
    found = db.session.scalar(select(RecordRefresh.id).where(RecordRefresh.pending_record == record_id))
    return found is not None


def enqueue(record_id: str, now: datetime, source: str = "det") -> bool:
    """Queue a re-read of `record_id` unless one is already pending; commits. Returns whether it was new."""
    if is_pending(record_id):
        return False
    db.session.add(
        RecordRefresh(
            record_id=record_id,
            pending_record=record_id,
            source=source,
            requested_at=now,
            next_attempt_at=None,  # due at once, whatever clock the next pass uses
        )
    )
    try:
        db.session.commit()
    except IntegrityError:  # a concurrent post queued it first: the pending row is shared
        db.session.rollback()
        return False
    return True


def _due(now: datetime, limit: int) -> list[RecordRefresh]:
    return list(
        db.session.scalars(
            select(RecordRefresh)
            .where(
                RecordRefresh.done_at.is_(None),
                or_(RecordRefresh.next_attempt_at.is_(None), RecordRefresh.next_attempt_at <= now),
            )
            .order_by(RecordRefresh.requested_at, RecordRefresh.id)
            .limit(limit)
        ).all()
    )


def _backoff(attempts: int) -> timedelta:
    return timedelta(seconds=backoff_ceiling(attempts, 5.0, MAX_BACKOFF.total_seconds()))


# ---------------------------------------------------------------- reading and applying


def reread_fields(with_contact: bool = True) -> list[str]:
    """The enrollment fields the roster uses plus the follow-up status fields; never a forbidden field."""
    names = [*current_app.config["REDCAP_ROSTER_FIELDS"].values(), *status_fields(with_contact)]
    return [n for n in dict.fromkeys(names) if n]


def export_current(record_ids: Sequence[str]) -> list[dict[str, Any]]:
    """ONE export of the records' enrollment row and follow-up status rows (retried once without the
    contact status field if REDCap refuses it)."""
    events = list(dict.fromkeys([current_app.config["REDCAP_ENROLLMENT_EVENT"], *followup_events()]))
    try:
        return export_records(record_ids, fields=reread_fields(), events=events)
    except RedcapRejected:
        if reread_fields() == reread_fields(with_contact=False):
            raise
        return export_records(record_ids, fields=reread_fields(with_contact=False), events=events)


def _apply_roster_rows(rows: list[dict[str, Any]], now: datetime) -> None:
    """Enrollment rows through the roster sync's own row logic, so both paths behave the same."""
    from app.redcap.roster import apply_rows

    apply_rows(rows, now)


def apply_current(
    record_ids: Sequence[str], rows: list[dict[str, Any]], now: datetime
) -> tuple[set[str], list[int]]:
    """Apply exported rows; returns (records REDCap has, visit ids completed in REDCap). Flushes only."""
    config = current_app.config
    id_field = config["REDCAP_ROSTER_FIELDS"]["record_id"]
    enrollment_event = config["REDCAP_ENROLLMENT_EVENT"]
    baseline: list[dict[str, Any]] = []
    followup: list[dict[str, Any]] = []
    for row in rows:
        is_baseline = str(row.get("redcap_event_name") or enrollment_event) == enrollment_event
        (baseline if is_baseline else followup).append(row)
    present = {str(r.get(id_field) or "").strip() for r in baseline} - {""}
    if baseline:
        _apply_roster_rows(baseline, now)
    completed = apply_status_rows(followup, now, actor=ACTOR).completed
    # The facts were re-checked now, even where nothing changed (the roster skips unchanged rows).
    for participant in db.session.scalars(
        select(Participant).where(Participant.record_id.in_(list(present)))
    ):
        participant.roster_synced_at = now
    db.session.flush()
    return present, completed


def reread_record(record_id: str, now: datetime) -> bool:
    """Re-read one record from REDCap now and apply it (committed). False if REDCap does not have it.

    Raises the REDCap client's exceptions; the send-time check turns those into "wait".
    """
    rows = export_current([record_id])
    present, _ = apply_current([record_id], rows, now)
    db.session.commit()
    return record_id in present


def drain(now: datetime, limit: int = 1000) -> RefreshResult:
    """Apply due queued re-reads, BATCH records per export; errors leave rows queued with backoff."""
    result = RefreshResult()
    due = _due(now, limit)
    by_record = {row.record_id: row for row in due}
    for part in chunks(list(by_record), BATCH):
        items = [by_record[r] for r in part]
        try:
            rows = export_current(part)
            result.calls += 1
            present, completed = apply_current(part, rows, now)
        except RedcapClientError as exc:
            db.session.rollback()
            _failed(part, str(exc), now)
            result.failed += len(part)
            continue
        except Exception as exc:  # a bug or a database error must not wedge the queue: back off, log
            db.session.rollback()
            log.exception("applying the re-read of %d record(s) failed", len(part))
            _failed(part, f"could not apply the re-read here: {type(exc).__name__}", now)
            result.failed += len(part)
            continue
        result.completed_visits.extend(completed)
        for item in items:
            item.done_at = now
            item.pending_record = None
            item.attempts += 1
            item.last_error = None
            if item.record_id in present:
                item.note = "applied"
                result.applied += 1
            else:
                item.note = NOT_IN_REDCAP
                result.not_found += 1
                log.warning("DET re-read: record %s is not in REDCap (nothing changed)", item.record_id)
        db.session.commit()
    return result


def _failed(record_ids: list[str], message: str, now: datetime) -> None:
    for item in db.session.scalars(
        select(RecordRefresh).where(
            RecordRefresh.pending_record.in_(record_ids), RecordRefresh.done_at.is_(None)
        )
    ):
        item.attempts += 1
        item.last_error = message[:500]
        item.next_attempt_at = now + _backoff(item.attempts)
    db.session.commit()
    log.warning("DET re-read of %d record(s) failed, will retry: %s", len(record_ids), message[:200])


def prune_done(now: datetime, limit: int = 1000) -> int:
    """Delete re-reads finished more than KEEP_DONE ago (bounded per call); commits."""
    old = db.session.scalars(
        select(RecordRefresh.id)
        .where(RecordRefresh.done_at.is_not(None), RecordRefresh.done_at < now - KEEP_DONE)
        .limit(limit)
    ).all()
    if old:
        db.session.execute(delete(RecordRefresh).where(RecordRefresh.id.in_(old)))
        db.session.commit()
    return len(old)


def det_step(now: datetime) -> dict[str, Any]:
    """Tick step "det", run before every send pass: apply queued re-reads, then re-read the follow-up
    status of the visits open now, so nobody is texted for a visit already entered in REDCap."""
    summary = drain(now).as_dict()
    summary["pruned"] = prune_done(now)
    summary["open_completed"] = _refresh_open(now)
    return summary


def _refresh_open(now: datetime) -> int:
    from app.redcap.status import refresh_open_visits

    if not current_app.config.get("REDCAP_API_TOKEN") or recently_failed():
        return 0  # no REDCap configured, or it failed a moment ago: the send-time check still guards
    try:
        result = refresh_open_visits(now, actor=ACTOR)
    except RedcapClientError as exc:
        db.session.rollback()
        note_failure()
        log.warning("follow-up status of open visits not read before sending: %s", str(exc)[:200])
        return 0
    db.session.commit()
    return len(result.completed)


# ---------------------------------------------------------------- worker thread

_worker_lock = threading.Lock()
_workers: dict[int, threading.Thread] = {}
_more: set[int] = set()  # apps with posts queued since their worker last looked
MAX_ROUNDS = 50  # a worker ends after this many drains; the scheduler's det step covers the rest


def kick_worker(app: Flask) -> bool:
    """Have a short-lived thread drain the queue now; starts one unless the app's worker is running.

    The running worker is told there is more work under the same lock it takes before exiting,
    so a post arriving while it finishes is never left for the next scheduler pass.
    """
    if not app.config.get("REDCAP_DET_WORKER", True):
        return False
    with _worker_lock:
        _more.add(id(app))
        running = _workers.get(id(app))
        if running is not None and running.is_alive():
            return False
        thread = threading.Thread(target=_work, args=(app,), name="redcap-det-worker", daemon=True)
        _workers[id(app)] = thread
        thread.start()
    return True


def _work(app: Flask) -> None:
    key = id(app)
    with app.app_context():
        try:
            for _ in range(MAX_ROUNDS):
                with _worker_lock:
                    if key not in _more:
                        _workers.pop(key, None)
                        return
                    _more.discard(key)
                result = drain(utcnow())
                if result.failed:
                    break  # REDCap is failing: leave the retries to the scheduler's backoff
        except Exception:  # never let a worker thread die noisily; the tick step retries
            db.session.rollback()
            log.exception("DET worker pass failed; the scheduler's det step will retry")
        finally:
            with _worker_lock:
                if _workers.get(key) is threading.current_thread():
                    _workers.pop(key, None)
            db.session.remove()


def wait_for_worker(app: Flask, timeout: float = 10.0) -> None:
    """Join the app's worker thread, if any (tests and graceful shutdown)."""
    with _worker_lock:
        thread = _workers.get(id(app))
    if thread is not None:
        thread.join(timeout)
