"""Aliyun and Tencent Cloud error codes, by what they mean for the outbox (shared by both providers).

- HALT: every further text would fail the same way (template, signature, credentials, balance, a
  banned word in a fixed template): sending stops with a console alert.
- DEFER: a frequency limit on one number: the text waits for the window given here, never dropped.
- THROTTLE: the API's own request rate: retried with backoff, the text was not taken.
- Anything else the provider answered is final for this text (a bad number among them: its effect on
  the participant is app.sms.delivery.apply_error_effects).
"""

from __future__ import annotations

from datetime import timedelta

from app.sms.providers.base import ProviderError

MINUTE, HOUR, DAY = timedelta(minutes=2), timedelta(hours=1), timedelta(hours=24)

HALT = frozenset(
    {
        # Aliyun (dysmsapi SendSms Code)
        "isv.SMS_TEMPLATE_ILLEGAL",
        "isv.SMS_SIGNATURE_ILLEGAL",
        "isv.SMS_SIGN_ILLEGAL",
        "isv.SIGN_NAME_ILLEGAL",
        "isv.TEMPLATE_MISSING_PARAMETERS",
        "isv.TEMPLATE_PARAMS_ILLEGAL",
        "isv.INVALID_JSON_PARAM",
        "isv.BLACK_KEY_CONTROL_LIMIT",
        "isv.SMS_CONTENT_ILLEGAL",
        "isv.AMOUNT_NOT_ENOUGH",
        "isv.OUT_OF_SERVICE",
        "isv.ACCOUNT_NOT_EXISTS",
        "isv.ACCOUNT_ABNORMAL",
        "isv.PRODUCT_UN_SUBSCRIPT",
        "isv.PRODUCT_UNSUBSCRIBE",
        "isp.RAM_PERMISSION_DENY",
        "InvalidAccessKeyId.NotFound",
        "InvalidAccessKeyId.Inactive",
        "SignatureDoesNotMatch",
        "IncompleteSignature",
        "Forbidden.RAM",
        # Tencent Cloud (SendSms SendStatus.Code or Error.Code)
        "FailedOperation.TemplateIncorrectOrUnapproved",
        "FailedOperation.SignatureIncorrectOrUnapproved",
        "FailedOperation.ContainSensitiveWord",
        "FailedOperation.TemplateParamSetNotMatchApprovedTemplate",
        "FailedOperation.TemplateUnapprovedOrNotExist",
        "FailedOperation.InsufficientBalanceInSmsPackage",
        "FailedOperation.MissingSignature",
        "FailedOperation.MissingTemplateToModify",
        "InvalidParameterValue.TemplateParameterFormatError",
        "InvalidParameterValue.TemplateParameterLengthLimit",  # the account's per-variable limit: every text
        "InvalidParameterValue.ProhibitedUseUrlInTemplateParameter",
        "InvalidParameterValue.SdkAppIdNotExist",
        "InvalidParameterValue.IncorrectSignName",
        "UnauthorizedOperation.SmsSdkAppIdVerifyFail",
        "UnauthorizedOperation.SerivceSuspendDueToArrears",
        "UnauthorizedOperation.RequestPermissionDeny",
        "UnauthorizedOperation.RequestIpNotInWhitelist",
    }
)
HALT_PREFIXES = ("AuthFailure",)
DEFER = {
    "isv.BUSINESS_LIMIT_CONTROL": HOUR,  # refined from the message (minute/hour/day level)
    "isv.DAY_LIMIT_CONTROL": DAY,
    "isv.MONTH_LIMIT_CONTROL": DAY,
    "LimitExceeded.PhoneNumberThirtySecondLimit": MINUTE,
    "LimitExceeded.PhoneNumberOneHourLimit": HOUR,
    "LimitExceeded.PhoneNumberDailyLimit": DAY,
    "LimitExceeded.PhoneNumberSameContentDailyLimit": DAY,
    "LimitExceeded.DeliveryFrequencyLimit": HOUR,
    "LimitExceeded.DailyLimit": DAY,
    "LimitExceeded.AppDailyLimit": DAY,
    "LimitExceeded.AppCountryOrRegionDailyLimit": DAY,
    "LimitExceeded.AppMainlandChinaDailyLimit": DAY,
    "LimitExceeded.AppGlobalDailyLimit": DAY,
}
THROTTLE = frozenset({"Throttling", "Throttling.User", "Throttling.Api", "RequestLimitExceeded"})
SERVER_PREFIXES = ("InternalError", "ServiceUnavailable", "isp.", "InternalFailure")


def business_limit_window(message: str) -> timedelta:
    """Aliyun's isv.BUSINESS_LIMIT_CONTROL says which window was hit: 分钟级 / 小时级 / 天级 (or English)."""
    text = message or ""
    if "分钟" in text or "minute" in text.lower():
        return MINUTE
    if "天" in text or "day" in text.lower():
        return DAY
    return HOUR


def code_error(provider: str, code: str, message: str, *, http_status: int | None = None) -> ProviderError:
    """The ProviderError an answered code means (the provider answered, so the text's fate is known)."""
    text = f"{provider} error {code}: {message}"[:300]
    if code in HALT or code.startswith(HALT_PREFIXES):
        return ProviderError(text, code=code, http_status=http_status, halt=True)
    if code in DEFER:
        window = business_limit_window(message) if code == "isv.BUSINESS_LIMIT_CONTROL" else DEFER[code]
        return ProviderError(text, code=code, http_status=http_status, defer=window)
    if code in THROTTLE:
        return ProviderError(text, code=code, http_status=http_status, retryable=True)
    if code.startswith(SERVER_PREFIXES) or (http_status or 0) >= 500:
        # The provider failed while handling it: it may have taken the text, so look before re-sending.
        return ProviderError(text, code=code, http_status=http_status, retryable=True, ambiguous=True)
    return ProviderError(text, code=code, http_status=http_status)


def transport_error(provider: str, detail: str) -> ProviderError:
    """A request that got no answer: unambiguous only when the connection was never made."""
    lowered = detail.lower()
    never_sent = any(
        marker in lowered
        for marker in (
            "newconnectionerror",
            "connection refused",
            "connecttimeout",
            "name or service not known",
        )
    )
    # The detail is never quoted: Aliyun's RPC requests carry the number and parameters in the URL.
    what = "could not connect" if never_sent else "no answer (timeout or dropped connection)"
    return ProviderError(f"{provider} transport error: {what}", retryable=True, ambiguous=not never_sent)
