"""Webhook routes (built out by the SMS and REDCap work)."""

from app.webhooks import (
    redcap_det,  # noqa: F401  (POST /redcap/det)
    twilio,  # noqa: F401  (POST /sms/twilio/status, /sms/twilio/inbound)
)
