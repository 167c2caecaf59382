"""What China's carriers and providers punish, avoided by design: alerts coalesced, limits waited out, halts.

- Red-flag alerts: at most one text per on-call phone per send pass; the pass's pending alerts to one
  number become one text listing their record ids (`coalesce_alerts`).
- A per-number frequency limit (Aliyun isv.BUSINESS_LIMIT_CONTROL, Tencent LimitExceeded.*) defers the
  text: back to pending for the provider's window, never dropped (`hold_back`).
- A bad template, signature, credentials or balance fails every further text the same way: sending
  stops with one log line and a console alert (`halt`), held in SystemState under HALT_KEY, until the
  settings change (a new fingerprint) or an operator runs `flask sms resume`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from datetime import datetime, timedelta
from typing import Any, cast

from flask import current_app
from sqlalchemy import select, update
from sqlalchemy.engine import CursorResult
from sqlalchemy.exc import IntegrityError

from app.extensions import db
from app.models import OutboundMessage, OutboundStatus, Participant, SystemState
from app.sms.message import records_label
from app.sms.providers import ProviderError

log = logging.getLogger(__name__)

HALT_KEY = "sms.halted"
# A limit the provider gave no window for: try again after this.
DEFER_DEFAULT = timedelta(hours=1)


def settings_fingerprint(config: Any) -> str:
    """A digest of the settings a halt is about: a change (new template ids, signature) lifts the halt."""
    backend = config["SMS_BACKEND"]
    relevant = {
        "backend": backend,
        "templates": config.get("SMS_TEMPLATES") or {},
        "sign": config.get("ALIYUN_SMS_SIGN_NAME")
        if backend == "aliyun"
        else config.get("TENCENT_SMS_SIGN_NAME"),
        "key": config.get("ALIYUN_ACCESS_KEY_ID") if backend == "aliyun" else config.get("TENCENT_SECRET_ID"),
        "app": config.get("TENCENT_SMS_SDK_APP_ID"),
    }
    return hashlib.sha256(json.dumps(relevant, sort_keys=True).encode()).hexdigest()[:16]


def halt_state() -> dict[str, Any] | None:
    """The halt in force for the current settings (code, reason, at, backend), or None."""
    value: dict[str, Any] | None = db.session.scalar(
        select(SystemState.value).where(SystemState.key == HALT_KEY)
    )
    if not value or value.get("fingerprint") != settings_fingerprint(current_app.config):
        return None
    return value


_halt_lock = threading.Lock()  # one sender of this process at a time records a halt (hold_back)
_halts_recorded = 0  # halts this process has written: a sender re-reads the halt mid-batch only after one


def halts_recorded() -> int:
    """How many halts this process has recorded so far (a cheap hint; the database is the truth)."""
    return _halts_recorded


def halted() -> bool:
    """Whether sending is stopped by a provider error that every text would hit."""
    return halt_state() is not None


def halt_reason() -> str | None:
    """One line for logs and the console: which error stopped sending and what to fix."""
    state = halt_state()
    if state is None:
        return None
    return (
        f"SMS sending stopped at {state['at']}: {state['backend']} error {state['code']} ({state['reason']})"
    )


def halt(err: ProviderError, now: datetime) -> None:
    """Stop sending for every text: store the error (the caller commits) and log it once, loudly."""
    config = current_app.config
    value = {
        "code": str(err.code or ""),
        "reason": str(err)[:300],
        "at": now.isoformat(),
        "backend": config["SMS_BACKEND"],
        "fingerprint": settings_fingerprint(config),
    }
    row = db.session.get(SystemState, HALT_KEY, populate_existing=True)  # as committed, not as last seen
    if row is None:
        db.session.add(SystemState(key=HALT_KEY, value=value))
    else:
        if row.value and row.value.get("fingerprint") == value["fingerprint"]:
            return  # already halted for these settings: logged once
        row.value = value
    global _halts_recorded
    _halts_recorded += 1
    log.error(
        "SMS sending stopped: %s error %s (%s). Fix the template/signature/credentials in the provider's "
        "console or SMS_TEMPLATES, then restart or run `flask sms resume`",
        value["backend"],
        value["code"],
        value["reason"],
    )


def resume(now: datetime, actor: str, reason: str | None = None) -> dict[str, Any] | None:
    """Lift a halt (the operator fixed the cause), audited; commits. Returns the stop that was recorded.

    The one way to resume, for `flask sms resume` and anything else that offers it. A stop recorded for
    earlier settings (already lifted by changing them) is cleared too, and returned with `in_force` False.
    """
    from app import audit

    row = db.session.get(SystemState, HALT_KEY)
    if row is None or not row.value:
        return None
    was = {**row.value, "in_force": row.value.get("fingerprint") == settings_fingerprint(current_app.config)}
    row.value = None
    audit.record(
        actor,
        "sms.resumed",
        reason=reason,
        backend=was.get("backend"),
        code=was.get("code"),
        stopped_at=was.get("at"),
        resumed_at=now.isoformat(),
        in_force=was["in_force"],
    )
    db.session.commit()
    log.warning(
        "SMS sending resumed by %s (was stopped by %s error %s)", actor, was.get("backend"), was.get("code")
    )
    return was


def release_halted(msg: OutboundMessage) -> str:
    """A claimed row while sending is halted: back to pending, untouched otherwise; commits."""
    msg.status, msg.claimed_by, msg.claimed_at = OutboundStatus.PENDING, None, None
    msg.attempts = max(0, (msg.attempts or 1) - 1)
    db.session.commit()
    return "halted"


def hold_back(msg: OutboundMessage, err: ProviderError, now: datetime) -> str:
    """The provider did not take the text and it must wait: halted for everyone, or deferred; commits."""
    _hold(msg, err)
    if err.halt:
        # Senders of one process meet the same bad template at once: one records (and logs) the halt,
        # the others then find it recorded. Another process recording it first fails our insert.
        with _halt_lock:
            halt(err, now)
            try:
                db.session.commit()
            except IntegrityError:
                db.session.rollback()
                _hold(msg, err)
                db.session.commit()
        return "halted"
    msg.due_at = now + (err.defer or DEFER_DEFAULT)
    log.info(
        "message %s deferred by the provider's limit %s until %s", msg.id, err.code, msg.due_at.isoformat()
    )
    db.session.commit()
    return "deferred"


def _hold(msg: OutboundMessage, err: ProviderError) -> None:
    msg.status, msg.claimed_by, msg.claimed_at = OutboundStatus.PENDING, None, None
    msg.error_code = str(err.code)[:64] if err.code else None
    msg.error_message = str(err)[:500]


def coalesce_alerts(now: datetime) -> int:
    """Merge the due pending red-flag alerts to each on-call number into one text; commits; returns merged.

    The oldest row carries the text, with every record id in `params["records"]` (cut to fit with +N);
    the others are skipped with a reason naming it.
    """
    rows = db.session.execute(
        select(OutboundMessage.id, OutboundMessage.to_e164, OutboundMessage.params, Participant.record_id)
        .outerjoin(Participant, Participant.id == OutboundMessage.participant_id)
        .where(
            OutboundMessage.status == OutboundStatus.PENDING,
            OutboundMessage.kind == "redflag_alert",
            OutboundMessage.due_at <= now,
        )
        .order_by(OutboundMessage.id)
    ).all()
    by_number: dict[str, list[Any]] = {}
    for row in rows:
        by_number.setdefault(row.to_e164 or "", []).append(row)
    merged = 0
    for group in by_number.values():
        if len(group) < 2:
            continue
        records: list[str] = []
        for row in group:
            for record in (row.params or {}).get("record_ids") or [row.record_id or "?"]:
                if record not in records:
                    records.append(record)
        carrier, others = group[0], [row.id for row in group[1:]]
        db.session.execute(
            update(OutboundMessage)
            .where(OutboundMessage.id == carrier.id, OutboundMessage.status == OutboundStatus.PENDING)
            .values(params={"records": records_label(records), "record_ids": records}, updated_at=now),
            execution_options={"synchronize_session": False},
        )
        merged += cast(
            "CursorResult[Any]",  # an UPDATE's result, which has the row count
            db.session.execute(
                update(OutboundMessage)
                .where(OutboundMessage.id.in_(others), OutboundMessage.status == OutboundStatus.PENDING)
                .values(
                    status=OutboundStatus.SKIPPED,
                    error_message=f"coalesced into alert {carrier.id}",
                    updated_at=now,
                ),
                execution_options={"synchronize_session": False},
            ),
        ).rowcount
    db.session.commit()
    return merged
