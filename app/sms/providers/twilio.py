"""The Twilio backend: the official client (v9), pointed at TWILIO_API_URL, with timeouts and our errors."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

import requests
from twilio.base.exceptions import TwilioRestException
from twilio.http.http_client import TwilioHttpClient
from twilio.rest import Client

from app.sms.providers.base import Accepted, ProviderError, SentRecord, SmsProvider

TWILIO_BASE = "https://api.twilio.com"
# Twilio answers these for a text that was refused outright; anything else 4xx is also final.
_RETRY_HTTP = {429, 500, 502, 503, 504}


class RebasedTwilioHttpClient(TwilioHttpClient):
    """Twilio's own HTTP client with https://api.twilio.com swapped for TWILIO_API_URL.

    Staging and the tests talk to a Twilio-compatible server; everything else about the
    client (auth, form encoding, JSON parsing) stays the library's.
    """

    def __init__(self, api_url: str, timeout: float, **kwargs: Any) -> None:
        super().__init__(timeout=timeout, **kwargs)
        self.api_url = api_url.rstrip("/")

    def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> Any:  # Twilio's Response; untyped
        if self.api_url != TWILIO_BASE and url.startswith(TWILIO_BASE):
            url = self.api_url + url[len(TWILIO_BASE) :]
        return super().request(method, url, *args, **kwargs)


class TwilioProvider(SmsProvider):
    """Sends through Twilio's Messages resource and looks texts up by recipient and date."""

    name = "twilio"
    rate_limited = True

    def __init__(
        self,
        account_sid: str,
        auth_token: str,
        *,
        from_number: str | None,
        messaging_service_sid: str | None,
        api_url: str = TWILIO_BASE,
        timeout: float = 15.0,
    ) -> None:
        self.http = RebasedTwilioHttpClient(api_url, timeout=timeout)
        self.client = Client(account_sid, auth_token, http_client=self.http)
        self.from_number = from_number
        self.messaging_service_sid = messaging_service_sid

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> TwilioProvider:
        return cls(
            config["TWILIO_ACCOUNT_SID"],
            config["TWILIO_AUTH_TOKEN"],
            from_number=config.get("TWILIO_FROM_NUMBER"),
            messaging_service_sid=config.get("TWILIO_MESSAGING_SERVICE_SID"),
            api_url=config.get("TWILIO_API_URL") or TWILIO_BASE,
            timeout=float(config.get("TWILIO_TIMEOUT") or 15.0),
        )

    def send(self, to: str, body: str, *, ref: str, status_callback: str | None) -> Accepted:
        kwargs: dict[str, Any] = {"to": to, "body": body}
        # A messaging service picks the sender itself; otherwise the configured long code.
        if self.messaging_service_sid:
            kwargs["messaging_service_sid"] = self.messaging_service_sid
        else:
            kwargs["from_"] = self.from_number
        if status_callback:
            kwargs["status_callback"] = status_callback
        try:
            message = self.client.messages.create(**kwargs)
        except TwilioRestException as exc:
            raise _rest_error(exc) from None
        except requests.exceptions.ConnectTimeout:
            raise ProviderError("Twilio did not accept the connection", retryable=True) from None
        except requests.exceptions.RequestException as exc:
            # A read timeout or a dropped connection after the request went out: Twilio may have it.
            raise ProviderError(
                f"Twilio transport error: {type(exc).__name__}", retryable=True, ambiguous=True
            ) from None
        segments = int(message.num_segments) if message.num_segments not in (None, "") else None
        return Accepted(sid=message.sid, status=message.status or "queued", segments=segments)

    def find_sent(self, to: str, since: datetime) -> list[SentRecord]:
        found: dict[str, SentRecord] = {}
        try:
            # Sent texts by date; queued ones have no date_sent yet, so also the newest few by recipient.
            batches = (
                self.client.messages.list(to=to, date_sent_after=since - timedelta(minutes=5), limit=200),
                self.client.messages.list(to=to, limit=50),
            )
            for batch in batches:
                for message in batch:
                    created = message.date_created
                    if created is not None and created < since - timedelta(minutes=5):
                        continue
                    if message.direction and not message.direction.startswith("outbound"):
                        continue
                    found[message.sid] = SentRecord(
                        sid=message.sid,
                        to=message.to,
                        status=message.status,
                        created_at=created,
                        body=message.body,
                    )
        except TwilioRestException as exc:
            raise _rest_error(exc) from None
        except requests.exceptions.RequestException as exc:
            raise ProviderError(f"Twilio lookup failed: {type(exc).__name__}", retryable=True) from None
        return sorted(found.values(), key=lambda r: r.created_at or since, reverse=True)

    def close(self) -> None:
        if self.http.session is not None:
            self.http.session.close()


def _rest_error(exc: TwilioRestException) -> ProviderError:
    status = int(exc.status or 0)
    retryable = status in _RETRY_HTTP or status >= 500
    return ProviderError(
        f"Twilio error {exc.code or status}: {exc.msg}"[:300],
        code=int(exc.code) if exc.code else None,
        http_status=status,
        retryable=retryable,
        # Only a server error leaves doubt; a 429 or 4xx means the text was not taken.
        ambiguous=status >= 500,
    )
