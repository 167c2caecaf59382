"""A local stand-in for REDCap's API, spoken to by the real PyCap client over HTTP on loopback.

REDCap cannot be installed here, so `make run` and the tests use this server. It answers `POST /api/` like
REDCap does for the methods the follow-up service uses, and `/_control` lets tests and developers add
latency and faults. Run it with:

    python -m devservers.redcap_api --port 8081 --project study --token <32 hex chars> [--seed-demo]

Where REDCap's behaviour and texts come from:
- Request handling (format/returnFormat defaults, action = import when `data` is sent, 'The value of
  the parameter "content" is not valid', 'You do not have API Export privileges', 'You do not have API
  Import/Update privileges'): REDCap's API/index.php.
- 'You do not have permissions to use the API' (403 for a bad token): REDCapR and redcapAPI test suites.
- Import validation texts ('The value is not a valid category for …', '… is a checkbox field and thus
  can only have a value of "1" (checked) or "0" (unchecked).', 'The following fields were not found in
  the project as real data fields', 'One or more of the event names you entered was not valid', the
  duplicate and record-name messages, '… should not be less than the field minimum (…)'):
  REDCap 6.4.4 API/record/import.php.
- 'The value you provided could not be validated because it does not follow the expected format. Please
  try again.' and "This field ('…') exists on an instrument that is not designated for the event named
  '… (Arm 1: …)'", each error line formatted as "record","field","value","message": errors quoted by
  users of REDCap 10-14 (redcapAPI #217 and #348, PyCap #142).
- 'The following values in the parameter "fields" are not valid: …' (REDCap 13): redcapAPI #267,
  redcapcustodian #130.
- 'You cannot export form/event mappings for classic projects' (and arms, events): REDCap's API source.
- Ban: REDCap's rate limiter answers HTTP 429 with the plain text 'Your IP address (…) has been banned
  due to suspected abuse.' (Logging::checkBannedIp), not JSON.
- Min/max: REDCap only warns on out-of-range values unless the field has the @FORCE-MINMAX action tag.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import datetime as dt
import io
import json
import re
import socket
import time
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

from flask import Flask, Response, request
from werkzeug.datastructures import MultiDict
from werkzeug.serving import make_server

from devservers import redcap_records as rr
from devservers.redcap_project import ProjectDefinition
from devservers.redcap_state import RedcapState

DEV_TOKEN = "0123456789ABCDEF0123456789ABCDEF"
MSG_NO_PERMISSION = "You do not have permissions to use the API"
MSG_BAD_CONTENT = 'The value of the parameter "content" is not valid'
STATE_KEY = "redcap_state"

__all__ = ["DEV_TOKEN", "ProjectDefinition", "RedcapState", "create_redcap_app", "demo_records", "get_state"]


def create_redcap_app(
    project: ProjectDefinition | str | Path, token: str = DEV_TOKEN, *, state: RedcapState | None = None
) -> Flask:
    """Build the app for one project; pass `state` to share or pre-configure it (its token then wins)."""
    definition = project if isinstance(project, ProjectDefinition) else ProjectDefinition.load(project)
    app = Flask(__name__)
    app.extensions[STATE_KEY] = state if state is not None else RedcapState(definition, token)
    register_api(app)
    register_control(app)
    return app


def get_state(app: Flask) -> RedcapState:
    """The RedcapState behind an app made by create_redcap_app."""
    return app.extensions[STATE_KEY]


# ---------------------------------------------------------------- rendering


def _error_body(message: str, fmt: str, extra: dict[str, object] | None = None) -> tuple[str, str]:
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


def _param_list(form: MultiDict[str, str], name: str) -> list[str]:
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
        form = self.form
        return {
            "at": time.time(),
            "t": time.monotonic(),
            "content": self.content,
            "action": self.action,
            "format": self.format,
            "type": form.get("type", "flat"),
            "fields": _param_list(form, "fields"),
            "forms": _param_list(form, "forms"),
            "events": _param_list(form, "events"),
            "records_requested": len(_param_list(form, "records")),
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
        fields, forms = _param_list(form, "fields"), _param_list(form, "forms")
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
    arms = [int(a) for a in _param_list(form, "arms") if a.isdigit()]
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
            plan = rr.plan_import(
                project,
                rows,
                overwrite=form.get("overwriteBehavior") == "overwrite",
                date_format=form.get("dateFormat", "YMD"),
            )
            rr.apply_import(state.store, plan)
            state.warnings.extend(plan.warnings)
        entry["record_count"] = len(plan.record_ids)
        entry["fields"] = list(dict.fromkeys(str(c) for r in rows for c in r))
        return _import_response(plan.record_ids, form.get("returnContent", "count"), call.return_format)
    req = rr.ExportRequest(
        records=_param_list(form, "records"),
        fields=_param_list(form, "fields"),
        forms=_param_list(form, "forms"),
        events=_param_list(form, "events"),
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
        raise rr.ApiError(rr.MSG_BAD_DATA) from exc
    if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
        raise rr.ApiError(rr.MSG_BAD_DATA)
    return rr.eav_to_flat(project, rows) if call.form.get("type") == "eav" else rows


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
    records = _param_list(call.form, "records")
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


# ---------------------------------------------------------------- wiring


def _fault_response(state: RedcapState, kind: str, hang_s: float) -> Response:
    """Misbehave the way a broken REDCap or network does."""
    if kind == "timeout":
        state.hang(hang_s)
        sock = request.environ.get("werkzeug.socket")
        if sock is not None:  # drop the connection instead of answering
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        return Response("", status=504)
    if kind == "not_json":
        page = (
            "<html><head><title>REDCap</title></head>"
            "<body><p>REDCap is currently offline for maintenance.</p></body></html>"
        )
        return Response(page, mimetype="text/html")
    page = f"<html><body><h1>{kind} Internal Server Error</h1></body></html>"
    return Response(page, status=int(kind), mimetype="text/html")


def register_api(app: Flask) -> None:
    """POST /api/ (and /redcap/api/): token check, latency and faults, then REDCap's methods."""

    def api() -> Response:
        state = get_state(app)
        call = Call(request.form)
        entry = call.log_entry()
        allowed = state.note_arrival()
        state.log_call(entry)  # at arrival, so a call that hangs is already visible to tests
        response = _answer(state, call, entry, allowed)
        state.finish_call(entry, response.status_code)
        return response

    app.add_url_rule("/api/", "api", api, methods=["POST"])
    app.add_url_rule("/redcap/api/", "redcap_api", api, methods=["POST"])


