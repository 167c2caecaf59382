"""REDCap's API methods for the local server: parse a call, answer it, or raise REDCap's error.

Kept apart from the HTTP wiring in devservers.redcap_api (token, faults, latency, control endpoint) so each
file reads in one sitting. Answers are rendered in the requested format: json, csv or xml.
"""

from __future__ import annotations

import csv
import io
import json
import re
import time
from typing import Any
from xml.sax.saxutils import escape

from flask import Response
from werkzeug.datastructures import MultiDict

from devservers import redcap_import as ri
from devservers import redcap_records as rr
from devservers.redcap_project import ProjectDefinition
from devservers.redcap_state import RedcapState

MSG_BAD_CONTENT = 'The value of the parameter "content" is not valid'

# ---------------------------------------------------------------- rendering


def error_body(message: str, fmt: str, extra: dict[str, object] | None = None) -> tuple[str, str]:
    """REDCap formats errors in returnFormat (else format, else xml)."""
    if fmt == "json":
        return json.dumps({"error": message, **(extra or {})}), "application/json"
    if fmt == "csv":
        return f"ERROR: {message}", "text/csv"
    return (
        f'<?xml version="1.0" encoding="UTF-8" ?>\n<hash>\n  <error>{escape(message)}</error>\n</hash>',
        "text/xml",
    )


def _render(data: object, fmt: str) -> Response:
    """Serialise an export (list of flat dicts or a dict) as json, csv or xml."""
    if fmt == "json":
        return Response(json.dumps(data), mimetype="application/json")
    rows = data if isinstance(data, list) else [data]
    if fmt == "csv":
        buf = io.StringIO()
        if rows:
            writer = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator="\n")
            writer.writeheader()
            writer.writerows(rows)
        return Response(buf.getvalue(), mimetype="text/csv")
    items = "".join(
        "<item>" + "".join(f"<{k}><![CDATA[{v}]]></{k}>" for k, v in row.items()) + "</item>\n"
        for row in rows
    )
    return Response(
        f'<?xml version="1.0" encoding="UTF-8" ?>\n<records>\n{items}</records>\n', mimetype="text/xml"
    )


def param_list(form: MultiDict[str, str], name: str) -> list[str]:
    """An array parameter sent PHP-style (`fields[0]=a`) or comma-separated (`fields=a,b`)."""
    indexed: list[tuple[int, str]] = []
    for key in form:
        m = re.fullmatch(rf"{name}\[(\d*)\]", key)
        if m:
            for value in form.getlist(key):
                indexed.append((int(m[1]) if m[1] else len(indexed), value))
    values = [v for _, v in sorted(indexed, key=lambda item: item[0])]
    values += [p for p in form.get(name, "").split(",")]
    return [v.strip() for v in values if v.strip()]


def _truthy(value: str | None) -> bool:
    return (value or "").strip().lower() in {"1", "true"}


# ---------------------------------------------------------------- API handlers


class Call:
    """One API request, parsed: what it asks for and how to format the answer."""

    def __init__(self, form: MultiDict[str, str]) -> None:
        self.form = form
        self.content = form.get("content", "")
        self.format = form.get("format", "xml") if form.get("format") in {"json", "csv", "xml"} else "xml"
        requested_return = (form.get("returnFormat") or self.format).lower()
        self.return_format = requested_return if requested_return in {"json", "csv"} else "xml"
        has_data = "data" in form and self.content != "version"
        self.action = form.get("action") or ("import" if has_data else "export")
        if self.content == "record" and self.action not in {"delete"}:
            self.action = "import" if has_data else "export"

    def log_entry(self) -> dict[str, Any]:
        """What the call asked for, for the call log: names and counts, never the token or values."""
        form = self.form
        return {
            "at": time.time(),
            "t": time.monotonic(),
            "content": self.content,
            "action": self.action,
            "format": self.format,
            "type": form.get("type", "flat"),
            "fields": param_list(form, "fields"),
            "forms": param_list(form, "forms"),
            "events": param_list(form, "events"),
            "records_requested": len(param_list(form, "records")),
            "has_filter_logic": bool(form.get("filterLogic", "").strip()),
            "record_count": 0,
            "status": None,
            "outcome": None,
        }


def _classic_guard(state: RedcapState, what: str) -> None:
    if not state.project.longitudinal:
        raise rr.ApiError(f"You cannot export {what} for classic projects")


