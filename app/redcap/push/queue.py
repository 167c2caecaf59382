"""The push queues' shared base: one row to push, a pass's report and context, and the queue class.

Each queue reads due rows by id (keyset pagination over column tuples, so memory stays flat however long
the backlog) and writes outcomes with bulk UPDATEs: pushed, rejected by REDCap (failed, with REDCap's text
for coordinators), invalid (failed, never sent), or deferred with exponential backoff and jitter.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from sqlalchemy import Select, or_, select, update

from app import audit
from app.backoff import backoff_ceiling
from app.extensions import db
from app.models import PushedVisitStatus, SyncStatus, Visit
from app.redcap.client import RedcapClient

log = logging.getLogger(__name__)

ACTOR = "system:push"
BACKOFF_BASE_S = 30.0
# Submission.source -> REDCAP_MODE_CODES key: the participant online, or a coordinator on the phone.
SUBMISSION_MODES = {"participant": "web", "interviewer": "phone"}
# Visit statuses the service writes for a while only ("call back arranged"): a later status replaces them.
INTERIM_VISIT_STATUSES = (PushedVisitStatus.CALLBACK.value,)
BACKOFF_CAP_S = 3600.0
DATETIME_FORMATS = {
    "datetime_seconds_ymd": "%Y-%m-%d %H:%M:%S",
    "datetime_ymd": "%Y-%m-%d %H:%M",
    "date_ymd": "%Y-%m-%d",
}


def backoff_delay(attempts: int, rng: random.Random | None = None) -> timedelta:
    """Exponential backoff with jitter: 30 s, 60 s, 120 s … capped at an hour, each between half and full."""
    ceiling = backoff_ceiling(attempts, BACKOFF_BASE_S, BACKOFF_CAP_S)
    return timedelta(seconds=ceiling / 2 + (rng or random).uniform(0, ceiling / 2))


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
    enrollment_pushed: int = 0
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
        if self.enrollment_pushed:
            out["enrollment_statuses"] = self.enrollment_pushed
        if self.unavailable:
            out["unavailable"] = 1
        return out

    def summary(self) -> str:
        line = (
            f"redcap push: {self.pushed} submissions and {self.statuses_pushed} visit statuses pushed "
            f"in {self.calls} calls; {self.rejected} rejected by REDCap, {self.invalid} invalid (not sent), "
            f"{self.deferred} kept queued for retry"
        )
        if self.enrollment_pushed:
            line += f"; {self.enrollment_pushed} study statuses pushed to the enrollment form"
        if self.unavailable:
            line += f"; stopped: {self.unavailable}"
        if self.problem:
            line += f"; {self.problem}"
        return line


@dataclass
class PassContext:
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
        field: str = self.config["REDCAP_ROSTER_FIELDS"].get("record_id", "record_id")
        return field

    def base_row(self, record_id: str, event: str) -> dict[str, str]:
        row = {self.record_field: record_id}
        if self.longitudinal:
            row["redcap_event_name"] = event
        return row

    def contact_values(
        self,
        status: str,
        invited_at: datetime | None,
        reminders: int | None,
        red_flag: bool | None,
        mode: str | None = None,
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
        if mode is not None:  # how the questionnaire was taken: REDCAP_MODE_CODES (web, phone, clinic)
            put("mode", (self.config.get("REDCAP_MODE_CODES") or {}).get(mode))
        contact = self.config.get("REDCAP_CONTACT_INSTRUMENT")
        if out and contact:
            out[f"{contact}_complete"] = "2"
        return out


class PushQueue:
    """A queue table with sync_status / sync_attempts / next_attempt_at / last_error / pushed_at."""

    def keep_redcaps(self, items: list[PushItem]) -> list[PushItem]:
        """The rows that may be written without overwriting REDCap's own data (all, by default)."""
        return items

    model: Any
    screened = False  # whether other areas' pre-push checks apply (submissions only)

    def __init__(self, ctx: PassContext, retry_now: bool) -> None:
        self.ctx = ctx
        self.retry_now = retry_now

    def due(self, stmt: Select[Any], last_id: int, size: int) -> Select[Any]:
        model = self.model
        stmt = stmt.where(model.sync_status == SyncStatus.PENDING, model.id > last_id)
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
                sync_status=SyncStatus.PUSHED,
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
                    sync_status=SyncStatus.FAILED,
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
                sync_status=SyncStatus.FAILED,
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
        audit.record(ACTOR, action, visit=visit, **cast(dict[str, Any], {f"{self.kind}_id": item_id}))

    def defer(self, ids: Sequence[int], message: str) -> None:
        if not ids:
            return
        model = self.model
        rows = db.session.execute(
            select(model.id, model.sync_attempts).where(
                model.id.in_(list(ids)), model.sync_status == SyncStatus.PENDING
            )
        ).all()
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
