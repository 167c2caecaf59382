"""REDCap record semantics for the local server: flat/EAV export and all-or-nothing validated import.

Data is held as {(record, unique event): {export column: value}} with blank values absent, exactly the shape
REDCap's flat export has, so export and import are plain transformations. Error texts are REDCap's own where
a source was found (see the module docstring of devservers.redcap_api for where each one comes from).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from devservers import redcap_logic
from devservers.redcap_project import CLASSIC_EVENT, FORM_STATUS_CHOICES, Field, ProjectDefinition

Key = tuple[str, str]
Store = dict[Key, dict[str, str]]

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
MSG_BAD_PARAM_VALUES = 'The following values in the parameter "{param}" are not valid: {values}'
MSG_BAD_LOGIC = 'The value of the parameter "filterLogic" is not valid'
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


class ApiError(Exception):
    """A request REDCap would refuse: carries the HTTP status and REDCap's error payload."""

    def __init__(self, message: str, status: int = 400, **extra: object) -> None:
        super().__init__(message)
        self.status = status
        self.payload: dict[str, object] = {"error": message, **extra}


@dataclass
class ExportRequest:
    """The record-export parameters REDCap understands that this server implements."""

    records: list[str] = field(default_factory=list)
    fields: list[str] = field(default_factory=list)
    forms: list[str] = field(default_factory=list)
    events: list[str] = field(default_factory=list)
    filter_logic: str = ""
    raw_or_label: str = "raw"
    record_type: str = "flat"
    blank_for_gray_status: bool = False


@dataclass
class ImportPlan:
    """Validated writes: (key, column, value or None to clear), plus the record names touched."""

    writes: list[tuple[Key, str, str | None]]
    record_ids: list[str]
    warnings: list[dict[str, str]]


def natural_key(record: str) -> tuple[int, float, str]:
    """Order records as REDCap does: numeric names numerically, then the rest as text."""
    try:
        return (0, float(record), "")
    except ValueError:
        return (1, 0.0, record)


# ---------------------------------------------------------------- export


def _column_field(project: ProjectDefinition, column: str) -> tuple[Field | None, str]:
    """(Field or None for a form status column, form) for an export column."""
    base = column.split("___", 1)[0]
    if base in project.by_name:
        return project.by_name[base], project.by_name[base].form
    return None, column.removesuffix("_complete")


def cell(project: ProjectDefinition, store: Store, key: Key, column: str, blank_gray: bool = False) -> str:
    """The value REDCap would export for one column of one record-event row."""
    record, event = key
    if column == project.record_id_field:
        return record
    f, form = _column_field(project, column)
    if form not in project.forms_for_event(event):
        return ""
    value = store.get(key, {}).get(column)
    if value is not None:
        return value
    if f is not None and f.type == "checkbox":
        return "0"
    if f is None:
        return "" if blank_gray else "0"
    return ""


def _check_names(param: str, given: Iterable[str], valid: Iterable[str]) -> None:
    bad = [name for name in given if name not in set(valid)]
    if bad:
        raise ApiError(MSG_BAD_PARAM_VALUES.format(param=param, values=", ".join(f"'{b}'" for b in bad)))


def selected_columns(project: ProjectDefinition, fields: list[str], forms: list[str]) -> list[str]:
    """Export columns for the requested fields and forms, in data dictionary order as REDCap returns them."""
    status_names = [f"{form}_complete" for form in project.forms]
    _check_names("fields", fields, [*project.by_name, *status_names])
    _check_names("forms", forms, project.forms)
    wanted_fields, wanted_forms = set(fields), set(forms)
    columns = []
    for column, original, form in project.export_columns():
        if (not fields and not forms) or original in wanted_fields or form in wanted_forms:
            columns.append(column)
    if project.longitudinal and project.record_id_field in columns:
        columns.insert(columns.index(project.record_id_field) + 1, "redcap_event_name")
    return columns


