"""Aliyun SMS (dysmsapi 2017-05-25) as the local server speaks it: errors, signatures, numbers, templates.

Kept apart from the server's state and routes so each can be read on its own. What the official SDK
(`alibabacloud-dysmsapi20170525` over `alibabacloud-tea-openapi` 0.4) sends by default: `POST /` with the
parameters in the query string, `x-acs-action`/`x-acs-version` headers and an `Authorization:
ACS3-HMAC-SHA256 Credential=…,SignedHeaders=…,Signature=…` header (signature v3). With
`Config(signature_algorithm="v2")` it falls back to the old RPC signature: `Signature` (HMAC-SHA1) in the
query. Both are verified here.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from urllib.parse import quote

from flask import Response

API_VERSION = "2017-05-25"
HOST_ID = "dysmsapi.aliyuncs.com"
DEFAULT_ACCESS_KEY_ID = "LTAI5tLocalDevFake0000001"  # fictitious, for local use only
DEFAULT_ACCESS_KEY_SECRET = "LocalDevFakeSecret0123456789ab"  # fictitious, for local use only
DEFAULT_SIGN_NAME = "随访研究中心"  # fictitious signature
CHINA = timezone(timedelta(hours=8), "CST")  # Aliyun's dates are Beijing time
MAX_NUMBERS = 1000  # PhoneNumbers per SendSms call
MAX_PARAM_CHARS = 35  # per variable, notification templates
SIGNATURE_SKEW = timedelta(minutes=15)  # x-acs-date / Timestamp tolerance, and nonce memory

# Gateway errors: code -> (HTTP status, Message). `{sts}` is the server's string to sign.
GATEWAY_ERRORS: dict[str, tuple[int, str]] = {
    "SignatureDoesNotMatch": (
        400,
        "Specified signature does not match our calculation. server StringToSign is [{sts}]",
    ),
    "SignatureDoesNotMatch.V1": (
        400,
        "Specified signature is not matched with our calculation. server string to sign is:{sts}",
    ),
    "IncompleteSignature": (400, "The request signature does not conform to Aliyun standards. {detail}"),
    "InvalidAccessKeyId.NotFound": (404, "Specified access key is not found."),
    "MissingAccessKeyId": (400, "AccessKeyId is mandatory for this action."),
    "InvalidTimeStamp.Expired": (400, "Specified time stamp or date value is expired."),
    "SignatureNonceUsed": (400, "Specified signature nonce was used already."),
    "InvalidVersion": (400, "Specified parameter Version is not valid."),
    "InvalidAction.NotFound": (404, "Specified api is not found, please check your url and method."),
    "MissingParameter": (400, "{detail} is mandatory for this action."),
    "Throttling.User": (400, "Request was denied due to user flow control."),
    "InternalError": (
        500,
        "The request processing has failed due to some unknown error, exception or failure.",
    ),
    "ServiceUnavailable": (503, "The request has failed due to a temporary failure of the server."),
}
# Business answers: HTTP 200, `Code` other than OK. Texts as the console's error-code page shows them.
BUSINESS_ERRORS: dict[str, str] = {
    "isv.MOBILE_NUMBER_ILLEGAL": "非法手机号",
    "isv.MOBILE_COUNT_OVER_LIMIT": "手机号码数量超过限制",
    "isv.SMS_SIGNATURE_ILLEGAL": "该账号下找不到对应签名",
    "isv.SMS_TEMPLATE_ILLEGAL": "该账号下找不到对应模板",
    "isv.TEMPLATE_MISSING_PARAMETERS": "模板变量缺少对应参数值",
    "isv.INVALID_JSON_PARAM": "JSON参数不合法，只接受字符串值",
    "isv.BLACK_KEY_CONTROL_LIMIT": "黑名单管控",
    "isv.PARAM_LENGTH_LIMIT": "参数超出长度限制",
    "isv.PARAM_NOT_SUPPORT_URL": "不支持url为变量",
    "isv.BUSINESS_LIMIT_CONTROL": "触发{window}级流控Permits:{permits}",
    "isv.DAY_LIMIT_CONTROL": "触发日发送限额",
    "isv.INVALID_PARAMETERS": "参数异常",
    "isp.SYSTEM_ERROR": "系统错误",
}
LIMIT_WINDOWS = {
    "minute": ("分钟", timedelta(minutes=1)),
    "hour": ("小时", timedelta(hours=1)),
    "day": ("天", timedelta(days=1)),
}
DEFAULT_LIMITS = {"minute": 1, "hour": 5, "day": 10}  # per number and signature, Aliyun's defaults
DEFAULT_BANNED_WORDS = ("问卷调查",)
# Delivery failures a receipt can carry (err_code -> err_msg).
DELIVERY_ERRORS = {
    "MOBILE_NOT_ON_SERVICE": "停机",
    "MOBILE_ACCOUNT_ABNORMAL": "用户账户异常",
    "MOBILE_IN_BLACK": "手机号在黑名单",
    "MOBILE_TERMINAL_ERROR": "手机终端问题",
    "USER_REJECT": "用户拒收",
    "CONTENT_KEYWORD": "内容关键字拦截",
    "INVALID_NUMBER": "号码状态异常",
}
# "accepted-*" faults store the message (its receipt will come) but lose the answer: an ambiguous failure.
FAULT_KINDS = {
    "throttling": "Throttling.User",
    "500": "InternalError",
    "503": "ServiceUnavailable",
    "timeout": None,
    "accepted-500": "InternalError",
    "accepted-timeout": None,
}
SEND_WAITING, SEND_FAILED, SEND_DELIVERED = 1, 2, 3

MAINLAND_MOBILE = re.compile(r"^(?:\+?86|0086)?(1[3-9]\d{9})$")
TEMPLATE_VAR = re.compile(r"\$\{([^}]*)\}")
VAR_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")
RESERVED_VAR_NAMES = frozenset({"email", "mobile", "id", "nick", "site"})
URL_LIKE = re.compile(r"(?i)(?:https?://|www\.|\b[a-z0-9-]+\.(?:com|cn|net|org|io|cc|top|xyz|info)\b)")


class AliyunError(Exception):
    """A gateway error (HTTP 4xx/5xx with Aliyun's JSON error body), raised inside request handling."""

    def __init__(self, code: str, **fields: str) -> None:
        status, template = GATEWAY_ERRORS[code]
        self.code = code.removesuffix(".V1")
        self.status = status
        self.message = template.format_map({"sts": "", "detail": "", **fields})
        super().__init__(self.code)

    def response(self, request_id: str | None = None) -> Response:
        request_id = request_id or new_request_id()
        body = {
            "RequestId": request_id,
            "HostId": HOST_ID,
            "Code": self.code,
            "Message": self.message,
            "Recommend": f"https://api.aliyun.com/troubleshoot?q={self.code}&product=Dysmsapi&requestId={request_id}",
        }
        return json_response(body, self.status, request_id)


class BusinessError(Exception):
    """A refused SendSms/QuerySendDetails: HTTP 200 with `Code` and `Message`."""

    def __init__(self, code: str, **fields: Any) -> None:
        self.code = code
        self.message = BUSINESS_ERRORS[code].format_map(fields) if fields else BUSINESS_ERRORS[code]
        super().__init__(code)


def json_response(body: Mapping[str, Any], status: int = 200, request_id: str | None = None) -> Response:
    """JSON as Aliyun writes it: UTF-8, Chinese left unescaped, the request id echoed in a header."""
    resp = Response(
        json.dumps(body, ensure_ascii=False), status=status, content_type="application/json;charset=utf-8"
    )
    if request_id:
        resp.headers["x-acs-request-id"] = request_id
    return resp


def new_request_id() -> str:
    return str(uuid.uuid4()).upper()


# ---- signatures ---------------------------------------------------------------------------------


def _encode(value: str) -> str:
    return quote(value, safe="~", encoding="utf-8")


def canonical_query(params: Mapping[str, str]) -> str:
    """Sorted `key=value` pairs, both percent-encoded (RFC 3986, `~` kept), joined with `&`."""
    return "&".join(f"{_encode(k)}={_encode(v)}" for k, v in sorted(params.items()))


def acs3_string_to_sign(
    method: str,
    path: str,
    query: Mapping[str, str],
    headers: Mapping[str, str],
    signed: list[str],
    payload_hash: str,
) -> str:
    """ACS3-HMAC-SHA256 string to sign: the algorithm and the hex SHA-256 of the canonical request."""
    canonical_headers = "".join(f"{name}:{headers.get(name, '').strip()}\n" for name in signed)
    canonical_request = "\n".join(
        [method, path or "/", canonical_query(query), canonical_headers, ";".join(signed), payload_hash]
    )
    return "ACS3-HMAC-SHA256\n" + hashlib.sha256(canonical_request.encode()).hexdigest()


def acs3_signature(secret: str, string_to_sign: str) -> str:
    return hmac.new(secret.encode(), string_to_sign.encode(), hashlib.sha256).hexdigest()


def rpc_string_to_sign(method: str, params: Mapping[str, str]) -> str:
    """Old RPC signature (HMAC-SHA1, SignatureVersion 1.0): METHOD&%2F&encode(canonical query)."""
    return f"{method}&%2F&{_encode(canonical_query(params))}"


def rpc_signature(secret: str, string_to_sign: str) -> str:
    digest = hmac.new((secret + "&").encode(), string_to_sign.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


def parse_authorization(value: str) -> tuple[str, str, list[str], str]:
    """`ACS3-HMAC-SHA256 Credential=AK,SignedHeaders=a;b,Signature=hex` -> (algorithm, ak, headers, sig)."""
    algorithm, _, rest = value.strip().partition(" ")
    parts = dict(p.strip().partition("=")[::2] for p in rest.split(",") if "=" in p)
    if algorithm != "ACS3-HMAC-SHA256" or not {"Credential", "SignedHeaders", "Signature"} <= parts.keys():
        raise AliyunError(
            "IncompleteSignature",
            detail="Authorization must be ACS3-HMAC-SHA256 Credential=…,SignedHeaders=…,Signature=….",
        )
    signed = [h.strip().lower() for h in parts["SignedHeaders"].split(";") if h.strip()]
    return algorithm, parts["Credential"], signed, parts["Signature"]


# ---- numbers, templates, content ----------------------------------------------------------------


def normalise_mobile(raw: str) -> str | None:
    """A mainland mobile number as 11 digits (86/+86/0086 prefix accepted), or None."""
    match = MAINLAND_MOBILE.match(raw.strip().replace(" ", ""))
    return match.group(1) if match else None


def sms_parts(content: str) -> int:
    """Billed parts: 70 characters for one, 67 each when longer (signature included)."""
    return 1 if len(content) <= 70 else -(-len(content) // 67)


@dataclass(frozen=True)
class Template:
    """One approved template: its code, its text with `${var}`, and the variable names in order."""

    code: str
    text: str
    variables: tuple[str, ...]

    @classmethod
    def parse(cls, code: str, text: str) -> Template:
        """Check Aliyun's published notification-template rules and build the template."""
        names = TEMPLATE_VAR.findall(text)
        for name in names:
            if not VAR_NAME.match(name) or name.lower() in RESERVED_VAR_NAMES:
                raise ValueError(f"template {code}: variable name {name!r} is not allowed")
        if "【" in text or "】" in text:
            raise ValueError(f"template {code}: no 【】 in the body; the signature is added by the provider")
        if names and not TEMPLATE_VAR.sub("", text).strip():
            raise ValueError(f"template {code}: a template cannot be made only of variables")
        return cls(code, text, tuple(dict.fromkeys(names)))

    def render(self, params: Mapping[str, str]) -> str:
        return TEMPLATE_VAR.sub(lambda m: params[m.group(1)], self.text)


DEFAULT_TEMPLATES = {  # demo templates following the parameter names
    "SMS_470001": "您好，您的${visit}随访已开放，请在${deadline}前填写：https://followup.example.cn/s/${code}",
    "SMS_470002": "Your ${visit} follow-up is open until ${deadline}: https://followup.example.cn/s/${code}",
    "SMS_470003": "提醒：您的${visit}随访将于${deadline}截止，请填写：https://followup.example.cn/s/${code}",
    "SMS_470004": "Reminder: your ${visit} follow-up closes on ${deadline}: https://followup.example.cn/s/${code}",
    "SMS_470005": "随访系统提示：以下记录出现危险信号，请尽快处理：${records}",
}
# The SMS_TEMPLATES that maps the service's kinds onto the demo templates above (tests, benchmarks).
DEMO_SMS_TEMPLATES = {
    "invite": {"zh": "SMS_470001", "en": "SMS_470002"},
    "reminder": {"zh": "SMS_470003", "en": "SMS_470004"},
    "redflag_alert": {"zh": "SMS_470005"},
}


def parse_template_param(raw: str | None, template: Template) -> dict[str, str]:
    """TemplateParam as Aliyun reads it: a JSON object of string values, every template variable present."""
    if raw is None or raw == "":
        params: dict[str, Any] = {}
    else:
        try:
            params = json.loads(raw)
        except ValueError:
            raise BusinessError("isv.INVALID_JSON_PARAM") from None
        if not isinstance(params, dict) or not all(isinstance(v, str) for v in params.values()):
            raise BusinessError("isv.INVALID_JSON_PARAM")
    if any(name not in params for name in template.variables):
        raise BusinessError("isv.TEMPLATE_MISSING_PARAMETERS")
    for name in template.variables:
        if len(params[name]) > MAX_PARAM_CHARS:
            raise BusinessError("isv.PARAM_LENGTH_LIMIT")
        if URL_LIKE.search(params[name]):
            raise BusinessError("isv.PARAM_NOT_SUPPORT_URL")
    return {name: params[name] for name in template.variables}


# ---- what the fake stores -----------------------------------------------------------------------


def utcnow() -> datetime:
    return datetime.now(UTC)


def china_time(moment: datetime | None) -> str:
    """Aliyun's date format, Beijing time: '2024-03-01 17:00:00'."""
    return moment.astimezone(CHINA).strftime("%Y-%m-%d %H:%M:%S") if moment else ""


@dataclass
class Outcome:
    """What happens to texts for one number: refused at SendSms, delivered, failed, or never reported."""

    send_error: str | None = None
    status: str = "delivered"  # delivered | failed | pending
    err_code: str | None = None


@dataclass
class SentSms:
    """One accepted text to one number (a SendSms to several numbers makes one per number, one BizId)."""

    biz_id: str
    phone: str
    sign_name: str
    template_code: str
    params: dict[str, str]
    content: str
    out_id: str | None
    send_date: datetime
    access_key_id: str
    outcome: Outcome
    seq: int = 0
    status: int = SEND_WAITING
    err_code: str = ""
    receive_date: datetime | None = None

    @property
    def sms_size(self) -> int:
        return sms_parts(self.content)

    def detail(self) -> dict[str, Any]:
        """One `SmsSendDetailDTO` of QuerySendDetails."""
        return {
            "PhoneNum": self.phone,
            "SendStatus": self.status,
            "ErrCode": self.err_code,
            "TemplateCode": self.template_code,
            "Content": self.content,
            "SendDate": china_time(self.send_date),
            "ReceiveDate": china_time(self.receive_date),
            "OutId": self.out_id or "",
        }

    def report(self) -> dict[str, Any]:
        """One `SmsReport` receipt, as the HTTP batch push sends it."""
        return {
            "phone_number": self.phone,
            "send_time": china_time(self.send_date),
            "report_time": china_time(self.receive_date),
            "success": self.status == SEND_DELIVERED,
            "err_code": self.err_code,
            "err_msg": "用户接收成功"
            if self.status == SEND_DELIVERED
            else DELIVERY_ERRORS.get(self.err_code, self.err_code),
            "sms_size": str(self.sms_size),
            "biz_id": self.biz_id,
            "out_id": self.out_id or "",
        }


@dataclass
class CallbackAttempt:
    """One push (SmsReport batch or SmsUp) the fake made, and how the service answered."""

    kind: str
    url: str
    payload: list[dict[str, Any]]
    attempt: int = 1
    status_code: int | None = None
    response_body: str = ""
    error: str | None = None
    accepted: bool = False  # the answer was {"code": 0, ...}


CONTROL_KEYS = frozenset(
    {
        "reset",
        "latency",
        "hang_seconds",
        "fail",
        "times",
        "outcomes",
        "report_url",
        "up_url",
        "report_delay",
        "callbacks_enabled",
        "limits",
        "banned_words",
        "templates",
        "sign_names",
    }
)
