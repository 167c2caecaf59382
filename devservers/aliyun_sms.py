"""A local stand-in for Aliyun SMS (dysmsapi 2017-05-25): SendSms, QuerySendDetails, pushes, faults.

The official `alibabacloud-dysmsapi20170525` client talks to it over HTTP with
`Config(access_key_id=…, access_key_secret=…, endpoint="127.0.0.1:8093", protocol="http")`; every request's
signature is checked against the configured AccessKey secret.
Privacy rule: nothing here logs a phone number or a text; numbers are masked to their last 2 digits.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Iterable

from flask import Flask, jsonify, request

from devservers.aliyun_protocol import (  # re-exported: callers import these from here
    DEFAULT_ACCESS_KEY_ID,
    DEFAULT_ACCESS_KEY_SECRET,
    DEFAULT_SIGN_NAME,
    DEFAULT_TEMPLATES,
    FAULT_KINDS,
    AliyunError,
    CallbackAttempt,
    SentSms,
    Template,
    json_response,
    new_request_id,
)
from devservers.aliyun_state import AliyunState
from devservers.control import add_latency, hang_up, redact_access_logs, register_control_switches

__all__ = [
    "DEFAULT_ACCESS_KEY_ID",
    "DEFAULT_ACCESS_KEY_SECRET",
    "DEFAULT_SIGN_NAME",
    "AliyunError",
    "AliyunState",
    "CallbackAttempt",
    "SentSms",
    "Template",
    "create_aliyun_app",
]

log = logging.getLogger("devservers.aliyun_sms")


def redact_request_lines() -> None:
    """Install the redactions on werkzeug's access log, once (the Twilio one stops at the first quote).

    Access-log lines carry `?PhoneNumbers=…&TemplateParam={"…"}`: cut the whole query up to ` HTTP/`.
    """
    redact_access_logs()
    redact_access_logs(r"\?.*?(?= HTTP/)")


def register_api_routes(app: Flask, state: AliyunState) -> None:
    """The RPC endpoint `/` (POST or GET, action in `x-acs-action` or `Action`), signed, with faults."""

    @app.route("/", methods=["GET", "POST"])
    def rpc():
        add_latency(state._closing, state.latency)
        key_id, action = state.verify(
            request.method,
            request.path,
            request.args.to_dict(),
            request.form.to_dict(),
            dict(request.headers),
            request.get_data(cache=True),
        )
        params = request.values.to_dict()
        fault = state.take_fault(action)
        if fault in ("timeout", "500", "503", "throttling"):
            if fault == "timeout":
                return hang_up(state._closing, state.hang_seconds)
            raise AliyunError(FAULT_KINDS[fault])  # type: ignore[arg-type]
        if action == "SendSms":
            body = state.send_sms(key_id, params)
        else:
            body = state.query_send_details(key_id, params)
        if fault == "accepted-timeout":
            return hang_up(state._closing, state.hang_seconds)
        if fault == "accepted-500":
            raise AliyunError("InternalError")
        return json_response(body, 200, body["RequestId"])


def register_control_routes(app: Flask, state: AliyunState) -> None:
    """`/_control`: switches and counters over HTTP; `/_control/reply` makes a participant answer."""
    register_control_switches(app, state)

    @app.post("/_control/reply")
    def reply():
        doc = request.get_json(force=True) or {}
        if not doc.get("phone") or "content" not in doc:
            return jsonify(error="phone and content are required"), 400
        try:
            attempts = state.simulate_reply(
                str(doc["phone"]),
                str(doc["content"]),
                sign_name=doc.get("sign_name"),
                dest_code=str(doc.get("dest_code", "")),
                url=doc.get("url"),
            )
        except ValueError as exc:
            return jsonify(error=str(exc)), 400
        return jsonify(
            attempts=[{"status": a.status_code, "body": a.response_body, "error": a.error} for a in attempts],
            accepted=attempts[-1].accepted,
        )

    @app.post("/_control/report/<path:biz_id>")
    def report(biz_id: str):
        state.report_now(biz_id)
        return jsonify(state.counters())


def register_error_handlers(app: Flask) -> None:
    """Aliyun-shaped JSON for gateway errors and unknown paths."""

    @app.errorhandler(AliyunError)
    def _aliyun_error(err: AliyunError):
        return err.response()

    @app.errorhandler(404)
    @app.errorhandler(405)
    def _not_found(err):
        if not request.path.startswith("/_control"):
            return AliyunError("InvalidAction.NotFound").response(new_request_id())
        return err


def create_aliyun_app(
    access_keys: dict[str, str] | None = None, *, state: AliyunState | None = None
) -> Flask:
    """Build the fake Aliyun SMS app (AccessKeyId -> secret); `access_keys` are added to a given `state`."""
    if state is None:
        state = AliyunState(access_keys)
    elif access_keys:
        state.access_keys.update(access_keys)
    app = Flask(__name__)
    app.extensions["aliyun_state"] = state
    register_error_handlers(app)
    register_api_routes(app, state)
    register_control_routes(app, state)
    redact_request_lines()  # PhoneNumbers and TemplateParam travel in the query string
    return app


def _parse_args(argv: Iterable[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m devservers.aliyun_sms", description=__doc__)
    parser.add_argument("--port", type=int, default=8093)
    parser.add_argument("--access-key-id", default=DEFAULT_ACCESS_KEY_ID)
    parser.add_argument("--access-key-secret", default=DEFAULT_ACCESS_KEY_SECRET)
    parser.add_argument(
        "--sign-name", action="append", help=f"registered signature (default {DEFAULT_SIGN_NAME})"
    )
    parser.add_argument(
        "--templates", help="JSON file {TemplateCode: text with ${var}} replacing the demo set"
    )
    parser.add_argument(
        "--template", action="append", default=[], metavar="CODE=TEXT", help="add one template"
    )
    parser.add_argument(
        "--report-url", help="SmsReport push URL, e.g. http://127.0.0.1:5000/sms/aliyun/report?secret=…"
    )
    parser.add_argument("--up-url", help="SmsUp push URL, e.g. http://127.0.0.1:5000/sms/aliyun/up?secret=…")
    parser.add_argument("--report-delay", type=float, default=1.0, help="seconds from send to receipt")
    parser.add_argument(
        "--limits", default="1,5,10", help="per number and signature: minute,hour,day (0 = off)"
    )
    parser.add_argument("--latency", type=float, default=0.0, help="seconds added to every API call")
    return parser.parse_args(list(argv) if argv is not None else None)


def main(argv: Iterable[str] | None = None) -> None:
    """CLI: serve the fake on 127.0.0.1 until interrupted."""
    from devservers.runner import serve_in_thread, serve_until_stopped

    args = _parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stdout, format="%(asctime)s %(name)s %(message)s")
    templates = dict(DEFAULT_TEMPLATES)
    if args.templates:
        with open(args.templates, encoding="utf-8") as fh:
            templates = json.load(fh)
    templates.update(item.partition("=")[::2] for item in args.template)
    minute, hour, day = (int(x) for x in args.limits.split(","))
    state = AliyunState(
        {args.access_key_id: args.access_key_secret},
        sign_names=args.sign_name or (DEFAULT_SIGN_NAME,),
        templates=templates,
        limits={"minute": minute, "hour": hour, "day": day},
        report_url=args.report_url,
        up_url=args.up_url,
        report_delay=args.report_delay,
    )
    state.latency = args.latency
    handle = serve_in_thread(create_aliyun_app(state=state), port=args.port)
    log.info(
        "fake Aliyun SMS on %s, AccessKeyId %s, templates %s",
        handle.url,
        args.access_key_id,
        ",".join(sorted(state.templates)),
    )
    serve_until_stopped(handle, state.close)


if __name__ == "__main__":
    main()