def _compile_logic(project: ProjectDefinition, text: str) -> object | None:
    if not text.strip():
        return None
    try:
        tree = redcap_logic.parse(text)
    except redcap_logic.LogicError as exc:
        raise ApiError(MSG_BAD_LOGIC) from exc
    status_names = {f"{form}_complete" for form in project.forms}
    for ref in redcap_logic.refs(tree):
        f = project.by_name.get(ref.field)
        known = f is not None or ref.field in status_names
        bad_code = f is not None and (f.type == "checkbox") != (ref.code is not None)
        bad_code = bad_code or (ref.code is not None and f is not None and ref.code not in f.choices)
        bad_event = ref.event is not None and ref.event not in project.events_by_name
        if not known or bad_code or bad_event:
            raise ApiError(MSG_BAD_LOGIC)
    return tree


def export_rows(project: ProjectDefinition, store: Store, req: ExportRequest) -> list[dict[str, str]]:
    """REDCap's Export Records: flat rows (one per record-event) or EAV rows, filtered as requested."""
    if req.events and project.longitudinal:
        _check_names("events", req.events, project.events_by_name)
    columns = selected_columns(project, req.fields, req.forms)
    tree = _compile_logic(project, req.filter_logic)
    event_order = {name: i for i, name in enumerate(project.event_names())}
    keys = sorted(store, key=lambda k: (natural_key(k[0]), event_order.get(k[1], 0)))
    data_columns = [c for c in columns if c != "redcap_event_name"]
    rows = []
    for key in keys:
        record, event = key
        if req.records and record not in req.records:
            continue
        if req.events and project.longitudinal and event not in req.events:
            continue
        if not any(c in store[key] for c in data_columns) and project.record_id_field not in data_columns:
            continue
        if tree is not None and not redcap_logic.evaluate(tree, _lookup(project, store, key)):
            continue
        if req.record_type == "eav":
            rows.extend(_eav_rows(project, store, key, data_columns))
            continue
        row = {c: cell(project, store, key, c, req.blank_for_gray_status) for c in data_columns}
        if "redcap_event_name" in columns:
            row = {**{k: row[k] for k in data_columns[:1]}, "redcap_event_name": event, **row}
        rows.append(_labelled(project, row) if req.raw_or_label == "label" else row)
    return rows


def _lookup(project: ProjectDefinition, store: Store, key: Key) -> redcap_logic.Lookup:
    def lookup(event: str | None, name: str, code: str | None) -> str:
        target = (key[0], event or key[1])
        column = f"{name}___{code.lower()}" if code else name
        return cell(project, store, target, column)

    return lookup


def _eav_rows(project: ProjectDefinition, store: Store, key: Key, columns: list[str]) -> list[dict[str, str]]:
    rows = []
    for column in columns:
        value = store.get(key, {}).get(column) if column != project.record_id_field else key[0]
        if not value or (value == "0" and "___" in column):
            continue
        name, _, code = column.partition("___")
        row = {"record": key[0], "field_name": name, "value": code or value}
        if project.longitudinal:
            row = {"record": key[0], "redcap_event_name": key[1], "field_name": name, "value": code or value}
        rows.append(row)
    return rows


def _labelled(project: ProjectDefinition, row: dict[str, str]) -> dict[str, str]:
    out = dict(row)
    for column, value in row.items():
        f, _ = _column_field(project, column)
        if column == "redcap_event_name" and value:
            out[column] = project.events_by_name[value].event_name
        elif f is not None and f.type == "checkbox" and value:
            out[column] = "Checked" if value == "1" else "Unchecked"
        elif f is not None and value:
            out[column] = f.choices.get(value, value)
        elif f is None and column.endswith("_complete") and value:
            out[column] = FORM_STATUS_CHOICES.get(value, value)
    return out


# ---------------------------------------------------------------- import


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
            f, form = _column_field(project, column)
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
