"""Work-list source: console withdrawals and deaths REDCap refused to store, so they do not go unseen.

Listed by name in `app.console.worklist.SOURCES` (rank 41, beside the visit statuses REDCap refused).
"""

from __future__ import annotations

from datetime import datetime

from flask_babel import gettext as _
from sqlalchemy import select

from app.console.work_items import WorkItem
from app.extensions import db
from app.models import Participant, RedcapEnrollmentStatusPush, SyncStatus


def enrollment_push_failed(now: datetime, limit: int) -> list[WorkItem]:
    """Console withdrawals and deaths REDCap has not stored, while REDCap has not shown them either."""
    rows = db.session.execute(
        select(RedcapEnrollmentStatusPush, Participant)
        .join(Participant, RedcapEnrollmentStatusPush.participant_id == Participant.id)
        .where(
            RedcapEnrollmentStatusPush.sync_status == SyncStatus.FAILED,
            Participant.status_source == "console",
        )
        .order_by(RedcapEnrollmentStatusPush.queued_at)
        .limit(limit)
    ).all()
    return [
        WorkItem(
            rank=41,
            kind="enrollment_push_failed",
            participant_id=p.id,
            record_id=p.record_id,
            why=_(
                "The study status %(status)s recorded in the console is not in REDCap: %(error)s. "
                "Record it in REDCap's enrollment form.",
                status=row.status,
                error=(row.last_error or "—")[:300],
            ),
            sort_key=row.queued_at,
            action="open",
        )
        for row, p in rows
    ]
