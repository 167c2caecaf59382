"""The Tencent Cloud SMS backend (API 2021-01-11) through the official SDK: template id + ordered parameters.

SendSms takes the SDK app (TENCENT_SMS_SDK_APP_ID), the registered signature, the kind's template from
SMS_TEMPLATES and its parameters in PARAM_ORDER ({1}, {2} …), with SessionContext = our row id.
PullSmsSendStatusByPhoneNumber is the crash-recovery lookup (SerialNo = our SID, SessionContext =
SentRecord.ref). A per-number code comes back in SendStatusSet; a request-wide one as Error.Code.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from tencentcloud.common import credential
from tencentcloud.common.exception.tencent_cloud_sdk_exception import TencentCloudSDKException
from tencentcloud.common.profile.client_profile import ClientProfile
from tencentcloud.common.profile.http_profile import HttpProfile
from tencentcloud.sms.v20210111 import models, sms_client

from app.sms.kinds import template_id
from app.sms.message import Message
from app.sms.providers.base import Accepted, ProviderError, SentRecord, SmsProvider
from app.sms.providers.cn_codes import code_error, transport_error

TENCENT_ENDPOINT = "https://sms.tencentcloudapi.com"
PULL_LIMIT = 100
# TENCENT_SMS_STATUS_LAG's default: how long a report may take before the pull's "not found" is believed.
STATUS_LAG_SECONDS = 600.0
# Report statuses in PullSmsSendStatus, in our vocabulary; a text without a report yet was sent.
REPORT_STATUS = {"SUCCESS": "delivered", "FAIL": "undelivered"}


class TencentProvider(SmsProvider):
    """Sends through Tencent Cloud SendSms and looks texts up with PullSmsSendStatusByPhoneNumber."""

    name = "tencent"
    rate_limited = True

    def __init__(
        self,
        secret_id: str,
        secret_key: str,
        *,
        sdk_app_id: str,
        sign_name: str,
        templates: Mapping[str, Mapping[str, str]],
        region: str = "ap-guangzhou",
        endpoint: str = TENCENT_ENDPOINT,
        timeout: float = 15.0,
        status_lag: float = STATUS_LAG_SECONDS,
    ) -> None:
        parts = urlsplit(endpoint if "://" in endpoint else f"https://{endpoint}")
        http = HttpProfile(protocol=parts.scheme, endpoint=parts.netloc, reqTimeout=max(1, round(timeout)))
        self.client = sms_client.SmsClient(
            credential.Credential(secret_id, secret_key), region, ClientProfile(httpProfile=http)
        )
        self.sdk_app_id = sdk_app_id
        self.sign_name = sign_name
        self.templates = {"SMS_TEMPLATES": templates}
        # PullSmsSendStatusByPhoneNumber lists only texts with a delivery report: a text accepted moments ago
        # is absent from it, so a lookup that finds nothing means "not yet known" for this long.
        self.listing_lag = timedelta(seconds=status_lag)

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> TencentProvider:
        return cls(
            config["TENCENT_SECRET_ID"],
            config["TENCENT_SECRET_KEY"],
            sdk_app_id=config["TENCENT_SMS_SDK_APP_ID"],
            sign_name=config["TENCENT_SMS_SIGN_NAME"],
            templates=config.get("SMS_TEMPLATES") or {},
            region=config.get("TENCENT_SMS_REGION") or "ap-guangzhou",
            endpoint=config.get("TENCENT_SMS_ENDPOINT") or TENCENT_ENDPOINT,
            timeout=float(config.get("TENCENT_SMS_TIMEOUT") or 15.0),
            status_lag=float(config.get("TENCENT_SMS_STATUS_LAG", STATUS_LAG_SECONDS)),
        )

    def send(self, to: str, body: str, *, ref: str, status_callback: str | None) -> Accepted:
        raise ProviderError(
            "Tencent Cloud sends templates, not free text: use send_message", code="NoTemplate"
        )

    def send_message(self, to: str, message: Message, *, ref: str, status_callback: str | None) -> Accepted:
        template = template_id(self.templates, message.kind, message.language)
        if not template:
            raise ProviderError(
                f"no Tencent template for {message.kind!r} in SMS_TEMPLATES", code="NoTemplate"
            )
        request = models.SendSmsRequest()
        request.PhoneNumberSet = [to]
        request.SmsSdkAppId = self.sdk_app_id
        request.SignName = self.sign_name
        request.TemplateId = template
        request.TemplateParamSet = message.ordered_params()
        request.SessionContext = ref
        answer = self._call(self.client.SendSms, request)
        statuses = answer.SendStatusSet or []
        if not statuses:
            raise ProviderError("Tencent Cloud answered without a SendStatus", retryable=True, ambiguous=True)
        status = statuses[0]
        if (status.Code or "") != "Ok":
            raise code_error("Tencent", status.Code or "", status.Message or "")
        return Accepted(sid=status.SerialNo, status="queued", segments=status.Fee or None)

    def find_sent(self, to: str, since: datetime) -> list[SentRecord]:
        request = models.PullSmsSendStatusByPhoneNumberRequest()
        request.PhoneNumber = to
        request.SmsSdkAppId = self.sdk_app_id
        request.BeginTime = int((since - timedelta(minutes=5)).timestamp())
        request.EndTime = int(datetime.now(UTC).timestamp()) + 60
        request.Offset = 0
        request.Limit = PULL_LIMIT
        found: list[SentRecord] = []
        while True:
            answer = self._call(self.client.PullSmsSendStatusByPhoneNumber, request, lookup=True)
            batch = answer.PullSmsSendStatusSet or []
            for item in batch:
                received = item.UserReceiveTime
                found.append(
                    SentRecord(
                        sid=item.SerialNo,
                        to=to,
                        status=REPORT_STATUS.get((item.ReportStatus or "").upper(), "sent"),
                        created_at=datetime.fromtimestamp(received, UTC) if received else None,
                        body=None,
                        ref=str(item.SessionContext or ""),
                    )
                )
            if len(batch) < PULL_LIMIT or request.Offset >= 10 * PULL_LIMIT:
                break
            request.Offset += PULL_LIMIT
        return sorted(found, key=lambda r: r.created_at or since, reverse=True)

    def _call(
        self, method: Callable[..., Any], request: Any, *, lookup: bool = False
    ) -> Any:  # SDK objects: untyped
        """One SDK call; every failure becomes a ProviderError (a lookup's are always retryable)."""
        try:
            return method(request)
        except TencentCloudSDKException as exc:
            code = exc.get_code() or ""
            if code == "ClientNetworkError":
                raise transport_error("Tencent", exc.get_message() or "") from None
            if code == "ServerNetworkError":
                # A non-200 answer from a gateway: the text may or may not have been taken.
                raise ProviderError(
                    "Tencent Cloud answered with an HTTP error", code=code, retryable=True, ambiguous=True
                ) from None
            err = code_error("Tencent", code, exc.get_message() or "")
            if lookup and not err.halt:
                err.retryable = True
            raise err from None
