"""A local stand-in for Twilio's 2010-04-01 Messages API, with status callbacks, inbound webhooks and faults.

The official `twilio` client talks to it over HTTP (see the module's tests for the rebasing HTTP client).
Privacy rule: nothing here logs a phone number or a message body; numbers are masked to their last 2 digits.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import heapq
import hmac
import itertools
import logging
import re
import secrets
import signal
import socket
import sys
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from email.utils import format_datetime
from hashlib import sha1
from typing import Any, NamedTuple
from urllib.parse import urlencode, urlsplit

import phonenumbers
import requests
from flask import Flask, Response, jsonify, request

log = logging.getLogger(__name__)

API_VERSION = "2010-04-01"
DEFAULT_ACCOUNT_SID = "ACa1b2c3d4e5f60718293a4b5c6d7e8f90"  # fictitious
DEFAULT_AUTH_TOKEN = "0f1e2d3c4b5a69788796a5b4c3d2e1f0"  # fictitious, for local use only
MESSAGING_SERVICE_FROM = "+15005550006"  # Twilio's magic "valid" From, used as the service's sender
MAX_BODY_CHARS = 1600

E164 = re.compile(r"^\+[1-9]\d{6,14}$")
_SHORT_CODE = re.compile(r"^\d{5,6}$")
_ALPHA_SENDER = re.compile(r"^(?=.*[A-Za-z])[A-Za-z0-9 ]{1,11}$")
_MESSAGING_SERVICE_SID = re.compile(r"^MG[0-9a-fA-F]{32}$")

# GSM 03.38: the basic set costs one septet, the extension set two (escape + char).
GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM7_EXTENSION = frozenset("^{}\\[~]|€\f")

# code -> (HTTP status, message template); templates may use {to}, {from_}, {url}, {mg}, {path}.
ERRORS: dict[int, tuple[int, str]] = {
    20001: (400, "Invalid parameter: {detail}"),
    20003: (401, "Authenticate"),
    20404: (404, "The requested resource {path} was not found"),
    20429: (429, "Too Many Requests"),
    20500: (500, "Internal Server Error"),
    20503: (503, "Service Unavailable"),
    21211: (400, "Invalid 'To' Phone Number: {to}"),
    21212: (
        400,
        "The 'From' number {from_} is not a valid phone number, shortcode, or alphanumeric sender ID.",
    ),
    21266: (400, "'To' and 'From' number cannot be the same: {to}"),
    21408: (
        400,
        "Permission to send an SMS has not been enabled for the region indicated by the 'To' number: {to}",
    ),
    21602: (400, "Message body is required."),
    21603: (400, "A 'From' phone number is required."),
    21604: (400, "A 'To' phone number is required."),
    21606: (
        400,
        "The From phone number {from_} is not a valid, SMS-capable inbound phone number "
        "or short code for your account.",
    ),
    21609: (400, "The StatusCallback URL {url} is not a valid URL."),
    21610: (400, "Attempt to send to unsubscribed recipient"),
    21611: (400, "This 'From' number has exceeded the maximum number of queued messages"),
    21612: (
        400,
        "The 'To' phone number: {to}, is not currently reachable using the 'From' phone number: "
        "{from_} via SMS.",
    ),
    21614: (400, "'To' number is not a valid mobile number"),
    21617: (400, "The concatenated message body exceeds the 1600 character limit."),
    21701: (400, "The Messaging Service Sid {mg} is invalid."),
}
DELIVERY_ERRORS = {
    30003: "Unreachable destination handset",
    30004: "Message blocked",
    30005: "Unknown destination handset",
    30006: "Landline or unreachable carrier",
    30007: "Message filtered",
    30008: "Unknown error",
}
# Twilio's documented magic test numbers (test credentials); cheap to honour everywhere.
MAGIC_TO = {
    "+15005550001": 21211,
    "+15005550002": 21612,
    "+15005550003": 21408,
    "+15005550004": 21610,
    "+15005550009": 21614,
}
MAGIC_FROM = {"+15005550001": 21212, "+15005550007": 21606, "+15005550008": 21611}
FAULT_KINDS = {"429": 20429, "500": 20500, "503": 20503, "timeout": None}
FINAL_STATUSES = {"delivered", "undelivered", "failed"}


def count_segments(body: str) -> int:
    """Number of SMS segments Twilio bills for `body`: GSM-7 160/153 septets, else UCS-2 70/67 units."""
    if all(c in GSM7_BASIC or c in GSM7_EXTENSION for c in body):
        units = [2 if c in GSM7_EXTENSION else 1 for c in body]
        single, per_part = 160, 153
    else:
        units = [2 if ord(c) > 0xFFFF else 1 for c in body]  # UTF-16 code units
        single, per_part = 70, 67
    if sum(units) <= single:
        return 1
    # An escape pair or surrogate pair is never split across two parts, so pack rather than divide.
    parts, used = 1, 0
    for unit in units:
        if used + unit > per_part:
            parts, used = parts + 1, 0
        used += unit
    return parts


def twilio_signature(auth_token: str, url: str, params: Mapping[str, str]) -> str:
    """X-Twilio-Signature: base64 HMAC-SHA1 over the URL followed by each sorted key and its value."""
    payload = url + "".join(f"{key}{params[key]}" for key in sorted(params))
    digest = hmac.new(auth_token.encode(), payload.encode(), sha1).digest()
    return base64.b64encode(digest).decode()


def mask_number(number: str | None) -> str:
    """Mask every digit but the last two, for logs: '+8613800138001' -> '+***********01'."""
    if not number:
        return "-"
    digits = sum(c.isdigit() for c in number)
    seen = 0
    out = []
    for c in number:
        if c.isdigit():
            seen += 1
            out.append(c if seen > digits - 2 else "*")
        else:
            out.append(c if c == "+" else "*")
    return "".join(out)


def _rfc2822(moment: datetime | None) -> str | None:
    return format_datetime(moment) if moment else None


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _country(number: str) -> str:
    try:
        return phonenumbers.region_code_for_country_code(phonenumbers.parse(number).country_code) or ""
    except phonenumbers.NumberParseException:
        return ""


@dataclass
class Outcome:
    """What happens to messages for one recipient: refused on create, or a final delivery status."""

    create_error: int | None = None
    final_status: str = "delivered"
    error_code: int | None = None


@dataclass
class Message:
    """One Message resource as the fake stores it."""

    sid: str
    account_sid: str
    to: str
    from_: str | None
    body: str
    status: str
    direction: str = "outbound-api"
    num_segments: int = 1
    num_media: int = 0
    messaging_service_sid: str | None = None
    status_callback: str | None = None
    date_created: datetime = field(default_factory=_utcnow)
    date_updated: datetime = field(default_factory=_utcnow)
    date_sent: datetime | None = None
    error_code: int | None = None
    error_message: str | None = None
    seq: int = 0
    steps: list[str] = field(default_factory=list)  # statuses still to come
    final_error_code: int | None = None

    @property
    def uri(self) -> str:
        return f"/{API_VERSION}/Accounts/{self.account_sid}/Messages/{self.sid}.json"

    def to_json(self) -> dict[str, Any]:
        """The resource's JSON, shaped like Twilio's (counts as strings, dates RFC 2822)."""
        return {
            "account_sid": self.account_sid,
            "api_version": API_VERSION,
            "body": self.body,
            "date_created": _rfc2822(self.date_created),
            "date_sent": _rfc2822(self.date_sent),
            "date_updated": _rfc2822(self.date_updated),
            "direction": self.direction,
            "error_code": self.error_code,
            "error_message": self.error_message,
            "from": self.from_,
            "messaging_service_sid": self.messaging_service_sid,
            "num_media": str(self.num_media),
            "num_segments": str(self.num_segments),
            "price": None,
            "price_unit": "USD",
            "sid": self.sid,
            "status": self.status,
            "subresource_uris": {"media": self.uri.replace(".json", "/Media.json")},
            "to": self.to,
            "uri": self.uri,
        }


@dataclass
class CallbackAttempt:
    """One webhook POST the fake made (status callback or inbound message) and how it went."""

    kind: str
    url: str
    params: dict[str, str]
    signature: str
    status_code: int | None = None
    response_body: str = ""
    content_type: str = ""
    error: str | None = None


class Duplicate(NamedTuple):
    to: str
    body: str
    count: int
    sids: list[str]


class TwilioError(Exception):
    """A Twilio API error response, raised inside request handling."""

    def __init__(self, code: int, **fields: Any) -> None:
        status, template = ERRORS.get(code, (400, "Error {code}"))
        self.code, self.status = code, status
        self.message = template.format_map(
            {"to": "", "from_": "", "url": "", "mg": "", "path": "", "detail": "", "code": code, **fields}
        )
        super().__init__(code)

    def response(self) -> Response:
        resp = jsonify(
            code=self.code,
            message=self.message,
            status=self.status,
            more_info=f"https://www.twilio.com/docs/errors/{self.code}",
        )
        resp.status_code = self.status
        if self.status == 401:
            resp.headers["WWW-Authenticate"] = 'Basic realm="Twilio API"'
        return resp


class TwilioState:
    """Everything the fake knows: accounts, messages, switches, webhook log. Thread-safe."""

    def __init__(
        self,
        accounts: Mapping[str, str] | None = None,
        *,
        callback_delay: float = 0.0,
        callbacks_enabled: bool = True,
        auto_advance: bool = True,
        callback_timeout: float = 5.0,
        hang_seconds: float = 30.0,
        clock: Callable[[], datetime] = _utcnow,
    ) -> None:
        self.accounts: dict[str, str] = dict(accounts or {DEFAULT_ACCOUNT_SID: DEFAULT_AUTH_TOKEN})
        self.callback_timeout = callback_timeout
        self.hang_seconds = hang_seconds
        self.clock = clock
        self._defaults = {
            "callback_delay": callback_delay,
            "callbacks_enabled": callbacks_enabled,
            "auto_advance": auto_advance,
        }
        self._lock = threading.RLock()
        self._changed = threading.Condition(self._lock)
        self._closing = threading.Event()
        self._seq = itertools.count(1)
        self._worker: threading.Thread | None = None
        self._busy = 0  # lifecycle steps running right now; survives reset()
        self._reset_locked()

    # ---- switches -------------------------------------------------------------------------------

    def reset(self) -> None:
        """Forget messages, webhooks, counters, faults and outcomes; keep accounts."""
        with self._lock:
            self._reset_locked()
            self._changed.notify_all()

    def _reset_locked(self) -> None:
        self.callback_delay: float = self._defaults["callback_delay"]
        self.callbacks_enabled: bool = self._defaults["callbacks_enabled"]
        self.auto_advance: bool = self._defaults["auto_advance"]
        self.latency_ms = 0
        self._messages: dict[str, Message] = {}
        self._inbound: list[Message] = []
        self._webhooks: list[CallbackAttempt] = []
        self._faults: deque[str] = deque()
        self._outcomes: dict[str, Outcome] = {}
        self._create_times: list[float] = []
        self._counters: Counter[str] = Counter()
        self._heap: list[tuple[float, int, str]] = []

    def fail_next(self, kind: str, times: int = 1) -> None:
        """Make the next `times` creates fail: "429", "500", "503", or "timeout" (hang, then hang up)."""
        if kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault {kind!r}; expected one of {sorted(FAULT_KINDS)}")
        with self._lock:
            self._faults.extend([kind] * times)

    def set_outcome(
        self,
        number: str,
        *,
        create_error: int | None = None,
        final_status: str | None = None,
        error_code: int | None = None,
    ) -> None:
        """Decide what happens to messages for `number`; a delivery error code alone means undelivered."""
        status = final_status or ("undelivered" if error_code else "delivered")
        if status not in FINAL_STATUSES:
            raise ValueError(f"final_status must be one of {sorted(FINAL_STATUSES)}")
        if status != "delivered" and error_code is None:
            error_code = 30008
        with self._lock:
            self._outcomes[number] = Outcome(create_error, status, error_code)

    def configure(self, settings: Mapping[str, Any]) -> None:
        """Apply a `/_control` JSON document (see `CONTROL_KEYS`)."""
        unknown = set(settings) - CONTROL_KEYS
        if unknown:
            raise ValueError(f"unknown control keys: {sorted(unknown)}")
        if settings.get("reset"):
            self.reset()
        with self._lock:
            if "latency_ms" in settings:
                self.latency_ms = int(settings["latency_ms"])
            if "hang_seconds" in settings:
                self.hang_seconds = float(settings["hang_seconds"])
            for key in ("callbacks_enabled", "auto_advance"):
                if key in settings:
                    setattr(self, key, bool(settings[key]))
            if "callback_delay" in settings:
                self.callback_delay = float(settings["callback_delay"])
        if "fail" in settings:
            self.fail_next(str(settings["fail"]), int(settings.get("times", 1)))
        for number, outcome in (settings.get("outcomes") or {}).items():
            self.set_outcome(number, **outcome)

    # ---- what tests read -------------------------------------------------------------------------

    @property
    def messages(self) -> list[Message]:
        """Outbound messages created through the API, oldest first (a snapshot)."""
        with self._lock:
            return list(self._messages.values())

    @property
    def inbound(self) -> list[Message]:
        """Inbound messages sent with `simulate_inbound`, oldest first."""
        with self._lock:
            return list(self._inbound)

    @property
    def webhooks(self) -> list[CallbackAttempt]:
        """Every status callback and inbound webhook POSTed, in order, with its result."""
        with self._lock:
            return list(self._webhooks)

    @property
    def create_timestamps(self) -> list[float]:
        """`time.monotonic()` of every authenticated create request, including refused ones."""
        with self._lock:
            return list(self._create_times)

    def get(self, sid: str) -> Message | None:
        """The message (outbound or inbound) with this sid, or None."""
        with self._lock:
            return self._messages.get(sid) or next((m for m in self._inbound if m.sid == sid), None)

    def sent_to(self, number: str) -> list[Message]:
        """Outbound messages created for `number`, oldest first."""
        return [m for m in self.messages if m.to == number]

    def duplicates(self) -> list[Duplicate]:
        """Bodies created more than once for the same recipient."""
        groups: dict[tuple[str, str], list[str]] = {}
        for m in self.messages:
            groups.setdefault((m.to, m.body), []).append(m.sid)
        return [Duplicate(to, body, len(sids), sids) for (to, body), sids in groups.items() if len(sids) > 1]

    def max_creates_per_second(self, window: float = 1.0) -> int:
        """Most create requests seen within any `window` seconds."""
        times, best, start = self.create_timestamps, 0, 0
        for end, moment in enumerate(times):
            while moment - times[start] >= window:
                start += 1
            best = max(best, end - start + 1)
        return best

    def counters(self) -> dict[str, Any]:
        """Counts for `GET /_control` (no numbers, no bodies)."""
        with self._lock:
            messages = list(self._messages.values())
            return {
                "messages": len(messages),
                "inbound": len(self._inbound),
                "by_status": dict(Counter(m.status for m in messages)),
                "creates_attempted": len(self._create_times),
                **dict(self._counters),
                "webhooks_failed": sum(1 for w in self._webhooks if w.error or (w.status_code or 0) >= 400),
                "max_creates_per_second": self.max_creates_per_second(),
                "pending_faults": list(self._faults),
                "outcomes": len(self._outcomes),
                "latency_ms": self.latency_ms,
                "callbacks_enabled": self.callbacks_enabled,
                "callback_delay": self.callback_delay,
                "auto_advance": self.auto_advance,
            }

    def wait_for_status(self, sid: str, *statuses: str, timeout: float = 5.0) -> Message:
        """Block until message `sid` reaches one of `statuses` (default: any final one)."""
        wanted = set(statuses) or FINAL_STATUSES
        with self._changed:
            if not self._changed.wait_for(
                lambda: (m := self.get(sid)) is not None and m.status in wanted, timeout
            ):
                raise TimeoutError(f"{sid} did not reach {sorted(wanted)}")
            return self.get(sid)  # type: ignore[return-value]

    def wait_idle(self, timeout: float = 5.0) -> None:
        """Block until no lifecycle step or status callback is pending or running."""
        with self._changed:
            if not self._changed.wait_for(lambda: not self._heap and not self._busy, timeout):
                raise TimeoutError("status lifecycle still busy")

    def close(self) -> None:
        """Stop the lifecycle thread and wake any request hanging in a "timeout" fault."""
        with self._lock:
            self._closing.set()
            self._changed.notify_all()
            worker = self._worker
        if worker is not None and worker is not threading.current_thread():
            worker.join(timeout=5)

    # ---- creating messages -----------------------------------------------------------------------

    def take_fault(self) -> str | None:
        with self._lock:
            self._create_times.append(time.monotonic())
            return self._faults.popleft() if self._faults else None

    def create_message(self, account_sid: str, form: Mapping[str, str], media: list[str]) -> dict[str, Any]:
        """Validate a create as Twilio does, store the message, start its lifecycle; return its JSON."""
        try:
            message = self._build_message(account_sid, form, media)
        except TwilioError as err:
            with self._lock:
                self._counters[f"create_error_{err.code}"] += 1
            raise
        with self._lock:
            self._messages[message.sid] = message
            created = message.to_json()  # before the lifecycle thread can move it on
            if self.auto_advance:
                self._schedule(message.sid)
            self._changed.notify_all()
        log.info("message %s to=%s segments=%d", message.sid, mask_number(message.to), message.num_segments)
        return created

    def _build_message(self, account_sid: str, form: Mapping[str, str], media: list[str]) -> Message:
        to, from_ = form.get("To", "").strip(), form.get("From", "").strip() or None
        service, body = form.get("MessagingServiceSid") or None, form.get("Body", "")
        callback = form.get("StatusCallback") or None
        if not to:
            raise TwilioError(21604)
        if not from_ and not service:
            raise TwilioError(21603)
        if not body and not media:
            raise TwilioError(21602)
        if len(body) > MAX_BODY_CHARS:
            raise TwilioError(21617)
        if not E164.match(to):
            raise TwilioError(21211, to=to)
        if from_ and not (E164.match(from_) or _SHORT_CODE.match(from_) or _ALPHA_SENDER.match(from_)):
            raise TwilioError(21212, from_=from_)
        if service and not _MESSAGING_SERVICE_SID.match(service):
            raise TwilioError(21701, mg=service)
        if callback and urlsplit(callback).scheme not in ("http", "https"):
            raise TwilioError(21609, url=callback)
        if to == from_:
            raise TwilioError(21266, to=to)
        if to in MAGIC_TO:
            raise TwilioError(MAGIC_TO[to], to=to, from_=from_ or "")
        if from_ in MAGIC_FROM:
            raise TwilioError(MAGIC_FROM[from_], from_=from_)
        with self._lock:
            outcome = self._outcomes.get(to, Outcome())
        if outcome.create_error:
            raise TwilioError(outcome.create_error, to=to, from_=from_ or "")
        now = self.clock().replace(microsecond=0)
        steps = ["queued"] if service else []
        steps += ["failed"] if outcome.final_status == "failed" else ["sent", outcome.final_status]
        return Message(
            sid="SM" + secrets.token_hex(16),
            account_sid=account_sid,
            to=to,
            from_=from_,
            body=body,
            status="accepted" if service else "queued",
            num_segments=count_segments(body),
            num_media=len(media),
            messaging_service_sid=service,
            status_callback=callback,
            date_created=now,
            date_updated=now,
            seq=next(self._seq),
            steps=steps,
            final_error_code=outcome.error_code,
        )

    def fetch_json(self, account_sid: str, sid: str) -> dict[str, Any] | None:
        """A consistent snapshot of one message's JSON, or None if the account has no such message."""
        with self._lock:
            message = self.get(sid)
            return message.to_json() if message and message.account_sid == account_sid else None

    def list_messages(self, account_sid: str, args: Mapping[str, str]) -> list[Message]:
        """Messages of `account_sid` matching Twilio's list filters, newest first."""
        filters = [
            (key, _parse_date_filter(key, args[key]))
            for key in ("DateSent", "DateSent>", "DateSent<")
            if args.get(key)
        ]
        with self._lock:
            found = [
                m
                for m in itertools.chain(self._messages.values(), self._inbound)
                if m.account_sid == account_sid
            ]
        found = [
            m
            for m in found
            if (not args.get("To") or m.to == args["To"])
            and (not args.get("From") or m.from_ == args["From"])
            and all(_date_matches(m.date_sent, key, value) for key, value in filters)
        ]
        return sorted(found, key=lambda m: (m.date_created, m.seq), reverse=True)

    # ---- lifecycle: queued -> sent -> delivered, with status callbacks ----------------------------

    def advance(self, sid: str) -> Message:
        """Move message `sid` one step along its lifecycle now, sending its status callback."""
        self._step(sid)
        with self._lock:
            return self._messages[sid]

    def _schedule(self, sid: str) -> None:
        heapq.heappush(self._heap, (time.monotonic() + self.callback_delay, next(self._seq), sid))
        if self._worker is None or not self._worker.is_alive():
            self._closing.clear()
            self._worker = threading.Thread(target=self._run_lifecycle, name="twilio-lifecycle", daemon=True)
            self._worker.start()
        self._changed.notify_all()

    def _run_lifecycle(self) -> None:
        while True:
            with self._changed:
                while not self._closing.is_set() and not self._step_due():
                    self._changed.wait(self._heap[0][0] - time.monotonic() if self._heap else None)
                if self._closing.is_set():
                    return
                _, _, sid = heapq.heappop(self._heap)
                self._busy += 1
            try:
                self._step(sid)
            except Exception as exc:  # a fake must never die quietly mid-test; record and go on
                log.exception("lifecycle step failed: %s", type(exc).__name__)
            finally:
                with self._changed:
                    self._busy -= 1
                    self._changed.notify_all()

    def _step_due(self) -> bool:
        return bool(self._heap) and self._heap[0][0] <= time.monotonic()

    def _step(self, sid: str) -> None:
        with self._lock:
            message = self._messages.get(sid)
            if message is None or not message.steps:
                return
            status = message.steps.pop(0)
            now = self.clock().replace(microsecond=0)
            message.status, message.date_updated = status, now
            if status == "queued" and message.from_ is None:
                message.from_ = MESSAGING_SERVICE_FROM
            if status in ("sent", "delivered", "undelivered") and message.date_sent is None:
                message.date_sent = now
            if status in ("undelivered", "failed"):
                message.error_code = message.final_error_code
                message.error_message = DELIVERY_ERRORS.get(message.error_code or 0)
            if message.steps and self.auto_advance:
                self._schedule(sid)
            self._changed.notify_all()
            url, token = message.status_callback, self.accounts[message.account_sid]
            params = _status_params(message, now) if url and self.callbacks_enabled else None
        if url and params:
            self._post_webhook("status", url, params, token)

    def _post_webhook(
        self, kind: str, url: str, params: dict[str, str], token: str, timeout: float | None = None
    ) -> CallbackAttempt:
        signature = twilio_signature(token, url, params)
        attempt = CallbackAttempt(kind=kind, url=url, params=params, signature=signature)
        headers = {
            "X-Twilio-Signature": signature,
            "User-Agent": "TwilioProxy/1.1",
            "I-Twilio-Idempotency-Token": secrets.token_hex(16),
        }
        try:
            with requests.post(
                url,
                data=params,
                headers=headers,
                timeout=timeout or self.callback_timeout,
                allow_redirects=False,
            ) as resp:
                attempt.status_code = resp.status_code
                attempt.content_type = resp.headers.get("Content-Type", "")
                # TwiML is XML, UTF-8 unless declared otherwise; requests would guess Latin-1 for text/xml.
                charset = resp.encoding if "charset" in attempt.content_type.lower() else "utf-8"
                attempt.response_body = resp.content.decode(charset or "utf-8", errors="replace")
        except requests.RequestException as exc:
            attempt.error = f"{type(exc).__name__}: {exc}"
        with self._lock:
            self._webhooks.append(attempt)
            self._counters[f"{kind}_webhooks"] += 1
            self._changed.notify_all()
        return attempt

    # ---- inbound ---------------------------------------------------------------------------------

    def simulate_inbound(
        self,
        url: str,
        from_: str,
        to: str,
        body: str,
        auth_token: str | None = None,
        message_sid: str | None = None,
        *,
        account_sid: str | None = None,
        messaging_service_sid: str | None = None,
        timeout: float = 15.0,
    ) -> CallbackAttempt:
        """POST a signed incoming-SMS webhook to `url` as Twilio does; returns the app's TwiML reply."""
        account_sid = account_sid or next(iter(self.accounts))
        token = auth_token or self.accounts[account_sid]
        sid = message_sid or "SM" + secrets.token_hex(16)
        params = {
            "ToCountry": _country(to),
            "ToState": "",
            "SmsMessageSid": sid,
            "NumMedia": "0",
            "ToCity": "",
            "FromZip": "",
            "SmsSid": sid,
            "FromState": "",
            "SmsStatus": "received",
            "FromCity": "",
            "Body": body,
            "FromCountry": _country(from_),
            "To": to,
            "ToZip": "",
            "NumSegments": str(count_segments(body)),
            "MessageSid": sid,
            "AccountSid": account_sid,
            "From": from_,
            "ApiVersion": API_VERSION,
        }
        if messaging_service_sid:
            params["MessagingServiceSid"] = messaging_service_sid
        now = self.clock().replace(microsecond=0)
        with self._lock:
            self._inbound.append(
                Message(
                    sid=sid,
                    account_sid=account_sid,
                    to=to,
                    from_=from_,
                    body=body,
                    status="received",
                    direction="inbound",
                    num_segments=int(params["NumSegments"]),
                    messaging_service_sid=messaging_service_sid,
                    date_created=now,
                    date_updated=now,
                    date_sent=now,
                    seq=next(self._seq),
                )
            )
        return self._post_webhook("inbound", url, params, token, timeout=timeout)


