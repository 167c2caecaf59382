"""The console backend for `make run` and development: prints the text, logs a masked line, keeps a record.

The personal link is printed in full only under FOLLOWUP_ENV=development; in testing and production
(where SMS_BACKEND=console must be chosen on purpose) the printed text carries `/s/[token]` instead.

Its record (a JSON-lines file in the instance folder: id, recipient, our row id, time — never
the body) is the "provider's store" that crash reconciliation looks up, as it would Twilio's.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import sys
import threading
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from app.sms.providers.base import Accepted, SentRecord, SmsProvider, mask_number
from app.sms.texts import mask_body

log = logging.getLogger(__name__)
_lock = threading.Lock()


class ConsoleProvider(SmsProvider):
    """Delivers nothing: shows the text in the terminal and remembers that it was "sent"."""

    name = "console"
    rate_limited = False  # no carrier to protect; a newcomer should not wait a second per text

    def __init__(self, store: Path, echo: bool = True, show_links: bool = False) -> None:
        self.store = store
        self.echo = echo
        self.show_links = show_links

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> ConsoleProvider:
        return cls(
            Path(config["INSTANCE_PATH"]) / "console_sms.jsonl",
            echo=not config.get("TESTING"),
            show_links=config.get("FOLLOWUP_ENV") == "development",
        )

    def send(self, to: str, body: str, *, ref: str, status_callback: str | None) -> Accepted:
        sid = "SMconsole" + secrets.token_hex(12)
        entry = {"sid": sid, "to": to, "ref": ref, "at": datetime.now(UTC).isoformat()}
        with _lock:
            self.store.parent.mkdir(parents=True, exist_ok=True)
            with self.store.open("a", encoding="utf-8") as handle:
                handle.write(json.dumps(entry) + "\n")
                handle.flush()
                os.fsync(handle.fileno())
        log.info("console SMS %s to %s (%d chars)", sid, mask_number(to), len(body))
        if self.echo:
            # In development the link is printed in full, on purpose and only here: the machine is a
            # developer's with fictitious participants, and the printed link is the only way a newcomer
            # can open the questionnaire. Anywhere else stdout is a journal that outlives the link, so the
            # token is redacted. It goes to stdout, never through the logger; the Twilio backend never
            # prints or logs a body. The number stays masked everywhere: the link is all a newcomer needs.
            shown = body if self.show_links else mask_body(body)
            print(f"[console SMS to {mask_number(to)}] {shown}", file=sys.stdout, flush=True)
        return Accepted(sid=sid, status="sent", segments=None)

    def find_sent(self, to: str, since: datetime) -> list[SentRecord]:
        if not self.store.exists():
            return []
        found = []
        with _lock, self.store.open(encoding="utf-8") as handle:
            for line in handle:
                try:
                    entry = json.loads(line)
                except json.JSONDecodeError:
                    continue  # a line cut by a crash mid-write was never "sent"
                created = datetime.fromisoformat(entry["at"])
                if entry.get("to") == to and created >= since:
                    found.append(
                        SentRecord(entry["sid"], to, "sent", created, body=None, ref=str(entry.get("ref")))
                    )
        return list(reversed(found))
