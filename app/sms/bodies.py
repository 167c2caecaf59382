"""The words of a text as they leave: the rendered body (with a fresh link) and the status callback."""

from __future__ import annotations

from datetime import datetime

from flask import current_app

from app.models import OutboundMessage
from app.sms.message import compose


def status_callback_url() -> str | None:
    """Where Twilio posts delivery statuses (public URL: the service runs behind a proxy)."""
    if current_app.config["SMS_BACKEND"] != "twilio":
        return None
    return f"{current_app.config['PUBLIC_BASE_URL']}/sms/twilio/status"


def build_body(msg: OutboundMessage, now: datetime) -> str:
    """The text for `msg`; link texts get a fresh personal link (its hash is stored, never the token)."""
    return compose(msg, now).body
