"""A local stand-in for Tencent Cloud SMS (API 2021-01-11): signed SendSms and status pulls, reports, replies.

The official `tencentcloud-sdk-python-sms` client talks to it with
`HttpProfile(endpoint="127.0.0.1:PORT", protocol="http")`. Privacy rule: nothing here logs a whole phone
number or a message body.
"""

from __future__ import annotations

import argparse
import hmac
import json
import logging
import sys
from collections.abc import Iterable

from flask import Flask, Response, jsonify, request

from devservers.control import add_latency, hang_up, register_control_switches
from devservers.tencent_protocol import (  # re-exported: callers import these from here
    API_VERSION,
    DEFAULT_APP_ID,
    DEFAULT_SECRET_ID,
    DEFAULT_SECRET_KEY,
    DEFAULT_SIGN,
    MAX_CLOCK_SKEW,
    REGIONS,
    SERVICE,
    CallbackAttempt,
    Sent,
    Template,
    TencentError,
    mask_number,
    parse_authorization,
    tc3_signature,
)
from devservers.tencent_state import TencentState

__all__ = [
    "DEFAULT_APP_ID",
    "DEFAULT_SECRET_ID",
    "DEFAULT_SECRET_KEY",
    "DEFAULT_SIGN",
    "CallbackAttempt",
    "Sent",
    "Template",
    "TencentError",
    "TencentState",
    "create_tencent_app",
    "mask_number",
    "tc3_signature",
]

log = logging.getLogger("devservers.tencent_sms")


def _authenticate(state: TencentState) -> None:
    """Check the TC3-HMAC-SHA256 Authorization exactly as published, against the configured SecretKey."""
    auth = parse_authorization(request.headers.get("Authorization"))
    try:
        timestamp = int(request.headers.get("X-TC-Timestamp", ""))
    except ValueError:
        raise TencentError("MissingParameter", "X-TC-Timestamp") from None
    if abs(state.clock() - timestamp) > MAX_CLOCK_SKEW:
        raise TencentError("AuthFailure.SignatureExpire")
    key = state.credentials.get(auth.secret_id)
    if key is None:
        raise TencentError("AuthFailure.SecretIdNotFound")
    headers = {name.lower(): value for name, value in request.headers.items()}
    expected = tc3_signature(
        key,
        method=request.method,
        uri=request.path,
        query=request.query_string.decode("latin-1"),
        headers=headers,
        signed_headers=auth.signed_headers,
        payload=request.get_data(cache=True),
        timestamp=timestamp,
        service=auth.service,
        unsigned_payload=headers.get("x-tc-content-sha256") == "UNSIGNED-PAYLOAD",
    )
    if auth.service != SERVICE or not hmac.compare_digest(expected, auth.signature):
        raise TencentError("AuthFailure.SignatureFailure")


def register_api_routes(app: Flask, state: TencentState) -> None:
    """`POST /`: every action, chosen by X-TC-Action, as the SDK sends it."""
    actions = {"SendSms": state.send_sms, "PullSmsSendStatusByPhoneNumber": state.pull_status}

    @app.post("/")
    def api():
        add_latency(state._closing, state.latency_ms / 1000)
        _authenticate(state)
        action, version = request.headers.get("X-TC-Action", ""), request.headers.get("X-TC-Version", "")
        region = request.headers.get("X-TC-Region", "")
        if action not in actions:
            raise TencentError("InvalidAction", action)
        if version != API_VERSION:
            raise TencentError("NoSuchVersion", version)
        if not region:
            raise TencentError("MissingParameter", "Region")
        if region not in REGIONS:
            raise TencentError("UnsupportedRegion", region)
        fault = state.take_fault(action)
        if fault == "hang":
            return hang_up(state._closing, state.hang_seconds)
        if fault == "http502":
            return Response("<html><body>502 Bad Gateway</body></html>", status=502, mimetype="text/html")
        if fault:
            raise TencentError(fault, "20")
        try:
            body = json.loads(request.get_data(cache=True) or b"{}")
        except ValueError:
            raise TencentError("InvalidParameter", "body") from None
        if not isinstance(body, dict):
            raise TencentError("InvalidParameter", "body")
        return jsonify(Response=actions[action](body))


