"""Webhooks from the SMS provider and REDCap's Data Entry Trigger."""

from app.webhooks import (
    redcap_det,  # noqa: F401  (attaches its routes to bp)
    twilio,  # noqa: F401  (attaches its routes to bp)
)
from app.webhooks.blueprint import bp

__all__ = ["bp"]
