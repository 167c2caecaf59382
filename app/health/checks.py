"""The health report: plain counts and ages, computed with a few indexed queries."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import func, select, text

from app.extensions import db
from app.models import OutboundMessage, OutboundStatus, Submission, SyncStatus, SystemState, utcnow

HEARTBEAT_KEY = "scheduler.heartbeat"
REDCAP_ERROR_KEY = "redcap.last_error_at"


def _state_time(key: str) -> datetime | None:
    value = SystemState.read(key)
    if not value:
        return None
    return datetime.fromisoformat(value)


def health_report(config: Any, now: datetime | None = None) -> dict[str, Any]:
    """What `/healthz` answers; `ok` is false when the database or the scheduler is down."""
    now = now or utcnow()
    report: dict[str, Any] = {"ok": True, "database": "ok"}
    try:
        db.session.execute(text("SELECT 1"))
    except Exception:  # any driver error means "not reachable" to a monitor
        db.session.rollback()
        return {"ok": False, "database": "unreachable"}
    beat = _state_time(HEARTBEAT_KEY)
    age = None if beat is None else round((now - beat).total_seconds(), 1)
    report["scheduler_heartbeat_age_seconds"] = age
    if age is None or age > config["HEALTH_HEARTBEAT_MAX_AGE_SECONDS"]:
        report["ok"] = False
        report["scheduler"] = "stale" if age is not None else "never seen"
    else:
        report["scheduler"] = "ok"
    report["outbox_backlog"] = db.session.scalar(
        select(func.count())
        .select_from(OutboundMessage)
        .where(OutboundMessage.status.in_((OutboundStatus.PENDING, OutboundStatus.SENDING)))
    )
    report["redcap_push_backlog"] = db.session.scalar(
        select(func.count()).select_from(Submission).where(Submission.sync_status == SyncStatus.PENDING)
    )
    from app.sms.carriers import halt_reason

    halted = halt_reason()
    report["sms_sending"] = "halted" if halted else "ok"
    if halted:
        report["ok"] = False
        report["sms_halt_reason"] = halted
    last_error = _state_time(REDCAP_ERROR_KEY)
    report["redcap_last_error_at"] = last_error.isoformat() if last_error else None
    return report
