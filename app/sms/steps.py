"""The SMS engine's tick steps (plan, reconcile, send), shared by `flask tick` and the scheduler's jobs."""

from __future__ import annotations

from datetime import datetime
from typing import Any


def plan_step(now: datetime) -> dict[str, Any]:
    """Plan the reminders due by `now` (one row per visit and slot)."""
    from app.sms.planner import plan_due

    return plan_due(now).as_dict()


def reconcile_step(now: datetime) -> dict[str, Any]:
    """Settle rows a crashed sender left in `sending`, by asking the provider."""
    from app.sms.reconcile import reconcile_stuck

    return reconcile_stuck(now)


def send_step(now: datetime) -> dict[str, Any]:
    """Send everything due, re-checked at send time, at the configured rate."""
    from app.sms.sender import send_due

    return send_due(now)


def sms_steps() -> dict[str, Any]:
    """The steps in their order: plan before reconcile before send."""
    return {"plan": plan_step, "reconcile": reconcile_step, "send": send_step}
