"""Tencent Cloud SMS (API 2021-01-11) as the local server speaks it: errors, TC3 signing, numbers, templates.

Kept apart from the server's state and routes so each can be read on its own. Codes and messages follow the
SDK's own `tencentcloud/sms/v20210111/errorcodes.py` and Tencent's published error pages.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from flask import Response, jsonify

API_VERSION = "2021-01-11"
SERVICE = "sms"
ALGORITHM = "TC3-HMAC-SHA256"
REGIONS = frozenset({"ap-guangzhou", "ap-beijing", "ap-nanjing"})  # the regions SMS 2021-01-11 accepts
MAX_CLOCK_SKEW = 300  # seconds; Tencent: "Timestamp and server time cannot differ by more than five minutes"
MAX_NUMBERS = 200  # per SendSms request
BEIJING = timezone(timedelta(hours=8))  # Tencent's "natural day" for the daily limit

DEFAULT_SECRET_ID = "AKIDlocal0fake0secret0id0for0devserver00"  # fictitious
DEFAULT_SECRET_KEY = "localFakeSecretKeyForDevserverOnly0"  # fictitious, for local use only
DEFAULT_APP_ID = "1400000001"
DEFAULT_SIGN = "随访研究"
BANNED_WORDS = ("问卷调查",)

# Mainland mobile numbers: +86, then 1[3-9] and nine digits. Tencent also takes 0086…, 86… and bare 11 digits.
_MAINLAND = re.compile(r"^(?:\+86|0086|86)?(1[3-9]\d{9})$")
_URL = re.compile(r"(?i)(https?://|www\.|\b[a-z0-9-]+\.(?:com|cn|net|org|top|xyz|info|cc|io)\b)")
_PLACEHOLDER = re.compile(r"\{(\d+)\}")
_AUTH = re.compile(
    r"^TC3-HMAC-SHA256 Credential=(?P<id>[^/,\s]+)/(?P<date>\d{4}-\d{2}-\d{2})/"
    r"(?P<service>[^/,\s]+)/tc3_request,"
    r"\s*SignedHeaders=(?P<headers>[a-z0-9;-]+),\s*Signature=(?P<sig>[0-9a-f]{64})$"
)

# Top-level errors ({"Response": {"Error": …}}) and per-number codes (in SendStatusSet) share one table.
MESSAGES: dict[str, str] = {
    "AuthFailure.InvalidAuthorization": "Authorization in the request header is invalid.",
    "AuthFailure.SecretIdNotFound": "The SecretId is not found, please ensure that your SecretId is correct.",
    "AuthFailure.SignatureExpire": (
        "The provided credentials could not be validated because of exceeding request validity period, "
        "please ensure your system time is correct."
    ),
    "AuthFailure.SignatureFailure": (
        "The provided credentials could not be validated. Please check your signature is correct."
    ),
    "InvalidAction": "The requested action `{detail}` does not exist.",
    "NoSuchVersion": "The requested version `{detail}` of action is invalid.",
    "UnsupportedRegion": "The action does not support the region `{detail}`.",
    "MissingParameter": "The request is missing a required parameter `{detail}`.",
    "InvalidParameter": "The value type of parameter `{detail}` is not valid.",
    "InternalError": (
        "An internal error has occurred. Retry your request, but if the problem persists, contact us."
    ),
    "RequestLimitExceeded": (
        "Your current request times equals to `{detail}` in a second, which exceeds the frequency limit. "
        "Please reduce the frequency of calls."
    ),
    "MissingParameter.EmptyPhoneNumberSet": "the phone number set is empty",
    "LimitExceeded.PhoneNumberCountLimit": "the number of phone numbers in a request exceeds 200",
    "InvalidParameterValue.SdkAppIdNotExist": "the SdkAppId does not exist",
    "FailedOperation.SignatureIncorrectOrUnapproved": (
        "signature format is wrong or signature is not approved"
    ),
    "FailedOperation.TemplateIncorrectOrUnapproved": (
        "template is not approved or request content does not match the approved template content"
    ),
    "FailedOperation.TemplateParamSetNotMatchApprovedTemplate": (
        "request content does not match the approved template content, "
        "check the number of template parameters"
    ),
    "InvalidParameterValue.TemplateParameterFormatError": "Verification code template parameter format error",
    "InvalidParameterValue.TemplateParameterLengthLimit": (
        "single variable's content exceeds the length limit"
    ),
    "InvalidParameterValue.ProhibitedUseUrlInTemplateParameter": "Prohibited use url in template parameter",
    "FailedOperation.ContainSensitiveWord": "content contains sensitive words",
    "FailedOperation.PhoneNumberInBlacklist": "phone number in black list",
    "InvalidParameterValue.IncorrectPhoneNumber": "invalid mobile number",
    "LimitExceeded.PhoneNumberThirtySecondLimit": (
        "the number of sms messages with the same content sent to a single mobile number within 30 seconds "
        "exceeds the upper limit"
    ),
    "LimitExceeded.PhoneNumberOneHourLimit": (
        "the number of sms messages sent to a single mobile number within 1 hour exceeds the upper limit"
    ),
    "LimitExceeded.PhoneNumberDailyLimit": (
        "the number of sms messages sent from a single mobile number every day exceeds the upper limit"
    ),
    "InvalidParameterValue.LimitVerifyFail": "Limit verification failed, at most 100",
    "InvalidParameterValue.OffsetVerifyFail": "Offset verification failed",
    "InvalidParameterValue.InvalidStartTime": "BeginTime is later than EndTime",
}
OK_MESSAGE = "send success"
FAULT_KINDS = frozenset({"RequestLimitExceeded", "InternalError", "hang", "http502"})


class TencentError(Exception):
    """A top-level API error: HTTP 200 with {"Response": {"Error": {Code, Message}, "RequestId"}}."""

    def __init__(self, code: str, detail: str = "") -> None:
        self.code = code
        self.message = MESSAGES.get(code, code).format(detail=detail)
        super().__init__(code)

    def response(self) -> Response:
        return jsonify(
            Response={"Error": {"Code": self.code, "Message": self.message}, "RequestId": request_id()}
        )


def request_id() -> str:
    return str(uuid.uuid4())


def _hmac(key: bytes, msg: str) -> bytes:
    return hmac.new(key, msg.encode("utf-8"), hashlib.sha256).digest()


def tc3_signature(
    secret_key: str,
    *,
    method: str,
    uri: str,
    query: str,
    headers: dict[str, str],
    signed_headers: str,
    payload: bytes,
    timestamp: int,
    service: str = SERVICE,
    unsigned_payload: bool = False,
) -> str:
    """Tencent's published TC3-HMAC-SHA256 signature, computed from the request as received."""
    names = signed_headers.split(";")
    canonical_headers = "".join(f"{n}:{headers.get(n, '').strip().lower()}\n" for n in names)
    body_hash = hashlib.sha256(b"UNSIGNED-PAYLOAD" if unsigned_payload else payload).hexdigest()
    canonical = "\n".join([method, uri, query, canonical_headers, signed_headers, body_hash])
    date = datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d")
    scope = f"{date}/{service}/tc3_request"
    to_sign = "\n".join(
        [ALGORITHM, str(timestamp), scope, hashlib.sha256(canonical.encode("utf-8")).hexdigest()]
    )
    key = _hmac(_hmac(_hmac(("TC3" + secret_key).encode("utf-8"), date), service), "tc3_request")
    return hmac.new(key, to_sign.encode("utf-8"), hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class Authorization:
    """The parts of a TC3 Authorization header."""

    secret_id: str
    date: str
    service: str
    signed_headers: str
    signature: str


def parse_authorization(header: str | None) -> Authorization:
    """Split the header, or raise AuthFailure.InvalidAuthorization."""
    match = _AUTH.match((header or "").strip())
    if not match or "host" not in match["headers"].split(";"):
        raise TencentError("AuthFailure.InvalidAuthorization")
    return Authorization(match["id"], match["date"], match["service"], match["headers"], match["sig"])


def mainland_number(number: object) -> str | None:
    """'+8613800138000' (or 0086…, 86…, bare 11 digits) -> '13800138000'; None if not a mainland mobile."""
    if not isinstance(number, str):
        return None
    match = _MAINLAND.match(number.strip())
    return match[1] if match else None


def mask_number(number: str | None) -> str:
    """Every digit but the last two masked, for logs."""
    if not number:
        return "-"
    return re.sub(r"\d(?=(?:\D*\d){2})", "*", number)


def placeholders(text: str) -> int:
    """How many parameters a template takes: the highest {n}."""
    return max((int(n) for n in _PLACEHOLDER.findall(text)), default=0)


def render(text: str, params: list[str]) -> str:
    return _PLACEHOLDER.sub(lambda m: params[int(m[1]) - 1], text)


def has_url(value: str) -> bool:
    return bool(_URL.search(value))


def fee(content: str) -> int:
    """Billed parts for a domestic text, signature included: 70 characters in one, else 67 per part."""
    return 1 if len(content) <= 70 else math.ceil(len(content) / 67)


@dataclass
class Template:
    """An approved body template; `verification` templates take only 0-6 digit parameters."""

    text: str
    verification: bool = False


@dataclass
class Outcome:
    """What happens to texts for one number: refused at send (`send_code`), or a delivery report."""

    send_code: str | None = None
    report_status: str = "SUCCESS"
    errmsg: str = "DELIVRD"
    description: str = "用户短信送达成功"


FAIL_DEFAULTS = {"errmsg": "UNDELIV", "description": "用户短信未送达"}


@dataclass
class Sent:
    """One accepted text as the server stores it."""

    serial_no: str
    app_id: str
    phone: str  # E.164
    sign: str
    template_id: str
    params: list[str]
    content: str  # 【SignName】 + rendered body
    fee: int
    session_context: str
    sent_at: int  # unix seconds
    report_status: str | None = None  # None until the delivery report exists
    errmsg: str = ""
    description: str = ""
    user_receive_time: int | None = None

    @property
    def subscriber(self) -> str:
        return self.phone.removeprefix("+86")

    def pull_json(self, with_context: bool) -> dict[str, Any]:
        """One PullSmsSendStatus entry."""
        return {
            "UserReceiveTime": self.user_receive_time,
            "CountryCode": "86",
            "SubscriberNumber": self.subscriber,
            "PhoneNumber": self.phone,
            "SerialNo": self.serial_no,
            "ReportStatus": self.report_status,
            "Description": self.description,
            "SessionContext": self.session_context if with_context else "",
        }

    def report_json(self) -> dict[str, Any]:
        """One entry of the status callback's JSON array."""
        moment = datetime.fromtimestamp(self.user_receive_time or self.sent_at, BEIJING)
        return {
            "user_receive_time": moment.strftime("%Y-%m-%d %H:%M:%S"),
            "nationcode": "86",
            "mobile": self.subscriber,
            "report_status": self.report_status,
            "errmsg": self.errmsg,
            "description": self.description,
            "sid": self.serial_no,
        }


@dataclass
class CallbackAttempt:
    """One callback POST (status report or reply) and how it went."""

    kind: str
    url: str
    payload: Any
    attempt: int = 1
    status_code: int | None = None
    body: str = ""
    error: str | None = None
    accepted: bool = False
    sent_at: float = field(default=0.0)


def beijing_day(moment: int) -> str:
    return datetime.fromtimestamp(moment, BEIJING).strftime("%Y-%m-%d")


def fits(template: Template, params: list[str]) -> bool:
    return placeholders(template.text) <= len(params)


def status_entry(number: str, code: str, context: str) -> dict[str, Any]:
    """One SendStatusSet entry for a refused number (the Ok path adds SerialNo, Fee, IsoCode)."""
    return {
        "SerialNo": "",
        "PhoneNumber": number,
        "Fee": 0,
        "SessionContext": context,
        "Code": code,
        "Message": OK_MESSAGE if code == "Ok" else MESSAGES[code],
        "IsoCode": "",
    }


def string_list(body: Mapping[str, Any], key: str, *, required: bool = False) -> list[str]:
    """A list-of-strings parameter, or the error Tencent gives for a missing or mistyped one."""
    value = body.get(key)
    if value is None:
        if required:
            raise TencentError("MissingParameter", key)
        return []
    if not isinstance(value, list):
        raise TencentError("InvalidParameter", key)
    for i, item in enumerate(value):
        if not isinstance(item, str):
            raise TencentError("InvalidParameter", f"{key}.{i}")
    return value


def required_str(body: Mapping[str, Any], key: str) -> str:
    value = body.get(key)
    if value is None or value == "":
        raise TencentError("MissingParameter", key)
    if not isinstance(value, str):
        raise TencentError("InvalidParameter", key)
    return value


def required_int(body: Mapping[str, Any], key: str) -> int:
    value = body.get(key)
    if value is None:
        raise TencentError("MissingParameter", key)
    if isinstance(value, bool) or not isinstance(value, int):
        raise TencentError("InvalidParameter", key)
    return value