CONTROL_KEYS = frozenset(
    {
        "reset",
        "latency_ms",
        "hang_seconds",
        "callbacks_enabled",
        "auto_advance",
        "callback_delay",
        "fail",
        "times",
        "outcomes",
    }
)


def _status_params(message: Message, now: datetime) -> dict[str, str]:
    params = {
        "SmsSid": message.sid,
        "SmsStatus": message.status,
        "MessageStatus": message.status,
        "To": message.to,
        "MessageSid": message.sid,
        "AccountSid": message.account_sid,
        "From": message.from_ or "",
        "ApiVersion": API_VERSION,
    }
    if message.messaging_service_sid:
        params["MessagingServiceSid"] = message.messaging_service_sid
    if message.status in ("undelivered", "failed") and message.error_code:
        params["ErrorCode"] = str(message.error_code)
    if message.status in ("delivered", "undelivered"):
        params["RawDlrDoneDate"] = now.strftime("%y%m%d%H%M")
    return params


def _parse_date_filter(key: str, value: str) -> date | datetime:
    try:
        if len(value) == 10:
            return date.fromisoformat(value)
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise TwilioError(20001, detail=f"{key} must be YYYY-MM-DD or YYYY-MM-DDTHH:MM:SSZ") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _date_matches(sent: datetime | None, key: str, value: date | datetime) -> bool:
    if sent is None:
        return False
    mine: date | datetime = sent if isinstance(value, datetime) else sent.date()
    if key == "DateSent>":
        return mine >= value
    if key == "DateSent<":
        return mine <= value
    # Twilio documents DateSent as a day; the client serialises even a date as midnight UTC.
    return sent.date() == (value.date() if isinstance(value, datetime) else value)


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


