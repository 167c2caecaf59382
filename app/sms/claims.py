"""Claims on the outbox: who holds a row, and taking due rows atomically so two senders never share one."""

from __future__ import annotations

import os
import socket
import uuid
from datetime import datetime

from sqlalchemy import select, update

from app.extensions import db
from app.models import OutboundMessage, OutboundStatus


def worker_id(index: int = 0) -> str:
    """Who holds a claim: host, process and a per-pass nonce, so a restarted process never reuses one."""
    return f"{socket.gethostname()[:40]}:{os.getpid()}:{uuid.uuid4().hex[:6]}:{index}"


def claim(now: datetime, worker: str, limit: int = 1, ids: list[int] | None = None) -> list[int]:
    """Atomically mark up to `limit` due pending rows as `sending` for `worker`, commit, return their ids.

    PostgreSQL: WITH picked AS (SELECT … FOR UPDATE SKIP LOCKED) UPDATE … RETURNING, so concurrent
    senders take disjoint rows without waiting. SQLite: the same single statement, which runs
    under the database's one write lock; the outer `status = 'pending'` re-check makes it safe
    on any isolation level.
    """
    pick = (
        select(OutboundMessage.id)
        .where(OutboundMessage.status == OutboundStatus.PENDING, OutboundMessage.due_at <= now)
        .order_by(OutboundMessage.due_at, OutboundMessage.id)
        .limit(limit)
    )
    if ids is not None:
        pick = pick.where(OutboundMessage.id.in_(ids))
    values = {
        "status": OutboundStatus.SENDING,
        "claimed_at": now,
        "claimed_by": worker,
        "attempts": OutboundMessage.attempts + 1,
        "updated_at": now,
    }
    if db.engine.dialect.name == "postgresql":
        # A CTE runs once; an IN (subquery … LIMIT) may be re-run per row and claim more than asked.
        picked = pick.with_for_update(skip_locked=True).cte("picked")
        stmt = (
            update(OutboundMessage)
            .where(OutboundMessage.id == picked.c.id, OutboundMessage.status == OutboundStatus.PENDING)
            .values(**values)
            .returning(OutboundMessage.id)
        )
    else:
        stmt = (
            update(OutboundMessage)
            .where(
                OutboundMessage.id.in_(pick.scalar_subquery()),
                OutboundMessage.status == OutboundStatus.PENDING,
            )
            .values(**values)
            .returning(OutboundMessage.id)
        )
    claimed = list(db.session.connection().execute(stmt).scalars())
    db.session.commit()
    return claimed


def release(ids: list[int], worker: str, now: datetime) -> int:
    """Rows `worker` claimed but never began (its pass stopped first): pending again, as if never claimed.

    Only rows still `sending` under that claim and untouched since: nothing was composed or sent for
    them, so they are not left for reconcile to ask the provider about. Commits; returns how many.
    """
    if not ids:
        return 0
    result = db.session.execute(
        update(OutboundMessage)
        .where(
            OutboundMessage.id.in_(ids),
            OutboundMessage.status == OutboundStatus.SENDING,
            OutboundMessage.claimed_by == worker,
        )
        .values(
            status=OutboundStatus.PENDING,
            claimed_by=None,
            claimed_at=None,
            attempts=OutboundMessage.attempts - 1,
            updated_at=now,
        ),
        execution_options={"synchronize_session": False},
    )
    db.session.commit()
    return int(getattr(result, "rowcount", 0) or 0)


def skip_stale_reminders(now: datetime) -> int:
    """Pending reminders of a visit whose later slot is also due are skipped: only the latest goes out."""
    rows = db.session.execute(
        select(OutboundMessage.id, OutboundMessage.visit_id, OutboundMessage.slot).where(
            OutboundMessage.status == OutboundStatus.PENDING,
            OutboundMessage.kind == "reminder",
            OutboundMessage.due_at <= now,
        )
    ).all()
    latest: dict[int, tuple[int, int]] = {}
    for row in rows:
        order = _slot_order(row.slot)
        if row.visit_id not in latest or order > latest[row.visit_id][0]:
            latest[row.visit_id] = (order, row.id)
    stale = [row.id for row in rows if latest[row.visit_id][1] != row.id]
    for start in range(0, len(stale), 500):
        db.session.execute(
            update(OutboundMessage)
            .where(
                OutboundMessage.id.in_(stale[start : start + 500]),
                OutboundMessage.status == OutboundStatus.PENDING,
            )
            .values(
                status=OutboundStatus.SKIPPED, error_message="stale: a later reminder is due", updated_at=now
            ),
            execution_options={"synchronize_session": False},
        )
    db.session.commit()
    return len(stale)


def _slot_order(slot: str | None) -> int:
    try:
        return int((slot or "r0").lstrip("r"))
    except ValueError:
        return -1
