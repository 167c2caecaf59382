"""REDCap's record import for the local server: JSON values as PHP sees them, EAV rows, validation, writes.

Split from devservers.redcap_records (the store's shape and export) along one line: what an import may
write. A whole import is validated before anything is written, as REDCap does, so a refused import changes
nothing. Error texts are REDCap's own (see the module docstring of devservers.redcap_api for their sources).
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

from devservers.redcap_project import CLASSIC_EVENT, FORM_STATUS_CHOICES, Field, ProjectDefinition
from devservers.redcap_records import ApiError, Key, Store, column_field

MSG_FORMAT = (
    "The value you provided could not be validated because it does not follow the expected format. "
    "Please try again."
)
MSG_CATEGORY = "The value is not a valid category for {field}"
MSG_CHECKBOX = 'is a checkbox field and thus can only have a value of "1" (checked) or "0" (unchecked).'
MSG_NOT_DESIGNATED = (
    "This field ('{field}') exists on an instrument that is not designated for the event named '{event}'. "
    "You are not allowed to import data for this field into this event."
)
MSG_UNKNOWN_FIELDS = "The following fields were not found in the project as real data fields"
MSG_BAD_EVENT = "One or more of the event names you entered was not valid"
MSG_DUPLICATES = "The records listed below occur more than once. Please remove any duplicates and try again"
MSG_BAD_DATA = "The data being imported is not formatted correctly"
SYSTEM_COLUMNS = {"redcap_event_name", "redcap_repeat_instrument", "redcap_repeat_instance"}

_FORMATS = {
    "integer": r"[-+]?\d+",
    "number": r"[-+]?[0-9]*\.?[0-9]+([eE][-+]?[0-9]+)?",
    "time": r"([01]\d|2[0-3]):[0-5]\d",
    "time_mm_ss": r"[0-5]\d:[0-5]\d",
    "email": r"[^@\s]+@[^@\s]+\.[A-Za-z]{2,}",
    # REDCap's phone validation is North American (NANP) only, which is why study/ uses plain text.
    "phone": r"\(?[2-9]\d{2}\)?[-. ]?[2-9]\d{2}[-. ]?\d{4}",
    "alpha_only": r"[A-Za-z]+",
    "zipcode": r"\d{5}(-\d{4})?",
    **{f"number_{n}dp": rf"[-+]?\d*\.\d{{{n}}}" for n in range(1, 5)},
}


@dataclass
class ImportPlan:
    """Validated writes: (key, column, value or None to clear), plus the record names touched."""

    writes: list[tuple[Key, str, str | None]]
    record_ids: list[str]
    warnings: list[dict[str, str]]


def _text(value: object) -> str:
    """A JSON value as REDCap's PHP sees it: numbers without a trailing '.0', null as blank."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()


def eav_to_flat(project: ProjectDefinition, rows: list[dict[str, object]]) -> list[dict[str, str]]:
    """Turn EAV import rows into flat rows (checkbox values name the checked code)."""
    grouped: dict[Key, dict[str, str]] = {}
    for row in rows:
        record, event = _text(row.get("record")), _text(row.get("redcap_event_name"))
        flat = grouped.setdefault((record, event), {project.record_id_field: record})
        if project.longitudinal:
            flat["redcap_event_name"] = event
        name, value = _text(row.get("field_name")), _text(row.get("value"))
        f = project.by_name.get(name)
        if f is not None and f.type == "checkbox":
            flat[f"{name}___{value.lower()}"] = "1"
        else:
            flat[name] = value
    return list(grouped.values())


def _convert_date(value: str, date_format: str, with_time: bool) -> str:
    """REDCap accepts M/D/Y or D/M/Y dates on import when dateFormat says so, and stores Y-M-D."""
    if date_format not in {"MDY", "DMY"} or "/" not in value:
        return value
    date_part, _, time_part = value.partition(" ")
    parts = date_part.split("/")
    if len(parts) != 3:
        return value
    first, second, year = parts
    month, day = (first, second) if date_format == "MDY" else (second, first)
    converted = f"{year.zfill(4)}-{month.zfill(2)}-{day.zfill(2)}"
    return f"{converted} {time_part}".strip() if with_time else converted


def format_ok(validation: str, value: str) -> bool:
    """Whether a value matches a REDCap text validation type (dates must also be real calendar dates)."""
    if validation.startswith("date_") or validation.startswith("datetime_"):
        pattern = {"date": "%Y-%m-%d", "datetime": "%Y-%m-%d %H:%M", "datetime_seconds": "%Y-%m-%d %H:%M:%S"}
        kind = validation.rsplit("_", 1)[0]
        if not re.fullmatch(r"\d{4}-\d{2}-\d{2}( \d{2}:\d{2}(:\d{2})?)?", value):
            return False
        try:
            dt.datetime.strptime(value, pattern[kind])
        except ValueError:
            return False
        return True
    regex = _FORMATS.get(validation)
    return regex is None or re.fullmatch(regex, value) is not None


def _bound(raw: str, validation: str) -> str:
    if raw == "today":
        return dt.date.today().isoformat()
    if raw == "now":
        return dt.datetime.now().strftime("%Y-%m-%d %H:%M:%S")
    return raw


