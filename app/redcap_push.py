"""The push to REDCap: accepted submissions and visit statuses, in batches, losing nothing.

Both queues live in the database (`Submission.sync_status`, and `RedcapStatusPush` for missed, opted-out
and withdrawn visits), so a crash or an outage only delays a push. A pass streams due rows by id (keyset
pagination, constant memory), checks every submission against the stored metadata, and imports a batch per
call with `returnContent=ids`. REDCap unavailable: the batch stays queued with exponential backoff and
jitter. REDCap rejects a batch (HTTP 400): the batch is split in halves until the bad record is alone; the
good ones land, the bad one is marked failed with REDCap's text for coordinators and is not retried on its
own. Imports use overwriteBehavior=normal with the same values every time, so a second push changes nothing.
Answers, REDCap's error texts (which may quote a value) and the token are never logged.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from flask import current_app
from sqlalchemy import Select, or_, select, update

from app import audit
from app.extensions import db
from app.models import Participant, Submission, SystemState, Visit
from app.models.redcap_sync import PUSHED_VISIT_STATUSES, RedcapStatusPush
from app.redcap_client import (
    ForbiddenFieldError,
    RedcapAuthError,
    RedcapClient,
    RedcapRejected,
    RedcapUnavailable,
    get_client,
)

log = logging.getLogger(__name__)

ACTOR = "system:push"
ERROR_STATE_KEY = "redcap.last_error_at"
CONTACT_STATE_KEY = "redcap.contact_fields"
PROJECT_STATE_KEY = "redcap.project"
BACKOFF_BASE_S = 30.0
BACKOFF_CAP_S = 3600.0
DATETIME_FORMATS = {
    "datetime_seconds_ymd": "%Y-%m-%d %H:%M:%S",
    "datetime_ymd": "%Y-%m-%d %H:%M",
    "date_ymd": "%Y-%m-%d",
}


# ---------------------------------------------------------------- queueing, used by other areas


def queue_status_push(visit: Visit, status: str, now: datetime) -> RedcapStatusPush:
    """Queue the visit's status (completed, missed, opted_out, withdrawn) for REDCap's contact instrument.

    Adds to the caller's transaction, so the status is queued exactly when the visit change commits.
    """
    if status not in PUSHED_VISIT_STATUSES:
        raise ValueError(
            f"unknown visit status for REDCap: {status!r} (one of {', '.join(PUSHED_VISIT_STATUSES)})"
        )
    if visit.id is None:
        db.session.flush()
    row = db.session.scalar(select(RedcapStatusPush).where(RedcapStatusPush.visit_id == visit.id))
    if row is None:
        row = RedcapStatusPush(visit_id=visit.id, status=status, queued_at=now, next_attempt_at=now)
        db.session.add(row)
        return row
    if row.status == status and row.sync_status in ("pending", "pushed"):
        return row
    row.status = status
    row.sync_status = "pending"
    row.sync_attempts = 0
    row.next_attempt_at = now
    row.last_error = None
    row.queued_at = now
    row.pushed_at = None
    return row


def retry_submission(
    submission: Submission, now: datetime, *, actor: str = "system", reason: str | None = None
) -> None:
    """Put a failed (or waiting) push back in the queue, due now; audited. The caller commits."""
    previous = submission.sync_status
    submission.sync_status = "pending"
    submission.sync_attempts = 0
    submission.next_attempt_at = now
    audit.record(
        actor,
        "redcap.push_retried",
        visit=submission.visit,
        reason=reason,
        submission_id=submission.id,
        previous_status=previous,
        previous_error=(submission.last_error or "")[:300],
    )
    submission.last_error = None


def note_redcap_error(now: datetime) -> None:
    """Remember when REDCap last failed us, for /healthz (key redcap.last_error_at)."""
    _set_state(ERROR_STATE_KEY, now.isoformat())


def backoff_delay(attempts: int, rng: random.Random | None = None) -> timedelta:
    """Exponential backoff with jitter: 30 s, 60 s, 120 s … capped at an hour, each between half and full."""
    ceiling = min(BACKOFF_CAP_S, BACKOFF_BASE_S * 2 ** max(0, attempts - 1))
    return timedelta(seconds=ceiling / 2 + (rng or random).uniform(0, ceiling / 2))


# ---------------------------------------------------------------- a pass


@dataclass
class PushItem:
    """One row to import and the queue row it came from."""

    id: int
    row: dict[str, str]


@dataclass
class PushReport:
    """What a pass did: counts only (no answers, no REDCap texts)."""

    pushed: int = 0
    statuses_pushed: int = 0
    rejected: int = 0
    invalid: int = 0
    deferred: int = 0
    missed_queued: int = 0
    batches: int = 0
    calls: int = 0
    unavailable: str | None = None
    problem: str | None = None

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "pushed": self.pushed,
            "statuses": self.statuses_pushed,
            "rejected": self.rejected,
            "invalid": self.invalid,
            "deferred": self.deferred,
            "calls": self.calls,
        }
        if self.unavailable:
            out["unavailable"] = 1
        return out

    def summary(self) -> str:
        line = (
            f"redcap push: {self.pushed} submissions and {self.statuses_pushed} visit statuses pushed "
            f"in {self.calls} calls; {self.rejected} rejected by REDCap, {self.invalid} invalid (not sent), "
            f"{self.deferred} kept queued for retry"
        )
        if self.unavailable:
            line += f"; stopped: {self.unavailable}"
        if self.problem:
            line += f"; {self.problem}"
        return line


@dataclass
class _Pass:
    """Settings and helpers shared by one pass."""

    client: RedcapClient
    now: datetime
    config: Mapping[str, Any]
    attempts_per_pass: int
    sleep: Callable[[float], None]
    report: PushReport
    longitudinal: bool = True
    contact_fields: dict[str, str] | None = None  # REDCap field name -> validation, from the last refresh

    @property
    def record_field(self) -> str:
        return self.config["REDCAP_ROSTER_FIELDS"].get("record_id", "record_id")

    def base_row(self, record_id: str, event: str) -> dict[str, str]:
        row = {self.record_field: record_id}
        if self.longitudinal:
            row["redcap_event_name"] = event
        return row

    def contact_values(
        self, status: str, invited_at: datetime | None, reminders: int | None, red_flag: bool | None
    ) -> dict[str, str]:
        """The contact instrument's columns for a visit, limited to fields REDCap has."""
        names = self.config.get("REDCAP_CONTACT_FIELDS") or {}
        known = self.contact_fields
        out: dict[str, str] = {}

        def put(role: str, value: str | None) -> None:
            name = names.get(role)
            if name and value is not None and (known is None or name in known):
                out[name] = value

        put("visit_status", (self.config.get("REDCAP_VISIT_STATUS_CODES") or {}).get(status))
        if invited_at is not None:
            validation = (known or {}).get(names.get("invited_at", ""), "") or "datetime_seconds_ymd"
            fmt = DATETIME_FORMATS.get(validation, DATETIME_FORMATS["datetime_seconds_ymd"])
            put("invited_at", invited_at.astimezone(UTC).strftime(fmt))
        put("reminders_sent", str(reminders or 0))
        if red_flag is not None:
            put("red_flag", "1" if red_flag else "0")
        contact = self.config.get("REDCAP_CONTACT_INSTRUMENT")
        if out and contact:
            out[f"{contact}_complete"] = "2"
        return out


