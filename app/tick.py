"""One full pass of the service's periodic work, shared by `flask tick` and the scheduler's jobs.

Each step is a plain function taking `now` and returning a small summary; a step that fails
is logged and does not stop the others, so a REDCap outage never holds back reminders.
The scheduler runs the same steps by name on their own intervals.
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


def sweep_step(now: datetime) -> dict[str, Any]:
    """Open visits whose window started, mark missed those that closed unanswered."""
    from app.participants.visits import sweep_visits

    result = sweep_visits(now)
    db.session.commit()
    return {"opened": len(result.opened), "missed": len(result.missed)}


def steps() -> dict[str, Step]:
    """The passes of one tick, in order. Each area registers its step here by name.

    Names are stable: the scheduler's jobs refer to them.
    """
    from app.redcap.rereads import det_step  # REDCap records re-read on a Data Entry Trigger, first
    from app.sms.steps import sms_steps

    bridge = _redcap_steps()  # roster facts and the questionnaire first, so sends use fresh ones; push last
    registry: dict[str, Step] = {"det": det_step, "roster": bridge["roster"], "metadata": bridge["metadata"]}
    registry["sweep"] = sweep_step
    registry.update(sms_steps())  # plan, reconcile, send
    registry["push"] = bridge["push"]
    return registry


def _redcap_steps() -> dict[str, Step]:
    """The REDCap bridge's steps: roster sync, metadata refresh and the push (no-ops without a token)."""
    from app.redcap.metadata import metadata_step
    from app.redcap.push.run import push_step
    from app.redcap.roster import roster_step

    return {"roster": roster_step, "metadata": metadata_step, "push": push_step}


def run_step(name: str, now: datetime | None = None) -> dict[str, Any]:
    """Run one named step inside its own error boundary."""
    now = now or utcnow()
    try:
        return steps()[name](now)
    except Exception:
        db.session.rollback()
        log.exception("step %s failed", name)
        return {"error": 1}


def run_tick(now: datetime | None = None, only: list[str] | None = None) -> dict[str, Any]:
    """Run every step once (or those in `only`); returns a flat summary such as {"sweep.opened": 3}."""
    now = now or utcnow()
    summary: dict[str, Any] = {}
    for name in steps():
        if only is not None and name not in only:
            continue
        for key, value in run_step(name, now).items():
            summary[f"{name}.{key}"] = value
    return summary