def _range_problem(f: Field, value: str) -> str | None:
    """A min/max message if the value is out of range (dates compare as text, numbers as numbers)."""
    vmin, vmax = (_bound(f.row[k], f.validation) for k in ("text_validation_min", "text_validation_max"))
    numeric = f.validation in {"integer", "number"} or f.validation.startswith("number_")

    def less(a: str, b: str) -> bool:
        return float(a) < float(b) if numeric else a < b

    if vmin and less(value, vmin):
        return f"{f.name} should not be less than the field minimum ({vmin})"
    if vmax and less(vmax, value):
        return f"{f.name} should not be greater than the field maximum ({vmax})"
    return None


def _value_problem(f: Field | None, column: str, value: str) -> tuple[str | None, str | None]:
    """(error, warning) for one non-blank value."""
    if f is None:  # form status
        return (MSG_CATEGORY.format(field=column) if value not in FORM_STATUS_CHOICES else None), None
    if f.type == "checkbox":
        return (f"{column} {MSG_CHECKBOX}" if value not in {"0", "1"} else None), None
    if f.choices:
        return (MSG_CATEGORY.format(field=column) if value not in f.choices else None), None
    if f.type == "slider":
        ok = re.fullmatch(r"\d+", value) is not None and 0 <= int(value) <= 100
        return (None if ok else MSG_FORMAT), None
    if f.type == "text" and f.validation:
        if not format_ok(f.validation, value):
            return MSG_FORMAT, None
        problem = _range_problem(f, value)
        return (problem, None) if f.force_minmax else (None, problem)
    return None, None


def plan_import(
    project: ProjectDefinition, rows: list[dict[str, object]], overwrite: bool, date_format: str = "YMD"
) -> ImportPlan:
    """Validate a whole import the way REDCap does and return its writes; raise ApiError if anything fails."""
    if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
        raise ApiError(MSG_BAD_DATA)
    pk = project.record_id_field
    allowed = {c for c, _, _ in project.export_columns()} | SYSTEM_COLUMNS
    unknown = list(dict.fromkeys(str(c) for r in rows for c in r if str(c).strip() not in allowed))
    if unknown:
        raise ApiError(MSG_UNKNOWN_FIELDS, fields=unknown)
    keys: list[Key] = []
    for row in rows:
        record = _text(row.get(pk))
        if not record:
            raise ApiError(f"The record id, {pk}, cannot be empty")
        if any(ch in record for ch in "+'&#"):
            raise ApiError(
                f"The record name ({record}) cannot contain a plus sign (+), ampersand (&), "
                "pound sign (#), or apostrophe."
            )
        event = _text(row.get("redcap_event_name")) if project.longitudinal else CLASSIC_EVENT
        if project.longitudinal and not event:
            raise ApiError("The record event name cannot be empty")
        keys.append((record, event))
    bad_events = sorted({e for _, e in keys if project.longitudinal and e not in project.events_by_name})
    if bad_events:
        raise ApiError(MSG_BAD_EVENT, events=bad_events)
    lowered = [f"{r.lower()} ({e})" if e else r.lower() for r, e in keys]
    duplicates = sorted({x for x in lowered if lowered.count(x) > 1})
    if duplicates:
        raise ApiError(MSG_DUPLICATES, records=duplicates)
    return _plan_values(project, rows, keys, overwrite, date_format)


def _plan_values(
    project: ProjectDefinition,
    rows: list[dict[str, object]],
    keys: list[Key],
    overwrite: bool,
    date_format: str,
) -> ImportPlan:
    pk = project.record_id_field
    writes: list[tuple[Key, str, str | None]] = []
    errors: list[tuple[str, str, str, str]] = []
    warnings: list[dict[str, str]] = []
    for row, key in zip(rows, keys, strict=True):
        writes.append((key, pk, key[0]))
        for raw_column, raw_value in row.items():
            column = str(raw_column).strip()
            if column in SYSTEM_COLUMNS or column == pk:
                continue
            value = _text(raw_value)
            f, form = column_field(project, column)
            if f is not None and f.type == "text" and f.validation.startswith(("date", "datetime")):
                value = _convert_date(value, date_format, f.validation.startswith("datetime"))
            if value == "":
                if overwrite:
                    writes.append((key, column, None))
                continue
            if project.longitudinal and form not in project.forms_for_event(key[1]):
                msg = MSG_NOT_DESIGNATED.format(field=column, event=project.event_label(key[1]))
                errors.append((key[0], column, value, msg))
                continue
            error, warning = _value_problem(f, column, value)
            if error:
                errors.append((key[0], column, value, error))
                continue
            if warning:
                warnings.append({"record": key[0], "field_name": column, "message": warning})
            unchecked = f is not None and f.type == "checkbox" and value == "0"
            writes.append((key, column, None if unchecked else value))
    if errors:
        raise ApiError("\n".join(",".join(f'"{part}"' for part in line) for line in errors))
    record_ids = list(dict.fromkeys(k[0] for k in keys))
    return ImportPlan(writes=writes, record_ids=record_ids, warnings=warnings)


def apply_import(store: Store, plan: ImportPlan) -> None:
    """Write a validated plan into the store (the caller holds the lock, so this is all-or-nothing)."""
    for key, column, value in plan.writes:
        row = store.setdefault(key, {})
        if value is None:
            row.pop(column, None)
        else:
            row[column] = value
