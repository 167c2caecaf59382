"""Participant-language labels: Chinese texts from the study's translation file, REDCap's English otherwise.

The file (setting STUDY_TRANSLATIONS_FILE) is keyed by field name:
    {"_instrument": {"name": ..., "label": ...},
     "<field>": {"label": ..., "note": ..., "section_header": ..., "choices": {"<code>": ...},
                 "slider_labels": [left, middle, right]}}
Anything missing, empty or unreadable falls back to REDCap's text, so a new field added in REDCap shows in
English until someone translates it; a broken file logs one warning and never breaks the page.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from flask import current_app, has_app_context

from app.questionnaire.definition import FieldDef
from app.questionnaire.metadata import field_from_row

log = logging.getLogger(__name__)
DEFAULT_FILE = Path(__file__).resolve().parents[2] / "study" / "translations_zh.json"
_RECHECK_SECONDS = 2.0
FieldLike = FieldDef | Mapping[str, Any]  # a parsed field, or a stored metadata row
_lock = threading.Lock()
# path -> (checked_at_monotonic, mtime_ns, data)
_loaded: dict[str, tuple[float, int | None, dict[str, Any]]] = {}


def is_translated(lang: str | None) -> bool:
    """Whether `lang` asks for the translated (Chinese) texts."""
    return bool(lang) and str(lang).lower().replace("_", "-").split("-")[0] == "zh"


def translations_path() -> str:
    """The configured translation file (the shipped study file outside an app context)."""
    if has_app_context():
        configured = current_app.config.get("STUDY_TRANSLATIONS_FILE")
        if configured:
            return str(configured)
    return str(DEFAULT_FILE)


def _read(path: str) -> dict[str, Any]:
    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
    except FileNotFoundError:
        log.warning("translation file %s not found; showing REDCap's English texts", path)
        return {}
    except (OSError, ValueError) as exc:
        log.warning("translation file %s unreadable (%s); showing REDCap's English texts", path, exc)
        return {}
    if not isinstance(data, dict):
        log.warning("translation file %s is not a JSON object; showing REDCap's English texts", path)
        return {}
    return data


def load_translations(path: str | None = None) -> dict[str, Any]:
    """The translation file's content, re-read when it changes (checked at most every 2 s)."""
    path = path or translations_path()
    now = time.monotonic()
    with _lock:
        cached = _loaded.get(path)
    if cached and now - cached[0] < _RECHECK_SECONDS:
        return cached[2]
    try:
        mtime: int | None = os.stat(path).st_mtime_ns
    except OSError:
        mtime = None
    data = cached[2] if cached and cached[1] == mtime else _read(path)
    with _lock:
        _loaded[path] = (now, mtime, data)
    return data


def _entry(name: str, path: str | None) -> dict[str, Any]:
    entry = load_translations(path).get(name)
    return entry if isinstance(entry, dict) else {}


def _as_field(field: FieldLike) -> FieldDef:
    """Accept a stored metadata row too (the console labels stored versions' rows)."""
    if isinstance(field, FieldDef):
        return field
    return field_from_row(field)


def _pick(translated: Any, fallback: str) -> str:
    return translated.strip() if isinstance(translated, str) and translated.strip() else fallback


def field_label(field: FieldLike, lang: str | None, path: str | None = None) -> str:
    """The field's label in `lang`, falling back to REDCap's."""
    field = _as_field(field)
    if not is_translated(lang):
        return field.label
    return _pick(_entry(field.name, path).get("label"), field.label)


def field_note(field: FieldLike, lang: str | None, path: str | None = None) -> str:
    """The field note in `lang`, falling back to REDCap's."""
    field = _as_field(field)
    if not is_translated(lang):
        return field.note
    return _pick(_entry(field.name, path).get("note"), field.note) if field.note else ""


def section_header(field: FieldLike, lang: str | None, path: str | None = None) -> str:
    """The section header shown before the field in `lang` ('' when REDCap has none)."""
    field = _as_field(field)
    if not is_translated(lang) or not field.section_header:
        return field.section_header
    return _pick(_entry(field.name, path).get("section_header"), field.section_header)


def choice_label(field: FieldLike, code: str, lang: str | None, path: str | None = None) -> str:
    """A choice's label in `lang`, falling back to REDCap's (the code itself for an unknown code)."""
    field = _as_field(field)
    english = field.choice_label(code)
    fallback = english if english is not None else code
    if not is_translated(lang):
        return fallback
    choices = _entry(field.name, path).get("choices")
    return _pick(choices.get(code) if isinstance(choices, dict) else None, fallback)


def slider_labels(field: FieldLike, lang: str | None, path: str | None = None) -> tuple[str, str, str] | None:
    """The slider's (left, middle, right) labels in `lang`, each falling back to REDCap's."""
    field = _as_field(field)
    if field.slider_labels is None:
        return None
    if not is_translated(lang):
        return field.slider_labels
    given = _entry(field.name, path).get("slider_labels")
    given = given if isinstance(given, list) else []
    picked = [_pick(given[i] if i < len(given) else None, field.slider_labels[i]) for i in range(3)]
    return (picked[0], picked[1], picked[2])


def instrument_label(instrument: str, lang: str | None, default: str = "", path: str | None = None) -> str:
    """The instrument's title in `lang` from the file's `_instrument` entry, or `default`."""
    if not is_translated(lang):
        return default
    entry = load_translations(path).get("_instrument")
    if isinstance(entry, dict) and entry.get("name") in (None, instrument):
        return _pick(entry.get("label"), default)
    return default
