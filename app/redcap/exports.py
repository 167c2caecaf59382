"""The record exports that keep REDCap the source of truth, all through the bridge's one REDCap client.

`app.redcap.client.get_client()` owns timeouts, the calls-per-second ceiling, the forbidden-field
guard and the project exceptions; this module only adds what issue 8's readers share: record
chunks, the follow-up events, and the questionnaire's field names.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from flask import current_app
from sqlalchemy import select

from app.extensions import db
from app.redcap.client import (
    RedcapAuthError,
    RedcapClientError,
    RedcapRejected,
    RedcapUnavailable,
    get_client,
)

__all__ = [
    "RedcapAuthError",
    "RedcapClientError",
    "RedcapRejected",
    "RedcapUnavailable",
    "chunks",
    "export_records",
    "followup_events",
    "questionnaire_fields",
]

_FIELDS_CACHE_KEY = "redcap_truth.questionnaire_fields"


def chunks(items: Sequence[str], size: int) -> Iterator[list[str]]:
    """Consecutive slices of `items` of at most `size` (record chunks for batched exports)."""
    for start in range(0, len(items), max(1, size)):
        yield list(items[start : start + size])


def followup_events() -> list[str]:
    """The REDCap events of the follow-up visits, from the configured visit plan."""
    from app.schedule.study_plan import visit_plan

    return list(dict.fromkeys(spec.event_name for spec in visit_plan().visits))


def export_records(
    records: Sequence[str], *, fields: Sequence[str], events: Sequence[str] = (), client: Any = None
) -> list[dict[str, Any]]:
    """One flat, raw export of the named `fields` of `records` in `events`: exactly one API call."""
    client = client or get_client()
    rows: list[dict[str, Any]] = client.export_records(
        list(fields), records=list(records) or None, events=list(events) or None
    )
    return rows


def questionnaire_fields() -> list[str]:
    """The questionnaire instrument's data fields (no descriptive fields), from the stored metadata.

    Falls back to one metadata export (cached on the app) when no version is stored yet.
    """
    from app.models import InstrumentVersion

    instrument = current_app.config["REDCAP_QUESTIONNAIRE_INSTRUMENT"]
    current = db.session.scalar(
        select(InstrumentVersion).where(
            InstrumentVersion.instrument == instrument, InstrumentVersion.is_current.is_(True)
        )
    )
    rows: list[dict[str, Any]] | None = list(current.fields) if current is not None else None
    if not rows:
        rows = current_app.extensions.get(_FIELDS_CACHE_KEY)
    if not rows:
        rows = get_client().export_metadata(forms=[instrument])
        current_app.extensions[_FIELDS_CACHE_KEY] = rows
    names = []
    for row in rows:
        name = row.get("field_name") or row.get("name")
        kind = row.get("field_type") or row.get("type")
        form = row.get("form_name") or instrument
        if name and kind != "descriptive" and form == instrument:
            names.append(str(name))
    record_id = current_app.config["REDCAP_ROSTER_FIELDS"]["record_id"]
    return [n for n in dict.fromkeys(names) if n != record_id]
