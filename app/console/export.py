"""The visit status table: one filtered query for the console's table and its CSV export.

The export holds no answers; phone numbers only when an admin asks. Cells that a spreadsheet
would run as a formula are prefixed with a quote (record ids come from REDCap, not from us).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy import Select, func, select
from sqlalchemy.sql.elements import Label

from app.extensions import db
from app.models import CallAttempt, OutboundMessage, Participant, Visit
from app.models.messaging import SENT_STATUSES

COLUMNS = [
    "record_id",
    "visit",
    "event",
    "window_start",
    "window_end",
    "status",
    "completed_via",
    "completed_at",
    "reminders_sent",
    "call_attempts",
    "last_call_outcome",
]
ADMIN_COLUMNS = ["phone"]


@dataclass
class VisitFilters:
    """Search by record id, and filters by visit, status and window dates (all optional)."""

    record_id: str | None = None
    visit_key: str | None = None
    status: str | None = None
    date_from: date | None = None
    date_to: date | None = None


def _texts_sent() -> Label[int]:
    return (
        select(func.count(OutboundMessage.id))
        .where(OutboundMessage.visit_id == Visit.id, OutboundMessage.status.in_(SENT_STATUSES))
        .scalar_subquery()
        .label("texts_sent")
    )


def _calls() -> tuple[Label[int], Label[str | None]]:
    attempts = select(func.count(CallAttempt.id)).where(CallAttempt.visit_id == Visit.id).scalar_subquery()
    last = (
        select(CallAttempt.outcome)
        .where(CallAttempt.visit_id == Visit.id)
        .order_by(CallAttempt.id.desc())
        .limit(1)
        .scalar_subquery()
    )
    return attempts.label("call_attempts"), last.label("last_call_outcome")


def visit_query(filters: VisitFilters) -> Select[Any]:
    """Visits with their participant, texts sent and calls, filtered, ordered by record id then window."""
    query = select(Visit, Participant, _texts_sent(), *_calls()).join(
        Participant, Visit.participant_id == Participant.id
    )
    if filters.record_id:
        query = query.where(Participant.record_id == filters.record_id.strip())
    if filters.visit_key:
        query = query.where(Visit.visit_key == filters.visit_key)
    if filters.status:
        query = query.where(Visit.status == filters.status)
    if filters.date_from:
        query = query.where(Visit.window_end >= filters.date_from)
    if filters.date_to:
        query = query.where(Visit.window_start <= filters.date_to)
    return query.order_by(Participant.record_id, Visit.opens_at, Visit.id)


def _cell(value: object) -> str:
    text = "" if value is None else str(value)
    if text[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + text
    return text


def csv_rows(filters: VisitFilters, include_phone: bool, batch: int = 1000) -> Iterator[str]:
    """The CSV text, a chunk of lines at a time (streamed, so a large study does not fill memory)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(COLUMNS + (ADMIN_COLUMNS if include_phone else []))
    result = db.session.execute(visit_query(filters).execution_options(yield_per=batch))
    for n, (visit, participant, texts_sent, attempts, last_outcome) in enumerate(result, start=1):
        row = [
            participant.record_id,
            visit.visit_key,
            visit.event_name,
            visit.window_start.isoformat(),
            visit.window_end.isoformat(),
            visit.status,
            visit.completed_via or "",
            visit.completed_at.isoformat() if visit.completed_at else "",
            max(texts_sent or 0, visit.reminders_sent or 0),
            attempts or 0,
            last_outcome or "",
        ]
        cells = [_cell(v) for v in row]
        if include_phone:
            cells.append(participant.phone_e164 or "")  # E.164 checked on the way in; keep the "+"
        writer.writerow(cells)
        if n % batch == 0:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue()
