"""One full pass of the service's periodic work, shared by `flask tick` and the scheduler's jobs.

Each step is a plain function taking `now`; a step that fails is logged and does not stop
the others, so a REDCap outage never holds back reminders.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any

from app.extensions import db
from app.models import utcnow

log = logging.getLogger(__name__)

Step = Callable[[datetime], dict[str, Any]]


def _sweep(now: datetime) -> dict[str, Any]:
    from app.visits import sweep_visits

    result = sweep_visits(now)
    db.session.commit()
    return {"opened": len(result.opened), "missed": len(result.missed)}


def steps() -> list[tuple[str, Step]]:
    """The passes, in order. Other areas add theirs here (plan, send, push…)."""
    return [("sweep", _sweep)]


def run_tick(now: datetime | None = None) -> dict[str, Any]:
    """Run every step once; returns a flat summary such as {"sweep.opened": 3}."""
    now = now or utcnow()
    summary: dict[str, Any] = {}
    for name, step in steps():
        try:
            for key, value in step(now).items():
                summary[f"{name}.{key}"] = value
        except Exception:
            db.session.rollback()
            log.exception("tick step %s failed", name)
            summary[f"{name}.error"] = 1
    return summary
