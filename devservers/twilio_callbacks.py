"""The local Twilio server after a message is created: its delivery lifecycle, status callbacks, inbound SMS.

Split from `twilio_state` along one line: what the fake sends to the app. `TwilioState` mixes it in, as
`TencentState` mixes in `tencent_callbacks`.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable

import requests

from devservers.twilio_protocol import (
    API_VERSION,
    DELIVERY_ERRORS,
    MESSAGING_SERVICE_FROM,
    CallbackAttempt,
    Message,
    _country,
    _status_params,
    count_segments,
    twilio_signature,
)

# One logger name for the whole fake, whichever module writes.
log = logging.getLogger("devservers.twilio_api")


class LifecycleAndWebhooks:
    """Status steps, status callbacks and inbound webhooks; expects the attributes `TwilioState` sets."""

    # ---- lifecycle: queued -> sent -> delivered, with status callbacks ----------------------------

    def advance(self, sid: str) -> Message:
        """Move message `sid` one step along its lifecycle now, sending its status callback."""
        self._step(sid)
        with self._lock:
            return self._messages[sid]

    def _take_step(self) -> Callable[[], None]:
        """The next due step, for the lifecycle thread (`DueJobs` calls this with the lock held)."""
        sid = self._jobs.pop()
        return lambda: self._step(sid)

    def _step(self, sid: str) -> None:
        with self._lock:
            message = self._messages.get(sid)
            if message is None or not message.steps:
                return
            status = message.steps.pop(0)
            now = self.clock().replace(microsecond=0)
            message.status, message.date_updated = status, now
            if status == "queued" and message.from_ is None:
                message.from_ = MESSAGING_SERVICE_FROM
            if status in ("sent", "delivered", "undelivered") and message.date_sent is None:
                message.date_sent = now
            if status in ("undelivered", "failed"):
                message.error_code = message.final_error_code
                message.error_message = DELIVERY_ERRORS.get(message.error_code or 0)
            if message.steps and self.auto_advance:
                self._jobs.schedule(self.callback_delay, sid)
            self._changed.notify_all()
            url, token = message.status_callback, self.accounts[message.account_sid]
            params = _status_params(message, now) if url and self.callbacks_enabled else None
        if url and params:
            self._post_webhook("status", url, params, token)

    def _post_webhook(
        self, kind: str, url: str, params: dict[str, str], token: str, timeout: float | None = None
    ) -> CallbackAttempt:
        signature = twilio_signature(token, url, params)
        attempt = CallbackAttempt(kind=kind, url=url, params=params, signature=signature)
        headers = {
            "X-Twilio-Signature": signature,
            "User-Agent": "TwilioProxy/1.1",
            "I-Twilio-Idempotency-Token": secrets.token_hex(16),
        }
        try:
            with requests.post(
                url,
                data=params,
                headers=headers,
                timeout=timeout or self.callback_timeout,
                allow_redirects=False,
            ) as resp:
                attempt.status_code = resp.status_code
                attempt.content_type = resp.headers.get("Content-Type", "")
                # TwiML is XML, UTF-8 unless declared otherwise; requests would guess Latin-1 for text/xml.
                charset = resp.encoding if "charset" in attempt.content_type.lower() else "utf-8"
                attempt.response_body = resp.content.decode(charset or "utf-8", errors="replace")
        except requests.RequestException as exc:
            attempt.error = f"{type(exc).__name__}: {exc}"
        with self._lock:
            self._webhooks.append(attempt)
            self._counters[f"{kind}_webhooks"] += 1
            self._changed.notify_all()
        return attempt

    # ---- inbound ---------------------------------------------------------------------------------

    def simulate_inbound(
        self,
        url: str,
        from_: str,
        to: str,
        body: str,
        auth_token: str | None = None,
        message_sid: str | None = None,
        *,
        account_sid: str | None = None,
        messaging_service_sid: str | None = None,
        timeout: float = 15.0,
    ) -> CallbackAttempt:
        """POST a signed incoming-SMS webhook to `url` as Twilio does; returns the app's TwiML reply."""
        account_sid = account_sid or next(iter(self.accounts))
        token = auth_token or self.accounts[account_sid]
        sid = message_sid or "SM" + secrets.token_hex(16)
        params = {
            "ToCountry": _country(to),
            "ToState": "",
            "SmsMessageSid": sid,
            "NumMedia": "0",
            "ToCity": "",
            "FromZip": "",
            "SmsSid": sid,
            "FromState": "",
            "SmsStatus": "received",
            "FromCity": "",
            "Body": body,
            "FromCountry": _country(from_),
            "To": to,
            "ToZip": "",
            "NumSegments": str(count_segments(body)),
            "MessageSid": sid,
            "AccountSid": account_sid,
            "From": from_,
            "ApiVersion": API_VERSION,
        }
        if messaging_service_sid:
            params["MessagingServiceSid"] = messaging_service_sid
        now = self.clock().replace(microsecond=0)
        with self._lock:
            self._inbound.append(
                Message(
                    sid=sid,
                    account_sid=account_sid,
                    to=to,
                    from_=from_,
                    body=body,
                    status="received",
                    direction="inbound",
                    num_segments=int(params["NumSegments"]),
                    messaging_service_sid=messaging_service_sid,
                    date_created=now,
                    date_updated=now,
                    date_sent=now,
                    seq=next(self._seq),
                )
            )
        return self._post_webhook("inbound", url, params, token, timeout=timeout)
