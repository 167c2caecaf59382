"""SMS providers behind one interface, chosen by SMS_BACKEND (CTFd's email-provider pattern).

The sender and the reconciler only see `SmsProvider`: `send` a text, or `find_sent` the texts
already accepted for a number since a moment (the crash-recovery lookup). Transport failures
become `ProviderError`s that say whether the provider may nevertheless have taken the text.
"""

from __future__ import annotations

from flask import current_app

from app.sms.providers.base import Accepted, ProviderError, SentRecord, SmsProvider, mask_number

__all__ = ["Accepted", "ProviderError", "SentRecord", "SmsProvider", "get_provider", "mask_number"]


def get_provider() -> SmsProvider:
    """A new provider for the current app's SMS_BACKEND (one per thread: HTTP sessions are not shared)."""
    config = current_app.config
    if config["SMS_BACKEND"] == "aliyun":
        from app.sms.providers.aliyun import AliyunProvider

        return AliyunProvider.from_config(config)
    if config["SMS_BACKEND"] == "tencent":
        from app.sms.providers.tencent import TencentProvider

        return TencentProvider.from_config(config)
    if config["SMS_BACKEND"] == "twilio":
        from app.sms.providers.twilio import TwilioProvider

        return TwilioProvider.from_config(config)
    from app.sms.providers.console import ConsoleProvider

    return ConsoleProvider.from_config(config)
