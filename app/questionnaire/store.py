"""Stored questionnaire versions: a metadata refresh stores a new version only when REDCap's changed, and
only when it parses, so the patient page always builds from the last good definition."""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from app.extensions import db
from app.models import InstrumentVersion
from app.questionnaire.definition import InstrumentDef, MetadataError
from app.questionnaire.metadata import canonical_rows, parse_metadata

log = logging.getLogger(__name__)

_CACHE_SIZE = 32
_cache: OrderedDict[str, InstrumentDef | None] = OrderedDict()
_lock = threading.Lock()


def _cached(version_hash: str, instrument: str, rows: list[dict[str, Any]]) -> InstrumentDef | None:
    """Parsed definitions keyed by content hash: equal rows always give an equal definition. A stored
    version this code can no longer parse gives None (logged once), never an error on every request."""
    key = f"{instrument}:{version_hash}"
    with _lock:
        if key in _cache:
            _cache.move_to_end(key)
            return _cache[key]
    definition: InstrumentDef | None
    try:
        definition = parse_metadata(rows, instrument)
    except MetadataError as exc:
        log.error("stored metadata %s of %s no longer parses: %s", version_hash[:12], instrument, exc)
        definition = None
    _remember(key, definition)
    return definition


def _remember(key: str, definition: InstrumentDef | None) -> None:
    with _lock:
        _cache[key] = definition
        _cache.move_to_end(key)
        while len(_cache) > _CACHE_SIZE:
            _cache.popitem(last=False)


def save_metadata(
    rows: Iterable[Mapping[str, Any]], instrument: str, now: datetime, *, _attempt: int = 0
) -> InstrumentVersion:
    """Parse, then store the instrument's metadata as its current version and commit.

    Unchanged metadata stores nothing (the current version is returned); metadata seen before becomes
    current again; a MetadataError is raised before anything is written, so the last good version stays
    current. The returned version has `is_new` set: True when this call changed which version is current.
    """
    rows = list(rows) if not isinstance(rows, Mapping | str | bytes) else rows
    definition = parse_metadata(rows, instrument)  # raises MetadataError: nothing written
    picked = canonical_rows(rows, instrument)
    existing = db.session.scalar(
        select(InstrumentVersion).where(
            InstrumentVersion.instrument == instrument,
            InstrumentVersion.version_hash == definition.version_hash,
        )
    )
    if existing is not None and existing.is_current:
        existing.is_new = False  # type: ignore[attr-defined]
        return existing
    try:
        db.session.execute(
            update(InstrumentVersion)
            .where(InstrumentVersion.instrument == instrument, InstrumentVersion.is_current.is_(True))
            .values(is_current=False)
        )
        if existing is None:
            existing = InstrumentVersion(
                instrument=instrument,
                version_hash=definition.version_hash,
                fields=picked,
                is_current=True,
                fetched_at=now,
            )
            db.session.add(existing)
        else:
            existing.is_current = True
        db.session.commit()
    except IntegrityError:
        # Another process stored the same version at the same moment: use theirs.
        db.session.rollback()
        if _attempt >= 2:
            raise
        return save_metadata(rows, instrument, now, _attempt=_attempt + 1)
    _remember(f"{instrument}:{definition.version_hash}", definition)
    existing.is_new = True  # type: ignore[attr-defined]
    return existing


def current_version(instrument: str) -> InstrumentVersion | None:
    """The current stored version row of the instrument, or None before the first refresh."""
    return db.session.scalar(
        select(InstrumentVersion)
        .where(InstrumentVersion.instrument == instrument, InstrumentVersion.is_current.is_(True))
        .order_by(InstrumentVersion.id.desc())
        .limit(1)
    )


def current_definition(instrument: str) -> InstrumentDef | None:
    """The definition the patient page builds from: one small indexed query, parsing cached by version;
    None before the first refresh (or if the stored version no longer parses, which is logged)."""
    row = db.session.execute(
        select(InstrumentVersion.id, InstrumentVersion.version_hash)
        .where(InstrumentVersion.instrument == instrument, InstrumentVersion.is_current.is_(True))
        .order_by(InstrumentVersion.id.desc())
        .limit(1)
    ).first()
    if row is None:
        return None
    return _definition(row.id, row.version_hash, instrument)


def current_version_id(instrument: str) -> int | None:
    """The id of the current version, to record on a submission."""
    return db.session.scalar(
        select(InstrumentVersion.id)
        .where(InstrumentVersion.instrument == instrument, InstrumentVersion.is_current.is_(True))
        .order_by(InstrumentVersion.id.desc())
        .limit(1)
    )


def _definition(version_id: int, version_hash: str, instrument: str) -> InstrumentDef | None:
    key = f"{instrument}:{version_hash}"
    with _lock:
        if key in _cache:
            _cache.move_to_end(key)
            return _cache[key]
    fields = db.session.scalar(select(InstrumentVersion.fields).where(InstrumentVersion.id == version_id))
    return _cached(version_hash, instrument, fields or [])


def definition_for_version(version_id: int) -> InstrumentDef | None:
    """The definition of one stored version (a submission is validated against the version it answered)."""
    row = db.session.execute(
        select(InstrumentVersion.instrument, InstrumentVersion.version_hash).where(
            InstrumentVersion.id == version_id
        )
    ).first()
    if row is None:
        return None
    return _definition(version_id, row.version_hash, row.instrument)