def _answer(state: RedcapState, call: Call, entry: dict[str, Any], allowed: bool) -> Response:
    if not allowed:
        entry["outcome"] = "banned"
        ip = request.remote_addr or "127.0.0.1"
        return Response(
            f"Your IP address ({ip}) has been banned due to suspected abuse.",
            status=429,
            mimetype="text/html",
        )
    if state.latency_ms:
        time.sleep(state.latency_ms / 1000)
    fault = state.take_fault()
    if fault is not None:
        entry["outcome"] = f"fault:{fault.kind}"
        return _fault_response(state, fault.kind, fault.hang_s)
    try:
        if not state.token_ok(call.form.get("token", "")):
            raise rr.ApiError(MSG_NO_PERMISSION, status=403)
        if call.action == "export" and not state.api_export:
            raise rr.ApiError("You do not have API Export privileges", status=403)
        if call.action in {"import", "delete"} and not state.api_import:
            raise rr.ApiError("You do not have API Import/Update privileges", status=403)
        response = handle_call(state, call, entry)
        entry["outcome"] = "ok"
        return response
    except rr.ApiError as exc:
        entry["outcome"] = "error"
        extra = {k: v for k, v in exc.payload.items() if k != "error"}
        body, mimetype = _error_body(str(exc), call.return_format, extra)
        return Response(body, status=exc.status, mimetype=mimetype)


def register_control(app: Flask) -> None:
    """GET/POST /_control and GET /_control/records: switches and data for the dev server only (no token)."""

    def control() -> Response:
        state = get_state(app)
        if request.method == "GET":
            return Response(json.dumps(state.snapshot()), mimetype="application/json")
        payload = request.get_json(silent=True)
        if not isinstance(payload, dict):
            return Response(
                json.dumps({"error": "send a JSON object"}), status=400, mimetype="application/json"
            )
        try:
            snapshot = state.control(payload)
        except (TypeError, ValueError) as exc:
            return Response(json.dumps({"error": str(exc)}), status=400, mimetype="application/json")
        return Response(json.dumps(snapshot), mimetype="application/json")

    def control_records() -> Response:
        return Response(json.dumps(get_state(app).records()), mimetype="application/json")

    app.add_url_rule("/_control", "control", control, methods=["GET", "POST"])
    app.add_url_rule("/_control/records", "control_records", control_records, methods=["GET"])


# ---------------------------------------------------------------- demo data and CLI


def demo_records(path: str | Path, today: dt.date | None = None) -> list[dict[str, str]]:
    """Baseline rows from study/demo_records.json with `*_days_ago` turned into real dates."""
    today = today or dt.date.today()
    raw = json.loads(Path(path).read_text("utf-8"))
    rows = []
    for item in raw["records"] if isinstance(raw, dict) else raw:
        row = {k: str(v) for k, v in item.items() if not k.endswith("_days_ago")}
        for key, days in item.items():
            if key.endswith("_days_ago"):
                name = key.removesuffix("_days_ago")
                row[f"{name}_date" if not name.endswith("_date") else name] = (
                    today - dt.timedelta(days=int(days))
                ).isoformat()
        rows.append(row)
    return rows


def main(argv: list[str] | None = None) -> None:
    """Serve one project on 127.0.0.1 for `make run`."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8081)
    parser.add_argument("--project", default="study", help="directory with data_dictionary.csv etc.")
    parser.add_argument("--token", default=DEV_TOKEN, help="the API token clients must send")
    parser.add_argument("--seed-demo", action="store_true", help="load <project>/demo_records.json")
    parser.add_argument("--rate-limit", type=int, default=0, help="ban after N calls per minute (0 = off)")
    args = parser.parse_args(argv)
    state = RedcapState(
        ProjectDefinition.load(args.project), args.token, rate_limit_per_minute=args.rate_limit or None
    )
    if args.seed_demo:
        count = state.seed_records(demo_records(Path(args.project) / "demo_records.json"))
        print(f"Seeded {count} demo records")
    app = create_redcap_app(state.project, state=state)
    server = make_server("127.0.0.1", args.port, app, threaded=True)
    print(f"Local REDCap API on http://127.0.0.1:{server.server_port}/api/ (project {args.project})")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        state.close()
        server.server_close()


if __name__ == "__main__":
    main()
