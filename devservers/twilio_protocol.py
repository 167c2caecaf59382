"""Twilio's wire protocol as the local Twilio server speaks it: constants, errors, segments, signatures.

Kept apart from the server's state and routes so each can be read on its own.
"""

from __future__ import annotations

import base64
import hmac
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from email.utils import format_datetime
from hashlib import sha1
from typing import Any, NamedTuple

import phonenumbers
from flask import Response, jsonify

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
