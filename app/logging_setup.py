"""Logging that never carries participants' data.

Code is written not to log phone numbers, tokens or answers; this filter is the second
line of defence, scrubbing anything that looks like one before a record is written.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from datetime import UTC, datetime

_PHONE = re.compile(r"\+?\d[\d \-]{7,}\d")
_TOKEN_PATH = re.compile(r"(/s/)[A-Za-z0-9_\-]{8,}")
_SECRET_PARAM = re.compile(r"(?i)(token|secret|password|auth)([=:]\s*)\S+")


def scrub(text: str) -> str:
    """Mask phone-like digit runs, personal link tokens and secret-looking parameters."""
    text = _TOKEN_PATH.sub(r"\1[token]", text)
    text = _SECRET_PARAM.sub(r"\1\2[redacted]", text)
    return _PHONE.sub("[number]", text)


class ScrubFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        record.msg = scrub(message)
        record.args = None
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line, for the hospital's log collector."""

    def format(self, record: logging.LogRecord) -> str:
        payload = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            payload["exc"] = scrub(self.formatException(record.exc_info))
        return json.dumps(payload, ensure_ascii=False)


_configured = False


def setup_logging(level: str = "INFO", fmt: str = "text") -> None:
    """Configure the root logger once per process (later calls only adjust the level)."""
    global _configured
    root = logging.getLogger()
    root.setLevel(level)
    if _configured:
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(ScrubFilter())
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root.addHandler(handler)
    for noisy in ("werkzeug", "urllib3", "twilio.http_client"):
        logging.getLogger(noisy).addFilter(ScrubFilter())
    logging.getLogger("twilio.http_client").setLevel(logging.WARNING)
    _configured = True
