"""Webhooks from the SMS providers and REDCap's Data Entry Trigger."""

from app.webhooks import (
    aliyun,  # noqa: F401  (POST /sms/aliyun/report, /sms/aliyun/up)
    redcap_det,  # noqa: F401  (POST /redcap/det)
    tencent,  # noqa: F401  (POST /sms/tencent/status, /sms/tencent/reply)
    twilio,  # noqa: F401  (POST /sms/twilio/status, /sms/twilio/inbound)
)
from app.webhooks.blueprint import bp

__all__ = ["bp"]
