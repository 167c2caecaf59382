"""The Aliyun SMS backend (dysmsapi 2017-05-25) through the official SDK: template id + parameters.

SendSms takes the registered signature (ALIYUN_SMS_SIGN_NAME), the kind's template from SMS_TEMPLATES
and the kind's parameters as a JSON object; Aliyun renders the text and adds 【signature】 itself.
QuerySendDetails (by number and day, Beijing time) is the crash-recovery lookup: each detail carries
our OutId, which is how a text is recognised as a row's (SentRecord.ref). Business errors come back
in the answer's Code; cn_codes says what each one means.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

from alibabacloud_dysmsapi20170525 import models as sms_models
from alibabacloud_dysmsapi20170525.client import Client
from alibabacloud_tea_openapi import exceptions as api_errors
from alibabacloud_tea_openapi import utils_models as open_api_models
from darabonba.exceptions import UnretryableException
from darabonba.runtime import RuntimeOptions

from app.sms.kinds import PARAM_ORDER, template_id
from app.sms.message import Message
from app.sms.providers.base import Accepted, ProviderError, SentRecord, SmsProvider
from app.sms.providers.cn_codes import code_error, transport_error

ALIYUN_ENDPOINT = "https://dysmsapi.aliyuncs.com"
BEIJING = ZoneInfo("Asia/Shanghai")
# QuerySendDetails pages: at most 50 a page; a number gets a few texts a day, so 4 pages are plenty.
PAGE_SIZE, MAX_PAGES, MAX_DAYS = 50, 4, 3
# SendStatus in QuerySendDetails: 1 waiting for the receipt, 2 failed, 3 delivered.
SEND_STATUS = {1: "sent", 2: "undelivered", 3: "delivered"}


def aliyun_number(e164: str) -> str:
    """The number as Aliyun takes it: 11 digits for mainland China, country code and number elsewhere."""
    digits = e164.lstrip("+")
    return digits[2:] if digits.startswith("86") and len(digits) == 13 else digits


class AliyunProvider(SmsProvider):
    """Sends through Aliyun SendSms with a registered template and looks texts up with QuerySendDetails."""

    name = "aliyun"
    rate_limited = True

    def __init__(
        self,
        access_key_id: str,
        access_key_secret: str,
        *,
        sign_name: str,
        templates: Mapping[str, Mapping[str, str]],
        endpoint: str = ALIYUN_ENDPOINT,
        timeout: float = 15.0,
    ) -> None:
        parts = urlsplit(endpoint if "://" in endpoint else f"https://{endpoint}")
        config = open_api_models.Config(
            access_key_id=access_key_id,
            access_key_secret=access_key_secret,
            endpoint=parts.netloc,
            protocol=parts.scheme,
            connect_timeout=int(timeout * 1000),
            read_timeout=int(timeout * 1000),
        )
        self.client = Client(config)
        self.sign_name = sign_name
        self.templates = {"SMS_TEMPLATES": templates}
        # No retries inside the SDK: a retried send after a timeout could deliver twice; the sender decides.
        self.runtime = RuntimeOptions(autoretry=False, max_attempts=1)

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> AliyunProvider:
        return cls(
            config["ALIYUN_ACCESS_KEY_ID"],
            config["ALIYUN_ACCESS_KEY_SECRET"],
            sign_name=config["ALIYUN_SMS_SIGN_NAME"],
            templates=config.get("SMS_TEMPLATES") or {},
            endpoint=config.get("ALIYUN_SMS_ENDPOINT") or ALIYUN_ENDPOINT,
            timeout=float(config.get("ALIYUN_SMS_TIMEOUT") or 15.0),
        )

    def template_param(self, message: Message) -> str:
        """The kind's parameters as the JSON object TemplateParam takes (only the documented ones)."""
        names = PARAM_ORDER.get(message.kind, ())
        return json.dumps({n: message.params[n] for n in names if n in message.params}, ensure_ascii=False)

    def send(self, to: str, body: str, *, ref: str, status_callback: str | None) -> Accepted:
        raise ProviderError("Aliyun sends templates, not free text: use send_message", code="NoTemplate")

    def send_message(self, to: str, message: Message, *, ref: str, status_callback: str | None) -> Accepted:
        template = template_id(self.templates, message.kind, message.language)
        if not template:
            raise ProviderError(
                f"no Aliyun template for {message.kind!r} in SMS_TEMPLATES", code="NoTemplate"
            )
        request = sms_models.SendSmsRequest(
            phone_numbers=aliyun_number(to),
            sign_name=self.sign_name,
            template_code=template,
            template_param=self.template_param(message) if PARAM_ORDER.get(message.kind) else None,
            out_id=ref,
        )
        body = self._call(self.client.send_sms_with_options, request)
        code = body.code or ""
        if code != "OK":
            raise code_error("Aliyun", code, body.message or "")
        if not body.biz_id:
            raise ProviderError("Aliyun answered OK without a BizId", retryable=True, ambiguous=True)
        return Accepted(sid=body.biz_id, status="queued")

    def find_sent(self, to: str, since: datetime) -> list[SentRecord]:
        found: list[SentRecord] = []
        today = datetime.now(BEIJING).date()
        day = max(since.astimezone(BEIJING).date(), today - timedelta(days=MAX_DAYS - 1))
        while day <= today:
            for page in range(1, MAX_PAGES + 1):
                request = sms_models.QuerySendDetailsRequest(
                    phone_number=aliyun_number(to),
                    send_date=day.strftime("%Y%m%d"),
                    page_size=PAGE_SIZE,
                    current_page=page,
                )
                body = self._call(self.client.query_send_details_with_options, request, lookup=True)
                if (body.code or "") != "OK":
                    raise code_error("Aliyun", body.code or "", body.message or "")
                details = (
                    (body.sms_send_detail_dtos.sms_send_detail_dto or []) if body.sms_send_detail_dtos else []
                )
                for detail in details:
                    record = _record(detail, to)
                    if record.created_at is None or record.created_at >= since - timedelta(minutes=5):
                        found.append(record)
                if len(details) < PAGE_SIZE:
                    break
            day += timedelta(days=1)
        return sorted(found, key=lambda r: r.created_at or since, reverse=True)

    def _call(
        self, method: Callable[..., Any], request: Any, *, lookup: bool = False
    ) -> Any:  # SDK objects: untyped
        """One SDK call; every failure becomes a ProviderError (a lookup's are always retryable)."""
        try:
            return method(request, self.runtime).body
        except api_errors.ThrottlingException as exc:
            raise ProviderError(
                f"Aliyun throttled: {exc.code}", code=exc.code, http_status=exc.status_code, retryable=True
            ) from None
        except api_errors.AlibabaCloudException as exc:
            err = code_error(
                "Aliyun", str(exc.code or ""), str(exc.message or ""), http_status=exc.status_code
            )
            if lookup and not err.halt:
                err.retryable = True
            raise err from None
        except UnretryableException as exc:
            inner = exc.inner_exception
            detail = f"{type(getattr(inner, '__context__', None)).__name__} {getattr(inner, 'message', '')}"
            raise transport_error("Aliyun", detail) from None


def _record(detail: Any, to: str) -> SentRecord:
    created = None
    if detail.send_date:
        try:
            created = datetime.strptime(detail.send_date, "%Y-%m-%d %H:%M:%S").replace(tzinfo=BEIJING)
        except ValueError:
            created = None
    status = SEND_STATUS.get(int(detail.send_status or 1), "sent")
    out_id = str(detail.out_id) if detail.out_id else None
    # QuerySendDetails does not return the BizId: the row is recognised by OutId, and its SID made from it.
    sid = f"aliyun-out-{out_id}-{detail.send_date or ''}".replace(" ", "T")[:64]
    return SentRecord(
        sid=sid, to=to, status=status, created_at=created, body=detail.content, ref=out_id or ""
    )
