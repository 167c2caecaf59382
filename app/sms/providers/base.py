"""The provider interface: what a send returns, what a lookup finds, the error, and `mask_number`."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from app.sms.message import Message


@dataclass(frozen=True)
class Accepted:
    """The provider took the text: its id and first status."""

    sid: str
    status: str
    segments: int | None = None


@dataclass(frozen=True)
class SentRecord:
    """A text the provider holds for a number (for reconciliation); `ref` is our row id when known."""

    sid: str
    to: str
    status: str
    created_at: datetime | None
    body: str | None = None
    ref: str | None = None


class ProviderError(Exception):
    """A send or lookup failed.

    `code`: the provider's error code (Twilio's are numbers, Aliyun's and Tencent's strings such as
    "isv.MOBILE_NUMBER_ILLEGAL"). `retryable`: worth trying again within the pass (429, 5xx,
    timeouts). `ambiguous`: the provider may have accepted the text anyway (5xx, read timeouts), so
    look before sending again. `defer`: this text must wait (a per-number frequency limit): it goes
    back to pending for that long, never dropped. `halt`: every further text would fail the same way
    (template, signature, credentials, balance): sending stops until an operator fixes it.
    """

    def __init__(
        self,
        message: str,
        *,
        code: int | str | None = None,
        http_status: int | None = None,
        retryable: bool = False,
        ambiguous: bool = False,
        defer: timedelta | None = None,
        halt: bool = False,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.http_status = http_status
        self.retryable = retryable
        self.ambiguous = ambiguous
        self.defer = defer
        self.halt = halt


class SmsProvider(ABC):
    """What the outbox needs from an SMS provider."""

    name: str = "base"
    # Whether SMS_RATE_PER_SECOND applies (a carrier is at the other end).
    rate_limited: bool = True
    # How long after accepting a text the provider may still leave it out of `find_sent` (Tencent lists a
    # text only once its delivery report exists). Until then "not found" proves nothing.
    listing_lag: timedelta = timedelta(0)

    @abstractmethod
    def send(self, to: str, body: str, *, ref: str, status_callback: str | None) -> Accepted:
        """Hand one text to the provider; raises ProviderError."""

    def send_message(self, to: str, message: Message, *, ref: str, status_callback: str | None) -> Accepted:
        """Hand one message over: free-text providers send its body; template providers override this."""
        return self.send(to, message.body, ref=ref, status_callback=status_callback)

    @abstractmethod
    def find_sent(self, to: str, since: datetime) -> list[SentRecord]:
        """Texts to `to` created at or after `since`, newest first; raises ProviderError."""

    def close(self) -> None:
        """Release connections (thread pools build one provider per thread)."""
        return None


def mask_number(number: str | None) -> str:
    """Every digit but the last two hidden, for log lines: '+8613800138001' -> '+***********01'."""
    if not number:
        return "-"
    digits = sum(c.isdigit() for c in number)
    seen, out = 0, []
    for c in number:
        if c.isdigit():
            seen += 1
            out.append(c if seen > digits - 2 else "*")
        else:
            out.append(c)
    return "".join(out)
