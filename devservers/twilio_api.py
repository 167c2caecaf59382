"""A local stand-in for Twilio's 2010-04-01 Messages API, with status callbacks, inbound webhooks and faults.

The official `twilio` client talks to it over HTTP (see the module's tests for the rebasing HTTP client).
Privacy rule: nothing here logs a phone number or a message body; numbers are masked to their last 2 digits.
"""

from __future__ import annotations

import argparse
import hmac
import logging
import sys
from collections.abc import Iterable
from urllib.parse import urlencode

from flask import Flask, Response, jsonify, request

from devservers.control import add_latency, hang_up, redact_access_logs, register_control_switches
from devservers.twilio_protocol import (  # re-exported: callers import these from here
    API_VERSION,
    DEFAULT_ACCOUNT_SID,
    DEFAULT_AUTH_TOKEN,
    FAULT_KINDS,
    CallbackAttempt,
    Duplicate,
    Message,
    TwilioError,
    count_segments,
    mask_number,
    twilio_signature,
)
from devservers.twilio_state import TwilioState

__all__ = [
    "DEFAULT_ACCOUNT_SID",
    "DEFAULT_AUTH_TOKEN",
    "CallbackAttempt",
    "Duplicate",
    "Message",
    "TwilioError",
    "TwilioState",
    "count_segments",
    "create_twilio_app",
    "mask_number",
    "twilio_signature",
]

# One logger name for the whole fake, whichever module writes.
log = logging.getLogger("devservers.twilio_api")


def _page(state: TwilioState, account_sid: str) -> Response:
    """One page of the Messages list, with Twilio's paging keys."""
    args = request.args
    try:
        size = min(max(int(args.get("PageSize", 50)), 1), 1000)
        number = max(int(args.get("Page", 0)), 0)
    except ValueError:
        raise TwilioError(20001, detail="Page and PageSize must be integers") from None
    found = state.list_messages(account_sid, args)
    start = number * size
    token = args.get("PageToken", "")
    after = next((i + 1 for i, m in enumerate(found) if "PA" + m.sid == token), None)
    if after is not None:  # a cursor stays right when new messages arrive between pages
        start = after
    with state._lock:
        chunk = [m.to_json() for m in found[start : start + size]]
    base = f"/{API_VERSION}/Accounts/{account_sid}/Messages.json"
    kept = [(k, v) for k, v in args.items(multi=True) if k not in ("Page", "PageSize", "PageToken")]

    def uri(page: int, page_token: str | None = None) -> str:
        extra = [("PageSize", size), ("Page", page)] + ([("PageToken", page_token)] if page_token else [])
        return f"{base}?{urlencode(kept + extra)}"

    more = start + size < len(found)
    return jsonify(
        messages=chunk,
        page=number,
        page_size=size,
        start=start,
        end=start + max(len(chunk) - 1, 0),
        uri=uri(number, token or None),
        first_page_uri=uri(0),
        next_page_uri=uri(number + 1, "PA" + chunk[-1]["sid"]) if more and chunk else None,
        previous_page_uri=uri(number - 1) if number > 0 else None,
    )


def _authenticate(state: TwilioState, account_sid: str) -> None:
    auth = request.authorization
    if (
        auth is None
        or auth.type != "basic"
        or not auth.username
        or not hmac.compare_digest(state.accounts.get(auth.username, "\0"), auth.password or "")
    ):
        raise TwilioError(20003)
    if auth.username != account_sid:
        raise TwilioError(20404, path=request.path)