PrePushCheck = Callable[[list[PushItem], RedcapClient, datetime], set[int]]
_PRE_PUSH_CHECKS: list[PrePushCheck] = []


def register_pre_push_check(check: PrePushCheck) -> None:
    """Let another area hold back submissions before import (e.g. staff data already in REDCap).

    `check(items, client, now)` returns the submission ids it has dealt with (it sets their status itself).
    """
    if check not in _PRE_PUSH_CHECKS:
        _PRE_PUSH_CHECKS.append(check)


def push_pending(
    now: datetime,
    *,
    client: RedcapClient | None = None,
    batch_size: int | None = None,
    retry_now: bool = False,
    attempts_per_pass: int = 3,
    max_batches: int | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> PushReport:
    """One push pass over both queues; stops at the first outage. Commits per batch."""
    config = current_app.config
    report = PushReport()
    report.missed_queued = enqueue_missed_visits(now)
    db.session.commit()
    client = client or get_client()
    ctx = _Pass(client, now, config, max(1, attempts_per_pass), sleep, report)
    project = _get_state(PROJECT_STATE_KEY) or {}
    ctx.longitudinal = bool(project.get("longitudinal", True))
    contact = _get_state(CONTACT_STATE_KEY)
    ctx.contact_fields = contact if isinstance(contact, dict) else None
    size = batch_size or int(config["REDCAP_BATCH_SIZE"])
    calls_before = client.calls
    try:
        _run_queue(ctx, _SubmissionQueue(ctx, retry_now), size, max_batches)
        _run_queue(ctx, _StatusQueue(ctx, retry_now), size, max_batches)
    except (RedcapUnavailable, RedcapAuthError) as exc:
        report.unavailable = str(exc)
        note_redcap_error(now)
        db.session.commit()
    report.calls = client.calls - calls_before
    return report


def _run_queue(ctx: _Pass, queue: _Queue, size: int, max_batches: int | None) -> None:
    last_id = 0
    while max_batches is None or ctx.report.batches < max_batches:
        items, last_id = queue.next_batch(last_id, size)
        if last_id == 0:
            return
        if items:
            ctx.report.batches += 1
            _push_batch(ctx, queue, items)
        db.session.commit()


def _push_batch(ctx: _Pass, queue: _Queue, items: list[PushItem]) -> None:
    """Import a batch, splitting on rejection; on an outage, defer what was not confirmed and re-raise."""
    confirmed: list[int] = []
    rejected: list[tuple[int, str]] = []
    pending = list(items)
    try:
        _import_split(ctx, pending, confirmed, rejected)
    except (RedcapUnavailable, RedcapAuthError) as exc:
        done = set(confirmed) | {i for i, _ in rejected}
        queue.mark_pushed(confirmed)
        queue.mark_rejected(rejected)
        queue.defer([item.id for item in items if item.id not in done], f"REDCap unavailable: {exc}")
        raise
    queue.mark_pushed(confirmed)
    queue.mark_rejected(rejected)
    unconfirmed = [item.id for item in items if item.id not in set(confirmed) | {i for i, _ in rejected}]
    if unconfirmed:
        queue.defer(unconfirmed, "REDCap did not confirm these records in its answer; will retry")
    if rejected:
        note_redcap_error(ctx.now)


def _import_split(
    ctx: _Pass, items: list[PushItem], confirmed: list[int], rejected: list[tuple[int, str]]
) -> None:
    """Binary split: a rejected batch is halved until each bad record stands alone."""
    try:
        ids = set(_import_with_retries(ctx, [item.row for item in items]))
    except (RedcapRejected, ForbiddenFieldError) as exc:
        if len(items) == 1:
            message = exc.message if isinstance(exc, RedcapRejected) else str(exc)
            rejected.append((items[0].id, message))
            return
        middle = len(items) // 2
        _import_split(ctx, items[:middle], confirmed, rejected)
        _import_split(ctx, items[middle:], confirmed, rejected)
        return
    field_name = ctx.record_field
    confirmed.extend(item.id for item in items if item.row[field_name] in ids)


def _import_with_retries(ctx: _Pass, rows: list[dict[str, str]]) -> list[str]:
    for attempt in range(1, ctx.attempts_per_pass + 1):
        try:
            return ctx.client.import_records(rows)
        except RedcapUnavailable:
            if attempt == ctx.attempts_per_pass:
                raise
            ctx.sleep(min(4.0, 0.25 * 2**attempt) * random.uniform(0.5, 1.0))
    raise AssertionError("unreachable")


# ---------------------------------------------------------------- the two queues


class _Queue:
    """A queue table with sync_status / sync_attempts / next_attempt_at / last_error / pushed_at."""

    model: Any

    def __init__(self, ctx: _Pass, retry_now: bool) -> None:
        self.ctx = ctx
        self.retry_now = retry_now

    def due(self, stmt: Select, last_id: int, size: int) -> Select:
        model = self.model
        stmt = stmt.where(model.sync_status == "pending", model.id > last_id)
        if not self.retry_now:
            stmt = stmt.where(or_(model.next_attempt_at.is_(None), model.next_attempt_at <= self.ctx.now))
        return stmt.order_by(model.id).limit(size)

    def next_batch(self, last_id: int, size: int) -> tuple[list[PushItem], int]:
        raise NotImplementedError

    def mark_pushed(self, ids: Sequence[int]) -> None:
        if not ids:
            return
        model = self.model
        db.session.execute(
            update(model)
            .where(model.id.in_(list(ids)))
            .values(
                sync_status="pushed",
                pushed_at=self.ctx.now,
                last_error=None,
                next_attempt_at=None,
                sync_attempts=model.sync_attempts + 1,
            )
        )
        self.count_pushed(len(ids))

    def count_pushed(self, n: int) -> None:
        raise NotImplementedError

    def mark_rejected(self, rejected: Sequence[tuple[int, str]]) -> None:
        model = self.model
        for item_id, message in rejected:
            db.session.execute(
                update(model)
                .where(model.id == item_id)
                .values(
                    sync_status="failed",
                    last_error=f"REDCap rejected this record: {message}"[:2000],
                    next_attempt_at=None,
                    sync_attempts=model.sync_attempts + 1,
                )
            )
            self.audit_failure(item_id, "redcap.push_rejected")
            log.warning("REDCap rejected %s %s; marked failed for coordinators", self.model.__name__, item_id)
        self.ctx.report.rejected += len(rejected)

    def mark_invalid(self, item_id: int, problems: list[str]) -> None:
        db.session.execute(
            update(self.model)
            .where(self.model.id == item_id)
            .values(
                sync_status="failed",
                last_error=("not sent: does not fit REDCap's stored metadata: " + "; ".join(problems))[:2000],
                next_attempt_at=None,
            )
        )
        self.audit_failure(item_id, "redcap.push_invalid")
        self.ctx.report.invalid += 1

    kind = "item"

    def audit_failure(self, item_id: int, action: str) -> None:
        visit_id = db.session.scalar(select(self.model.visit_id).where(self.model.id == item_id))
        visit = db.session.get(Visit, visit_id) if visit_id else None
        audit.record(ACTOR, action, visit=visit, **{f"{self.kind}_id": item_id})

    def defer(self, ids: Sequence[int], message: str) -> None:
        if not ids:
            return
        model = self.model
        rows = db.session.execute(select(model.id, model.sync_attempts).where(model.id.in_(list(ids)))).all()
        for item_id, attempts in rows:
            db.session.execute(
                update(model)
                .where(model.id == item_id)
                .values(
                    sync_attempts=attempts + 1,
                    next_attempt_at=self.ctx.now + backoff_delay(attempts + 1),
                    last_error=message[:2000],
                )
            )
        self.ctx.report.deferred += len(rows)


class _SubmissionQueue(_Queue):
    model = Submission
    kind = "submission"

    def __init__(self, ctx: _Pass, retry_now: bool) -> None:
        super().__init__(ctx, retry_now)
        from app.questionnaire.store import current_definition

        self.instrument = ctx.config["REDCAP_QUESTIONNAIRE_INSTRUMENT"]
        self.definition = current_definition(self.instrument)

    def next_batch(self, last_id: int, size: int) -> tuple[list[PushItem], int]:
        from app.questionnaire.answers import validate_stored

        stmt = self.due(
            select(
                Submission.id,
                Submission.answers,
                Submission.red_flag,
                Visit.event_name,
                Visit.invited_at,
                Visit.reminders_sent,
                Participant.record_id,
            )
            .join(Visit, Submission.visit_id == Visit.id)
            .join(Participant, Visit.participant_id == Participant.id),
            last_id,
            size,
        )
        rows = db.session.execute(stmt).all()
        if not rows:
            return [], 0
        if self.definition is None:
            self.ctx.report.problem = (
                f"no stored metadata for {self.instrument}: run `flask --app wsgi redcap refresh-metadata`"
            )
            self.ctx.report.deferred += len(rows)
            return [], 0  # wait, unchanged, until the metadata is there
        items: list[PushItem] = []
        today = self.ctx.now.date()
        for sid, answers, red_flag, event, invited_at, reminders, record_id in rows:
            answers = dict(answers or {})
            problems = validate_stored(self.definition, answers, today=today)
            if problems:
                self.mark_invalid(sid, problems)
                continue
            row = self.ctx.base_row(record_id, event)
            row.update(answers)
            row[self.definition.complete_column] = "2"
            row.update(self.ctx.contact_values("completed", invited_at, reminders, bool(red_flag)))
            items.append(PushItem(sid, row))
        for check in _PRE_PUSH_CHECKS:
            held = check(items, self.ctx.client, self.ctx.now)
            items = [item for item in items if item.id not in held]
        return items, rows[-1][0]

    def count_pushed(self, n: int) -> None:
        self.ctx.report.pushed += n


class _StatusQueue(_Queue):
    model = RedcapStatusPush
    kind = "status_push"

    def next_batch(self, last_id: int, size: int) -> tuple[list[PushItem], int]:
        stmt = self.due(
            select(
                RedcapStatusPush.id,
                RedcapStatusPush.status,
                Visit.event_name,
                Visit.invited_at,
                Visit.reminders_sent,
                Participant.record_id,
            )
            .join(Visit, RedcapStatusPush.visit_id == Visit.id)
            .join(Participant, Visit.participant_id == Participant.id),
            last_id,
            size,
        )
        rows = db.session.execute(stmt).all()
        if not rows:
            return [], 0
        items: list[PushItem] = []
        for push_id, status, event, invited_at, reminders, record_id in rows:
            values = self.ctx.contact_values(status, invited_at, reminders, None)
            status_field = (self.ctx.config.get("REDCAP_CONTACT_FIELDS") or {}).get("visit_status")
            if not status_field or status_field not in values:
                self.mark_invalid(
                    push_id, [f"no REDCap contact field or code configured for status {status!r}"]
                )
                continue
            row = self.ctx.base_row(record_id, event)
            row.update(values)
            items.append(PushItem(push_id, row))
        return items, rows[-1][0]

    def count_pushed(self, n: int) -> None:
        self.ctx.report.statuses_pushed += n


# ---------------------------------------------------------------- missed visits, state


def enqueue_missed_visits(now: datetime, limit: int = 1000) -> int:
    """Queue a status push for every missed visit that has none yet (opted-out participants as opted_out).

    Derived from the visits themselves, so a sweep that crashed before queueing loses nothing.
    """
    queued = 0
    while True:
        rows = db.session.execute(
            select(Visit.id, Participant.opted_out)
            .join(Participant, Visit.participant_id == Participant.id)
            .outerjoin(RedcapStatusPush, RedcapStatusPush.visit_id == Visit.id)
            .where(Visit.status == "missed", RedcapStatusPush.id.is_(None))
            .order_by(Visit.id)
            .limit(limit)
        ).all()
        if not rows:
            return queued
        for visit_id, opted_out in rows:
            db.session.add(
                RedcapStatusPush(
                    visit_id=visit_id,
                    status="opted_out" if opted_out else "missed",
                    queued_at=now,
                    next_attempt_at=now,
                )
            )
        db.session.flush()
        queued += len(rows)


def _get_state(key: str) -> Any:
    row = db.session.get(SystemState, key)
    return None if row is None else row.value


def _set_state(key: str, value: Any) -> None:
    row = db.session.get(SystemState, key)
    if row is None:
        db.session.add(SystemState(key=key, value=value))
    elif row.value != value:
        row.value = value


def push_step(now: datetime) -> dict[str, Any]:
    """Tick step "push": one push pass; skipped when no REDCap token is configured."""
    if not current_app.config.get("REDCAP_API_TOKEN"):
        return {"skipped": 1}
    return push_pending(now).as_dict()
