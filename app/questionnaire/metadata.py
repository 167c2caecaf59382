"""Parsing REDCap's export-metadata JSON into an InstrumentDef, refusing what the service cannot honour.

Every refusal is a MetadataError naming the field, raised before anything is stored.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from datetime import date
from typing import Any

from app.questionnaire.branching import LogicError, checkbox_column, parse_logic, refs
from app.questionnaire.definition import (
    _CODE,
    _NAME,
    _REFUSED_TYPES,
    CHOICE_TYPES,
    METADATA_KEYS,
    REQUIRED_KEYS,
    SLIDER_DEFAULT,
    SUPPORTED_TYPES,
    TRUEFALSE,
    YESNO,
    Choice,
    FieldDef,
    InstrumentDef,
    MetadataError,
)
from app.questionnaire.validation import SUPPORTED_VALIDATIONS, bound_ok, canonical_validation, in_range


def _text(row: Mapping[str, Any], key: str, name: str | None) -> str:
    value = row.get(key, "")
    if value is None:
        return ""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise MetadataError(f"'{key}' must be text, got {type(value).__name__}", name)
    return str(value).strip()


def canonical_rows(rows: Iterable[Mapping[str, Any]], instrument: str) -> list[dict[str, str]]:
    """The instrument's rows, in order, each with exactly REDCap's 18 keys as trimmed text."""
    if isinstance(rows, Mapping | str | bytes) or not isinstance(rows, Iterable):
        raise MetadataError("metadata must be a list of field rows (REDCap's export-metadata JSON)")
    out = []
    for index, row in enumerate(rows, start=1):
        if not isinstance(row, Mapping):
            raise MetadataError(f"metadata row {index} is not an object")
        name = row.get("field_name") if isinstance(row.get("field_name"), str) else None
        missing = [k for k in REQUIRED_KEYS if k not in row]
        if missing:
            where = f"field {name}" if name else f"metadata row {index}"
            raise MetadataError(f"{where} has no {', '.join(repr(k) for k in missing)}")
        if _text(row, "form_name", name) != instrument:
            continue
        out.append({key: _text(row, key, name) for key in METADATA_KEYS})
    return out


def metadata_hash(rows: list[dict[str, str]]) -> str:
    """SHA-256 of the canonical JSON of an instrument's canonical rows: equal metadata, equal hash."""
    blob = json.dumps(rows, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


def parse_choices(raw: str, name: str) -> tuple[Choice, ...]:
    """REDCap's `code, label | code, label` (labels may contain commas; codes are alphanumeric)."""
    choices: list[Choice] = []
    seen: dict[str, str] = {}
    for part in raw.split("|"):
        part = part.strip()
        if not part:
            continue
        code, comma, label = part.partition(",")
        code, label = code.strip(), label.strip()
        if not comma or not code:
            raise MetadataError(f"choice {part[:60]!r} has no code (expected 'code, label')", name)
        if not _CODE.fullmatch(code):
            raise MetadataError(
                f"choice code {code[:60]!r} is not a REDCap code (letters, digits, _ . -)", name
            )
        column = checkbox_column(name, code)
        if code in seen or column in seen.values():
            raise MetadataError(f"choice code {code!r} appears twice", name)
        seen[code] = column
        choices.append(Choice(code, label))
    if not choices:
        raise MetadataError("has no choices", name)
    return tuple(choices)


def _slider(row: dict[str, str], name: str) -> tuple[tuple[str, str, str] | None, str | None, str | None]:
    raw = row["select_choices_or_calculations"]
    labels = None
    if raw:
        parts = [p.strip() for p in raw.split("|")]
        if len(parts) > 3:
            raise MetadataError("slider labels must be 'left | middle | right'", name)
        parts += [""] * (3 - len(parts))
        labels = (parts[0], parts[1], parts[2])
    low, high = row["text_validation_min"] or None, row["text_validation_max"] or None
    for bound in (low, high):
        if bound is not None and not re.fullmatch(r"-?\d{1,9}", bound):
            raise MetadataError(f"slider min/max {bound!r} is not a whole number", name)
    if int(low or SLIDER_DEFAULT[0]) >= int(high or SLIDER_DEFAULT[1]):
        raise MetadataError("slider min must be less than its max", name)
    return labels, low, high


def _field(row: dict[str, str]) -> FieldDef:
    name, ftype = row["field_name"], row["field_type"]
    if not _NAME.fullmatch(name) or "___" in name or len(name) > 100:
        raise MetadataError(f"{name[:60]!r} is not a valid REDCap field name")
    if ftype in _REFUSED_TYPES:
        raise MetadataError(f"field type '{ftype}' is not supported: {_REFUSED_TYPES[ftype]}", name)
    if ftype not in SUPPORTED_TYPES:
        raise MetadataError(
            f"field type {ftype[:40]!r} is not supported (supported: {', '.join(SUPPORTED_TYPES)})", name
        )
    choices: tuple[Choice, ...] = ()
    validation: str | None = None
    low, high = row["text_validation_min"] or None, row["text_validation_max"] or None
    slider_labels = None
    raw_validation = row["text_validation_type_or_show_slider_number"]
    if ftype in CHOICE_TYPES:
        choices = parse_choices(row["select_choices_or_calculations"], name)
    elif ftype == "yesno":
        choices = tuple(Choice(c, label) for c, label in YESNO)
    elif ftype == "truefalse":
        choices = tuple(Choice(c, label) for c, label in TRUEFALSE)
    if ftype == "slider":
        slider_labels, low, high = _slider(row, name)
    elif ftype == "text":
        if raw_validation:
            validation = canonical_validation(raw_validation)
            if validation not in SUPPORTED_VALIDATIONS:
                raise MetadataError(
                    f"validation {raw_validation[:40]!r} is not supported "
                    f"(supported: {', '.join(SUPPORTED_VALIDATIONS)})",
                    name,
                )
        for label, bound in (("min", low), ("max", high)):
            if bound is not None and not bound_ok(validation, bound):
                kind = f"'{validation}' validation" if validation else "no validation"
                raise MetadataError(f"{label} {bound[:40]!r} does not fit a field with {kind}", name)
        # A 'today' bound moves, so its order is only known per day; fixed bounds never consult `today`.
        ordered = "today" in (low, high) or in_range(validation or "", high or "", low, None, date.min)
        if validation and low and high and not ordered:
            raise MetadataError(f"min {low!r} is greater than max {high!r}", name)
    elif low or high:
        raise MetadataError(f"min/max are only meaningful for text and slider fields, not '{ftype}'", name)
    branching = row["branching_logic"] or None
    logic = None
    if branching:
        try:
            logic = parse_logic(branching)
        except LogicError as exc:
            raise MetadataError(f"branching logic not supported: {exc}", name) from None
    return FieldDef(
        name=name,
        form=row["form_name"],
        type=ftype,
        label=row["field_label"],
        note=row["field_note"],
        section_header=row["section_header"],
        choices=choices,
        validation=validation,
        min=low,
        max=high,
        required=row["required_field"].lower() in ("y", "1", "yes"),
        branching=branching,
        logic=logic,
        slider_labels=slider_labels,
        annotation=row["field_annotation"],
        identifier=row["identifier"].lower() in ("y", "1", "yes"),
        show_number=ftype == "slider" and raw_validation == "number",
        matrix_group=row["matrix_group_name"],
    )


def field_from_row(row: Mapping[str, Any]) -> FieldDef:
    """One field from one metadata row, for labelling stored rows; a row the parser would refuse still
    gives its name, type and texts (never raises for a mapping)."""
    name = str(row.get("field_name") or "")
    try:
        clean = {key: _text(row, key, name) for key in METADATA_KEYS}
        return _field(clean)
    except MetadataError:
        # Each value is a str: the row's own, or "".
        texts: dict[str, Any] = {
            key: row.get(key) if isinstance(row.get(key), str) else "" for key in METADATA_KEYS
        }
        return FieldDef(
            name=name,
            form=texts["form_name"],
            type=texts["field_type"],
            label=texts["field_label"],
            note=texts["field_note"],
            section_header=texts["section_header"],
        )


def _check_references(fields: tuple[FieldDef, ...], other_fields: set[str]) -> None:
    by_name = {f.name: f for f in fields}
    for f in fields:
        if f.logic is None:
            continue
        for ref in refs(f.logic):
            target = by_name.get(ref.field)
            if target is None:
                if ref.field in other_fields:
                    raise MetadataError(
                        f"branching logic refers to [{ref.field}] of another instrument, "
                        "which the questionnaire cannot see",
                        f.name,
                    )
                raise MetadataError(f"branching logic refers to unknown field [{ref.field}]", f.name)
            if ref.field == f.name:
                raise MetadataError("branching logic refers to the field itself", f.name)
            if target.is_descriptive:
                raise MetadataError(f"branching logic refers to descriptive field [{ref.field}]", f.name)
            if target.is_checkbox and ref.code is None:
                raise MetadataError(
                    f"branching logic must name an option of checkbox [{ref.field}], like [{ref.field}(1)]",
                    f.name,
                )
            if ref.code is not None and not target.is_checkbox:
                raise MetadataError(
                    f"branching logic uses [{ref.field}({ref.code})] but it is not a checkbox", f.name
                )
            if ref.code is not None and ref.column not in target.columns:
                raise MetadataError(
                    f"branching logic names unknown option {ref.code!r} of [{ref.field}]", f.name
                )


def parse_metadata(rows: Iterable[Mapping[str, Any]], instrument: str) -> InstrumentDef:
    """Build the instrument's definition from REDCap's export-metadata JSON (the whole project's rows or
    only the instrument's); raises MetadataError naming the field for anything unsupported."""
    rows = list(rows) if not isinstance(rows, Mapping | str | bytes) and isinstance(rows, Iterable) else rows
    picked = canonical_rows(rows, instrument)
    if not picked:
        raise MetadataError(f"instrument {instrument!r} has no fields in the metadata")
    other_fields = {
        str(r.get("field_name")) for r in rows if isinstance(r, Mapping) and r.get("form_name") != instrument
    }
    fields: list[FieldDef] = []
    seen: set[str] = set()
    for row in picked:
        f = _field(row)
        if f.name in seen:
            raise MetadataError("appears twice in the metadata", f.name)
        seen.add(f.name)
        fields.append(f)
    result = tuple(fields)
    if not any(not f.is_descriptive for f in result):
        raise MetadataError(f"instrument {instrument!r} has no fields that hold answers")
    _check_references(result, other_fields)
    return InstrumentDef(name=instrument, fields=result, version_hash=metadata_hash(picked))
