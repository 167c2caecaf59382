"""What a send-time check answers: send, skip (final, with a reason) or defer (until a later moment).

Shared by `app.sms.checks` and the checks other areas contribute (`app.redcap.freshness`); imports nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class Decision:
    """send / skip (final, with reason) / defer (back to pending until `until`)."""

    action: str
    reason: str = ""
    until: datetime | None = None


SEND = Decision("send")

SEND = Decision("send")