def register_api_routes(app: Flask, state: TwilioState) -> None:
    """The Messages resource under /2010-04-01, with Basic auth and injected faults."""
    prefix = f"/{API_VERSION}/Accounts/<account_sid>/Messages"

    @app.before_request
    def _latency() -> None:
        if request.path.startswith(f"/{API_VERSION}/"):
            add_latency(state._closing, state.latency_ms / 1000)

    @app.post(f"{prefix}.json")
    def create_message(account_sid: str):
        _authenticate(state, account_sid)
        fault = state.take_fault()
        if fault == "timeout":
            return hang_up(state._closing, state.hang_seconds)
        if fault:
            raise TwilioError(FAULT_KINDS[fault])
        return jsonify(state.create_message(account_sid, request.form, request.form.getlist("MediaUrl"))), 201

    @app.get(f"{prefix}.json")
    def list_messages(account_sid: str):
        _authenticate(state, account_sid)
        return _page(state, account_sid)

    @app.get(f"{prefix}/<sid>.json")
    def fetch_message(account_sid: str, sid: str):
        _authenticate(state, account_sid)
        found = state.fetch_json(account_sid, sid)
        if found is None:
            raise TwilioError(20404, path=request.path)
        return jsonify(found)


def register_control_routes(app: Flask, state: TwilioState) -> None:
    """`/_control`: switches and counters over HTTP, and `/_control/inbound` to fake an incoming SMS."""
    register_control_switches(app, state)

    @app.post("/_control/inbound")
    def inbound():
        doc = request.get_json(force=True) or {}
        missing = [k for k in ("url", "from", "to", "body") if k not in doc]
        if missing:
            return jsonify(error=f"missing keys: {missing}"), 400
        result = state.simulate_inbound(
            doc["url"],
            doc["from"],
            doc["to"],
            doc["body"],
            doc.get("auth_token"),
            doc.get("message_sid"),
            account_sid=doc.get("account_sid"),
            messaging_service_sid=doc.get("messaging_service_sid"),
        )
        return jsonify(
            message_sid=result.params["MessageSid"],
            status=result.status_code,
            body=result.response_body,
            content_type=result.content_type,
            error=result.error,
        )


def register_error_handlers(app: Flask) -> None:
    """Twilio-shaped JSON for API errors and for unknown API paths."""

    @app.errorhandler(TwilioError)
    def _twilio_error(err: TwilioError):
        return err.response()

    @app.errorhandler(404)
    @app.errorhandler(405)
    def _not_found(err):
        if request.path.startswith(f"/{API_VERSION}/"):
            return TwilioError(20404, path=request.path).response()
        return err


def create_twilio_app(accounts: dict[str, str] | None = None, *, state: TwilioState | None = None) -> Flask:
    """Build the fake Twilio API app (AccountSid -> AuthToken); `accounts` are added to a given `state`."""
    if state is None:
        state = TwilioState(accounts)
    elif accounts:
        state.accounts.update(accounts)
    app = Flask(__name__)
    app.extensions["twilio_state"] = state
    register_error_handlers(app)
    register_api_routes(app, state)
    register_control_routes(app, state)
    redact_access_logs()
    return app


def main(argv: Iterable[str] | None = None) -> None:
    """CLI: serve the fake on 127.0.0.1 until interrupted."""
    from devservers.runner import serve_in_thread, serve_until_stopped

    parser = argparse.ArgumentParser(prog="python -m devservers.twilio_api", description=__doc__)
    parser.add_argument("--port", type=int, default=8082)
    parser.add_argument("--account-sid", default=DEFAULT_ACCOUNT_SID)
    parser.add_argument("--auth-token", default=DEFAULT_AUTH_TOKEN)
    parser.add_argument("--callback-delay", type=float, default=1.0, help="seconds between status steps")
    parser.add_argument("--no-callbacks", action="store_true", help="advance statuses but POST nothing")
    parser.add_argument("--latency-ms", type=int, default=0)
    args = parser.parse_args(list(argv) if argv is not None else None)

    logging.basicConfig(level=logging.INFO, stream=sys.stdout, format="%(asctime)s %(name)s %(message)s")
    state = TwilioState(
        {args.account_sid: args.auth_token},
        callback_delay=args.callback_delay,
        callbacks_enabled=not args.no_callbacks,
    )
    state.latency_ms = args.latency_ms
    handle = serve_in_thread(create_twilio_app(state=state), port=args.port)
    log.info("fake Twilio API on %s, account %s", handle.url, args.account_sid)
    serve_until_stopped(handle, state.close)


if __name__ == "__main__":
    main()