def register_control_routes(app: Flask, state: TencentState) -> None:
    """`/_control`: switches and counters; `/_control/reply` makes a participant answer."""
    register_control_switches(app, state)

    @app.post("/_control/reply")
    def reply():
        doc = request.get_json(force=True) or {}
        if "mobile" not in doc or "text" not in doc:
            return jsonify(error="mobile and text are required"), 400
        try:
            attempts = state.simulate_reply(
                doc["mobile"],
                doc["text"],
                sign=doc.get("sign"),
                extend=doc.get("extend", ""),
                url=doc.get("url"),
            )
        except ValueError as exc:
            return jsonify(error=str(exc)), 400
        last = attempts[-1]
        return jsonify(
            attempts=len(attempts), accepted=last.accepted, status=last.status_code, body=last.body
        )


def register_error_handlers(app: Flask) -> None:
    """Tencent-shaped errors: HTTP 200 with Response.Error, as the SDK expects."""

    @app.errorhandler(TencentError)
    def _tencent_error(err: TencentError):
        log.info("error %s", err.code)
        return err.response()


def create_tencent_app(
    credentials: dict[str, str] | None = None, *, state: TencentState | None = None
) -> Flask:
    """Build the fake Tencent Cloud SMS app (SecretId -> SecretKey), adding `credentials` to `state`."""
    if state is None:
        state = TencentState(credentials)
    elif credentials:
        state.credentials.update(credentials)
    app = Flask(__name__)
    app.extensions["tencent_state"] = state
    register_error_handlers(app)
    register_api_routes(app, state)
    register_control_routes(app, state)
    return app


def _template_arg(value: str) -> tuple[str, str]:
    tid, sep, text = value.partition("=")
    if not sep or not tid.strip():
        raise argparse.ArgumentTypeError("expected ID=TEXT, e.g. 2000001=您的{1}随访已开放")
    return tid.strip(), text


def main(argv: Iterable[str] | None = None) -> None:
    """CLI: serve the fake on 127.0.0.1 until interrupted."""
    from devservers.runner import serve_in_thread, serve_until_stopped

    parser = argparse.ArgumentParser(prog="python -m devservers.tencent_sms", description=__doc__)
    parser.add_argument("--port", type=int, default=8094)
    parser.add_argument("--secret-id", default=DEFAULT_SECRET_ID)
    parser.add_argument("--secret-key", default=DEFAULT_SECRET_KEY)
    parser.add_argument(
        "--app-id", action="append", help=f"SmsSdkAppId (repeatable; default {DEFAULT_APP_ID})"
    )
    parser.add_argument(
        "--sign", action="append", help=f"approved SignName (repeatable; default {DEFAULT_SIGN})"
    )
    parser.add_argument("--template", action="append", type=_template_arg, help="ID=TEXT (repeatable)")
    parser.add_argument(
        "--status-url", help="where delivery reports are pushed, e.g. …/sms/tencent/status?secret=…"
    )
    parser.add_argument("--reply-url", help="where replies are pushed, e.g. …/sms/tencent/reply?secret=…")
    parser.add_argument(
        "--report-delay", type=float, default=1.0, help="seconds from send to delivery report"
    )
    parser.add_argument("--latency-ms", type=int, default=0)
    parser.add_argument(
        "--daily-limit", type=int, default=10, help="texts per number per Beijing day (0 = off)"
    )
    parser.add_argument("--max-param-chars", type=int, default=0, help="longest template parameter (0 = off)")
    args = parser.parse_args(list(argv) if argv is not None else None)

    logging.basicConfig(level=logging.INFO, stream=sys.stdout, format="%(asctime)s %(name)s %(message)s")
    state = TencentState(
        {args.secret_id: args.secret_key},
        apps=args.app_id or (DEFAULT_APP_ID,),
        signs=args.sign or (DEFAULT_SIGN,),
        templates=dict(args.template) if args.template else None,
        status_url=args.status_url,
        reply_url=args.reply_url,
        report_delay=args.report_delay,
        daily=args.daily_limit or None,
        max_param_chars=args.max_param_chars or None,
    )
    state.latency_ms = args.latency_ms
    handle = serve_in_thread(create_tencent_app(state=state), port=args.port)
    log.info(
        "fake Tencent Cloud SMS on %s, SecretId %s, apps %s", handle.url, args.secret_id, sorted(state.apps)
    )
    serve_until_stopped(handle, state.close)


if __name__ == "__main__":
    main()
