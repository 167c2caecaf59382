"""Webhook routes (built out by the SMS and REDCap work)."""

from app.webhooks import (
    aliyun,  # noqa: F401  (POST /sms/aliyun/report, /sms/aliyun/up)
    redcap_det,  # noqa: F401  (POST /redcap/det)
    tencent,  # noqa: F401  (POST /sms/tencent/status, /sms/tencent/reply)
    twilio,  # noqa: F401  (POST /sms/twilio/status, /sms/twilio/inbound)
)
