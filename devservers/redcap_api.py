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
import datetime as dt
import json
import time
from pathlib import Path
from typing import Any

from flask import Flask, Response, request

from devservers import redcap_records as rr
from devservers.control import drop_connection
from devservers.redcap_handlers import Call, error_body, handle_call
from devservers.redcap_project import ProjectDefinition
from devservers.redcap_state import RedcapState
from devservers.runner import serve_in_thread, serve_until_stopped

DEV_TOKEN = "0123456789ABCDEF0123456789ABCDEF"
MSG_NO_PERMISSION = "You do not have permissions to use the API"
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


# ---------------------------------------------------------------- wiring


def _fault_response(state: RedcapState, kind: str, hang_s: float) -> Response:
    """Misbehave the way a broken REDCap or network does."""
    if kind == "timeout":
        state.hang(hang_s)
        return drop_connection()  # instead of answering
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
        body, mimetype = error_body(str(exc), call.return_format, extra)
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
        print(f"Seeded {count} demo records", flush=True)
    handle = serve_in_thread(create_redcap_app(state.project, state=state), port=args.port)
    print(f"Local REDCap API on {handle.url}/api/ (project {args.project})", flush=True)
    serve_until_stopped(handle, state.close)


if __name__ == "__main__":
    main()
