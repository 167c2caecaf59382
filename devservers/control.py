"""What the local servers share around their switches and faults (the REDCap one uses `drop_connection`).

The `/_control` routes, the checks on a control document and a fault name, added latency, the hang-up
fault and the access-log redaction were copied into each server; one copy here keeps their behaviour the
same. Each server keeps what is its own: its control keys, its fault kinds and its provider's wire format.
"""

from __future__ import annotations

import contextlib
import logging
import re
import socket
import threading
from collections import deque
from collections.abc import Collection, Mapping
from typing import Any, Protocol

from flask import Flask, Response, jsonify, request


class Switchable(Protocol):
    """A server state that `/_control` can read and configure."""

    def counters(self) -> dict[str, Any]: ...

    def configure(self, settings: Mapping[str, Any]) -> None: ...


def register_control_switches(app: Flask, state: Switchable) -> None:
    """`GET /_control` answers the counters; `POST /_control` applies a document, or 400 with its error.

    A bad document (unknown key, unknown fault, a value of the wrong type) changes nothing and says why.
    """

    @app.get("/_control")
    def counters() -> Response:
        return jsonify(state.counters())

    @app.post("/_control")
    def configure() -> Response | tuple[Response, int]:
        try:
            state.configure(request.get_json(force=True) or {})
        except (ValueError, TypeError) as exc:
            return jsonify(error=str(exc)), 400
        return jsonify(state.counters())


def check_control_keys(settings: Mapping[str, Any], known: Collection[str]) -> None:
    """Refuse a control document with a key the server does not know, before any of it is applied."""
    unknown = set(settings) - set(known)
    if unknown:
        raise ValueError(f"unknown control keys: {sorted(unknown)}")


class FaultQueue:
    """Faults to play on the next calls, in order; one may be kept for one action. Use under the lock."""

    def __init__(self, known: Collection[str]) -> None:
        self.known = known
        self._queue: deque[tuple[str, str | None]] = deque()

    def add(self, kind: str, times: int = 1, action: str | None = None) -> None:
        """Queue `kind` for the next `times` calls (of `action`, or any); an unknown kind is refused."""
        if kind not in self.known:  # so a typo in a test fails instead of doing nothing
            raise ValueError(f"unknown fault {kind!r}; expected one of {sorted(self.known)}")
        self._queue.extend([(kind, action)] * times)

    def take(self, action: str | None = None) -> str | None:
        """The first fault queued for this call's `action` (or for any), removed; None if there is none."""
        for i, (kind, only) in enumerate(self._queue):
            if only in (None, action):
                del self._queue[i]
                return kind
        return None

    @property
    def pending(self) -> list[str]:
        """The kinds still queued, in order (for the counters)."""
        return [kind for kind, _ in self._queue]


def add_latency(wake: threading.Event, seconds: float) -> None:
    """Answer `seconds` later, as a slow provider does; `wake` (the server closing) cuts the wait short."""
    if seconds:
        wake.wait(seconds)


def drop_connection() -> Response:
    """Shut the request's socket, so the client sees the line go dead rather than an answer."""
    sock = request.environ.get("werkzeug.socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
    return Response(status=504)


def hang_up(wake: threading.Event, seconds: float) -> Response:
    """The "timeout" fault: say nothing for longer than any sane client waits, then drop the line."""
    wake.wait(seconds)
    return drop_connection()


QUERY_STRING = r"\?[^\s\"]*"  # up to the first blank or quote: enough for Twilio's request lines


class _RedactQueryStrings(logging.Filter):
    """Access-log lines carry query strings such as `?To=+86...`; cut them before they reach a log."""

    def __init__(self, pattern: str) -> None:
        super().__init__()
        self.pattern = pattern
        self._query = re.compile(pattern)

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if "?" in message:
            record.msg, record.args = self._query.sub("?…", message), ()
        return True


def redact_access_logs(pattern: str = QUERY_STRING) -> None:
    """Install the redaction of `pattern` (a query string) on werkzeug's access log, once per pattern."""
    logger = logging.getLogger("werkzeug")
    if not any(isinstance(f, _RedactQueryStrings) and f.pattern == pattern for f in logger.filters):
        logger.addFilter(_RedactQueryStrings(pattern))
