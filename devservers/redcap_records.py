"""REDCap record semantics for the local server: the record store's shape and flat/EAV export.

Data is held as {(record, unique event): {export column: value}} with blank values absent, exactly the shape
REDCap's flat export has, so export and import are plain transformations; the all-or-nothing validated
import lives in devservers.redcap_import. Error texts are REDCap's own where a source was found (see the
module docstring of devservers.redcap_api for where each one comes from).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from devservers import redcap_logic
from devservers.redcap_project import FORM_STATUS_CHOICES, Field, ProjectDefinition

Key = tuple[str, str]
Store = dict[Key, dict[str, str]]

MSG_BAD_PARAM_VALUES = 'The following values in the parameter "{param}" are not valid: {values}'
MSG_BAD_LOGIC = 'The value of the parameter "filterLogic" is not valid'


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


def natural_key(record: str) -> tuple[int, float, str]:
    """Order records as REDCap does: numeric names numerically, then the rest as text."""
    try:
        return (0, float(record), "")
    except ValueError:
        return (1, 0.0, record)


# ---------------------------------------------------------------- export


def column_field(project: ProjectDefinition, column: str) -> tuple[Field | None, str]:
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
    f, form = column_field(project, column)
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
        f, _ = column_field(project, column)
        if column == "redcap_event_name" and value:
            out[column] = project.events_by_name[value].event_name
        elif f is not None and f.type == "checkbox" and value:
            out[column] = "Checked" if value == "1" else "Unchecked"
        elif f is not None and value:
            out[column] = f.choices.get(value, value)
        elif f is None and column.endswith("_complete") and value:
            out[column] = FORM_STATUS_CHOICES.get(value, value)
    return out