def handle_call(state: RedcapState, call: Call, entry: dict[str, Any]) -> Response:
    """Answer one authorised API call, or raise ApiError with REDCap's message."""
    project, form, fmt = state.project, call.form, call.format
    if call.content == "version":
        return Response(str(project.info.get("redcap_version", "14.5.0")), mimetype="text/html")
    if call.content == "project":
        info = {k: v for k, v in project.info.items() if k not in {"instruments", "redcap_version"}}
        return _render(info, fmt)
    if call.content == "metadata":
        fields, forms = param_list(form, "fields"), param_list(form, "forms")
        rr.selected_columns(project, fields, forms)  # validates the names
        rows = [
            r
            for r in project.metadata_rows()
            if (not fields and not forms) or r["field_name"] in fields or r["form_name"] in forms
        ]
        return _render(rows, fmt)
    if call.content == "instrument":
        return _render(
            [{"instrument_name": f, "instrument_label": project.instrument_label(f)} for f in project.forms],
            fmt,
        )
    if call.content == "exportFieldNames":
        return _render(_export_field_names(state, form.get("field", "").strip()), fmt)
    arms = [int(a) for a in param_list(form, "arms") if a.isdigit()]
    if call.content == "arm":
        _classic_guard(state, "arms")
        return _render(
            [
                {"arm_num": n, "name": name}
                for n, name in sorted(project.arms.items())
                if not arms or n in arms
            ],
            fmt,
        )
    if call.content == "event":
        _classic_guard(state, "events")
        return _render([e.api_row() for e in project.events if not arms or e.arm_num in arms], fmt)
    if call.content == "formEventMapping":
        _classic_guard(state, "form/event mappings")
        return _render(
            [
                {"arm_num": e.arm_num, "unique_event_name": e.unique_event_name, "form": f}
                for e in project.events
                if not arms or e.arm_num in arms
                for f in project.forms_for_event(e.unique_event_name)
            ],
            fmt,
        )
    if call.content == "record":
        return _handle_record(state, call, entry)
    raise rr.ApiError(MSG_BAD_CONTENT)


def _export_field_names(state: RedcapState, only: str) -> list[dict[str, str]]:
    project = state.project
    if only and only not in project.by_name and only not in {f"{f}_complete" for f in project.forms}:
        raise rr.ApiError(rr.MSG_BAD_PARAM_VALUES.format(param="field", values=f"'{only}'"))
    rows = []
    for column, original, _ in project.export_columns():
        if not only or original == only:
            code = column.split("___", 1)[1] if "___" in column else ""
            rows.append({"original_field_name": original, "choice_value": code, "export_field_name": column})
    return rows


def _handle_record(state: RedcapState, call: Call, entry: dict[str, Any]) -> Response:
    form, project = call.form, state.project
    if call.action == "delete":
        return _delete_records(state, call, entry)
    if call.action == "import":
        rows = _import_rows(call, project)
        with state.lock:
            plan = ri.plan_import(
                project,
                rows,
                overwrite=form.get("overwriteBehavior") == "overwrite",
                date_format=form.get("dateFormat", "YMD"),
            )
            ri.apply_import(state.store, plan)
            state.warnings.extend(plan.warnings)
        entry["record_count"] = len(plan.record_ids)
        entry["fields"] = list(dict.fromkeys(str(c) for r in rows for c in r))
        return _import_response(plan.record_ids, form.get("returnContent", "count"), call.return_format)
    req = rr.ExportRequest(
        records=param_list(form, "records"),
        fields=param_list(form, "fields"),
        forms=param_list(form, "forms"),
        events=param_list(form, "events"),
        filter_logic=form.get("filterLogic", ""),
        raw_or_label="label" if form.get("rawOrLabel") == "label" else "raw",
        record_type="eav" if form.get("type") == "eav" else "flat",
        blank_for_gray_status=_truthy(form.get("exportBlankForGrayFormStatus")),
    )
    with state.lock:
        rows = rr.export_rows(project, state.store, req)
    entry["record_count"] = len({r.get(project.record_id_field, r.get("record")) for r in rows})
    return _render(rows, call.format)


def _import_rows(call: Call, project: ProjectDefinition) -> list[dict[str, object]]:
    data = call.form.get("data", "")
    try:
        if call.format == "json":
            rows = json.loads(data)
        elif call.format == "csv":
            rows = list(csv.DictReader(io.StringIO(data)))
        else:
            raise rr.ApiError("This local REDCap server imports json or csv only")
    except json.JSONDecodeError as exc:
        raise rr.ApiError(ri.MSG_BAD_DATA) from exc
    if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
        raise rr.ApiError(ri.MSG_BAD_DATA)
    return ri.eav_to_flat(project, rows) if call.form.get("type") == "eav" else rows


def _import_response(ids: list[str], return_content: str, fmt: str) -> Response:
    if return_content == "nothing":
        return Response("", mimetype="text/html")
    if return_content in {"ids", "auto_ids"}:
        values = [f"{i},{i}" for i in ids] if return_content == "auto_ids" else ids
        if fmt == "json":
            return Response(json.dumps(values), mimetype="application/json")
        if fmt == "csv":
            return Response("id\n" + "\n".join(values), mimetype="text/csv")
        body = "".join(f"<id>{escape(v)}</id>" for v in values)
        return Response(f'<?xml version="1.0" encoding="UTF-8" ?><ids>{body}</ids>', mimetype="text/xml")
    if fmt == "json":
        return Response(json.dumps({"count": len(ids)}), mimetype="application/json")
    if fmt == "csv":
        return Response(str(len(ids)), mimetype="text/csv")
    return Response(f'<?xml version="1.0" encoding="UTF-8" ?><count>{len(ids)}</count>', mimetype="text/xml")


def _delete_records(state: RedcapState, call: Call, entry: dict[str, Any]) -> Response:
    records = param_list(call.form, "records")
    event = call.form.get("event", "").strip()
    with state.lock:
        existing = {k[0] for k in state.store}
        missing = [r for r in records if r not in existing]
        if not records or missing:
            raise rr.ApiError(
                "One or more of the records provided cannot be deleted because they do not exist "
                f"in the project. The following records do not exist: {', '.join(missing)}"
            )
        for key in [k for k in state.store if k[0] in records and (not event or k[1] == event)]:
            del state.store[key]
    entry["record_count"] = len(records)
    return Response(str(len(records)), mimetype="text/html")