def _hang_up(state: TwilioState) -> Response:
    """The "timeout" fault: say nothing for longer than any sane client waits, then drop the line."""
    state._closing.wait(state.hang_seconds)
    sock = request.environ.get("werkzeug.socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
    return Response(status=504)


def register_api_routes(app: Flask, state: TwilioState) -> None:
    """The Messages resource under /2010-04-01, with Basic auth and injected faults."""
    prefix = f"/{API_VERSION}/Accounts/<account_sid>/Messages"

    @app.before_request
    def _latency() -> None:
        if state.latency_ms and request.path.startswith(f"/{API_VERSION}/"):
            state._closing.wait(state.latency_ms / 1000)

    @app.post(f"{prefix}.json")
    def create_message(account_sid: str):
        _authenticate(state, account_sid)
        fault = state.take_fault()
        if fault == "timeout":
            return _hang_up(state)
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

    @app.get("/_control")
    def counters():
        return jsonify(state.counters())

    @app.post("/_control")
    def configure():
        try:
            state.configure(request.get_json(force=True) or {})
        except (ValueError, TypeError) as exc:
            return jsonify(error=str(exc)), 400
        return jsonify(state.counters())

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


class _RedactQueryStrings(logging.Filter):
    """Access-log lines carry query strings such as `?To=+86...`; cut them before they reach a log."""

    _query = re.compile(r"\?[^\s\"]*")

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if "?" in message:
            record.msg, record.args = self._query.sub("?…", message), ()
        return True


def redact_access_logs() -> None:
    """Install the query-string redaction on werkzeug's access log, once."""
    logger = logging.getLogger("werkzeug")
    if not any(isinstance(f, _RedactQueryStrings) for f in logger.filters):
        logger.addFilter(_RedactQueryStrings())


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
    from devservers.runner import serve_in_thread

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
    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())  # `make run` stops us with SIGTERM
    try:
        while handle.thread.is_alive() and not stopping.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        state.close()
        handle.stop()


if __name__ == "__main__":
    main()
