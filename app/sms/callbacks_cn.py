"""Receipts and replies pushed by Aliyun (SmsReport, SmsUp) and Tencent Cloud (status, reply callbacks).

Neither provider signs its callbacks, so the URL carries `?secret=` (SMS_CALLBACK_SECRET, compared in
constant time) and a payload is believed only about our own texts: a receipt changes a row only
through its provider id (BizId / SerialNo) or, for Aliyun, our own OutId. Receipts go through
app.sms.delivery (stored once per id, status and code; one that beats the send call's answer waits
for it); replies go through app.sms.inbound.handle_inbound. Items that make no sense are counted and
skipped, never a reason to refuse the whole push (the provider would push it again, for ever).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from flask import current_app
from sqlalchemy import select

from app.extensions import db
from app.models import OutboundMessage
from app.sms.delivery import record_callbacks
from app.sms.inbound import handle_inbound

log = logging.getLogger(__name__)

MAX_ITEMS = 20000  # per push: more is refused whole (413), nothing applied
_SID = re.compile(r"^[A-Za-z0-9_.:^\-]{1,64}$")  # Aliyun BizIds look like 900619746936498440^0
_DIGITS = re.compile(r"\d+")
ADOPTED_PREFIX = "aliyun-out-"  # SIDs of texts adopted after a crash (QuerySendDetails has no BizId)


class BadPush(ValueError):
    """The body is not what the provider sends (not JSON, not a list of objects, too many items)."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


@dataclass
class PushResult:
    """How a push was handled: items applied to known texts, stored, skipped as malformed."""

    received: int = 0
    applied: int = 0
    skipped: int = 0


def secret_ok(given: str | None) -> bool:
    """Whether the URL's secret matches SMS_CALLBACK_SECRET (nothing configured: nothing accepted)."""
    configured = current_app.config.get("SMS_CALLBACK_SECRET") or ""
    if not configured or not given:
        return False
    return hmac.compare_digest(given.encode("utf-8"), configured.encode("utf-8"))


def items(payload: Any) -> list[dict[str, Any]]:
    """The push as a list of objects (one object is taken as a list of one); raises BadPush."""
    if isinstance(payload, dict):
        payload = [payload]
    if not isinstance(payload, list):
        raise BadPush("expected a JSON array of objects")
    if len(payload) > MAX_ITEMS:
        raise BadPush(f"too many items in one push (at most {MAX_ITEMS})", status=413)
    return payload


def _text(item: dict[str, Any], key: str, limit: int = 200) -> str:
    value = item.get(key)
    return "" if value is None or isinstance(value, (dict, list)) else str(value).strip()[:limit]


def mainland_e164(number: str, nationcode: str = "") -> str | None:
    """+86… from the forms the providers use (11 digits, 86…, +86…, with a separate nation code)."""
    digits = "".join(_DIGITS.findall(number or ""))
    code = "".join(_DIGITS.findall(nationcode or ""))
    if code and code != "86":
        return f"+{code}{digits}" if 6 <= len(digits) <= 14 else None
    if len(digits) == 13 and digits.startswith("86"):
        digits = digits[2:]
    if len(digits) == 11 and digits.startswith("1"):
        return "+86" + digits
    return None


def _truthy(value: Any) -> bool | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    return None


def aliyun_reports(payload: Any, now: datetime) -> PushResult:
    """An Aliyun SmsReport push: success -> delivered, else undelivered with err_code; commits."""
    batch = items(payload)
    result = PushResult(received=len(batch))
    reports: list[tuple[str, str, str | None]] = []
    out_ids: dict[int, str] = {}
    parsed: list[tuple[str, int | None, bool, str]] = []
    for item in batch:
        if not isinstance(item, dict):
            result.skipped += 1
            continue
        biz_id, out_id = _text(item, "biz_id", 100), _text(item, "out_id", 100)
        success = _truthy(item.get("success"))
        if not _SID.match(biz_id) or success is None:
            result.skipped += 1
            continue
        ref = int(out_id) if out_id.isdigit() and len(out_id) < 18 else None
        parsed.append((biz_id, ref, success, _text(item, "err_code", 64)))
    refs = {ref for _, ref, _, _ in parsed if ref is not None}
    for start in range(0, len(refs), 500):
        chunk = sorted(refs)[start : start + 500]
        for row_id, sid in db.session.execute(
            select(OutboundMessage.id, OutboundMessage.provider_sid).where(OutboundMessage.id.in_(chunk))
        ):
            if sid and sid.startswith(ADOPTED_PREFIX):
                out_ids[row_id] = sid
    for biz_id, ref, success, err_code in parsed:
        # A text adopted after a crash is known by our OutId, not by its BizId.
        sid = out_ids.get(ref, biz_id) if ref is not None else biz_id
        status = "delivered" if success else "undelivered"
        reports.append((sid, status, None if success else (err_code or "UNKNOWN")))
    result.applied = record_callbacks(reports, now)
    _log("aliyun report", result)
    return result


def tencent_statuses(payload: Any, now: datetime) -> PushResult:
    """A Tencent Cloud status push: SUCCESS -> delivered, FAIL -> undelivered with errmsg; commits."""
    batch = items(payload)
    result = PushResult(received=len(batch))
    reports: list[tuple[str, str, str | None]] = []
    for item in batch:
        if not isinstance(item, dict):
            result.skipped += 1
            continue
        sid, status = _text(item, "sid", 100), _text(item, "report_status", 20).upper()
        if not _SID.match(sid) or status not in ("SUCCESS", "FAIL"):
            result.skipped += 1
            continue
        if status == "SUCCESS":
            reports.append((sid, "delivered", None))
        else:
            reports.append((sid, "undelivered", _text(item, "errmsg", 64) or "UNKNOWN"))
    result.applied = record_callbacks(reports, now)
    _log("tencent status", result)
    return result


def aliyun_replies(payload: Any, now: datetime) -> PushResult:
    """An Aliyun SmsUp push: each reply through handle_inbound (STOP/TD/退订 …); commits."""
    batch = items(payload)
    result = PushResult(received=len(batch))
    for item in batch:
        number = mainland_e164(_text(item, "phone_number", 40)) if isinstance(item, dict) else None
        sequence = _text(item, "sequence_id", 40) if isinstance(item, dict) else ""
        if number is None or not sequence:
            result.skipped += 1
            continue
        body = _text(item, "content", 1600)
        handle_inbound(f"aliyun-up-{sequence}"[:64], number, "", body, now, answer_inline=False)
        result.applied += 1
    _log("aliyun up", result)
    return result


def tencent_replies(payload: Any, now: datetime) -> PushResult:
    """A Tencent Cloud reply push: each reply through handle_inbound; commits.

    The push carries no id of its own, so a digest of number, time and text names the reply: a
    repeated push of the same reply is handled once.
    """
    batch = items(payload)
    result = PushResult(received=len(batch))
    for item in batch:
        if not isinstance(item, dict):
            result.skipped += 1
            continue
        number = mainland_e164(_text(item, "mobile", 40), _text(item, "nationcode", 8))
        if number is None:
            result.skipped += 1
            continue
        body, when = _text(item, "text", 1600), _text(item, "time", 40)
        digest = hashlib.sha256(f"{number}|{when}|{body}".encode()).hexdigest()[:40]
        handle_inbound(f"tencent-reply-{digest}", number, "", body, now, answer_inline=False)
        result.applied += 1
    _log("tencent reply", result)
    return result


def _log(what: str, result: PushResult) -> None:
    log.info(
        "%s push: %d items, %d applied, %d skipped", what, result.received, result.applied, result.skipped
    )
