"""The study statuses queue: ended study statuses recorded in the console, into REDCap's enrollment form.

See `app.redcap.enrollment` for why the roster keeps the console's status until REDCap has recorded it.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import select, update

from app import audit
from app.extensions import db
from app.models import Participant
from app.models.redcap_sync import PUSHED_STUDY_STATUSES, RedcapEnrollmentStatusPush
from app.redcap.enrollment import status_code
from app.redcap.push.queue import ACTOR, PushItem, PushQueue


def queue_enrollment_status(
    participant: Participant, status: str, now: datetime
) -> RedcapEnrollmentStatusPush:
    """Queue the ended study status for REDCap's enrollment form, in the caller's transaction."""
    if status not in PUSHED_STUDY_STATUSES:
        raise ValueError(
            f"unknown study status for REDCap: {status!r} (one of {', '.join(PUSHED_STUDY_STATUSES)})"
        )
    if participant.id is None:
        db.session.flush()
    row = db.session.scalar(
        select(RedcapEnrollmentStatusPush).where(RedcapEnrollmentStatusPush.participant_id == participant.id)
    )
    if row is None:
        row = RedcapEnrollmentStatusPush(participant_id=participant.id, status=status)
        db.session.add(row)
    row.status = status
    row.requeue(now)
    return row


class EnrollmentStatusQueue(PushQueue):
    """The push pass's third queue: ended study statuses into the enrollment event."""

    model = RedcapEnrollmentStatusPush
    kind = "enrollment_push"

    @property
    def status_field(self) -> str | None:
        return (self.ctx.config.get("REDCAP_ROSTER_FIELDS") or {}).get("status")

    def next_batch(self, last_id: int, size: int) -> tuple[list[PushItem], int]:
        stmt = self.due(
            select(
                RedcapEnrollmentStatusPush.id, RedcapEnrollmentStatusPush.status, Participant.record_id
            ).join(Participant, RedcapEnrollmentStatusPush.participant_id == Participant.id),
            last_id,
            size,
        )
        rows = db.session.execute(stmt).all()
        if not rows:
            return [], 0
        event = self.ctx.config["REDCAP_ENROLLMENT_EVENT"]
        items: list[PushItem] = []
        for push_id, status, record_id in rows:
            code = status_code(self.ctx.config, status)
            if not self.status_field or code is None:
                self.mark_invalid(
                    push_id, [f"no REDCap study status field or code configured for {status!r}"]
                )
                continue
            row = self.ctx.base_row(record_id, event)
            row[self.status_field] = code
            items.append(PushItem(push_id, row))
        return items, rows[-1][0]

    def keep_redcaps(self, items: list[PushItem]) -> list[PushItem]:
        """Never write over a different ended status staff entered in REDCap: one export per window."""
        field = self.status_field
        if not items or not field:
            return items
        record_field = self.ctx.record_field
        event = self.ctx.config["REDCAP_ENROLLMENT_EVENT"]
        rows = self.ctx.client.export_records(
            [record_field, field],
            records=sorted({item.row[record_field] for item in items}),
            events=[event] if self.ctx.longitudinal else None,
        )
        held = {
            str(r.get(record_field, "")): str(r.get(field, "") or "")
            for r in rows
            if not r.get("redcap_repeat_instrument")
            and (not self.ctx.longitudinal or str(r.get("redcap_event_name", "")) in ("", event))
        }
        codes = {str(k): v for k, v in (self.ctx.config.get("REDCAP_STATUS_CODES") or {}).items()}
        send: list[PushItem] = []
        same: list[int] = []
        for item in items:
            current = held.get(item.row[record_field])
            if current is None:  # never create a record in REDCap from here
                self._fail(item.id, "not pushed: the record is not in REDCap's enrollment event")
            elif current == item.row[field]:
                same.append(item.id)
            elif not current or codes.get(current) == "active":
                send.append(item)
            else:
                self._keep(item.id, current, codes.get(current))
        self.mark_pushed(same)
        return send

    def mark_pushed(self, ids: Sequence[int]) -> None:
        """Mark pushed, and forget those participants' roster hash: REDCap's row changed under it.

        So the next roster sync reads the row again, even when staff later set it back to exactly what
        it was before (re-activation), and applies it.
        """
        super().mark_pushed(ids)
        if ids:
            pushed = select(RedcapEnrollmentStatusPush.participant_id).where(
                RedcapEnrollmentStatusPush.id.in_(list(ids))
            )
            db.session.execute(update(Participant).where(Participant.id.in_(pushed)).values(roster_hash=None))

    def _keep(self, item_id: int, current: str, meaning: str | None) -> None:
        self._fail(
            item_id,
            f"not pushed: REDCap already holds study status code {current!r} ({meaning or 'unknown'}),"
            " entered there; REDCap's value was kept",
        )

    def _fail(self, item_id: int, message: str) -> None:
        db.session.execute(
            update(RedcapEnrollmentStatusPush)
            .where(RedcapEnrollmentStatusPush.id == item_id)
            .values(sync_status="failed", next_attempt_at=None, last_error=message)
        )
        self.audit_failure(item_id, "redcap.enrollment_status_kept")

    def audit_failure(self, item_id: int, action: str) -> None:
        participant_id = db.session.scalar(
            select(RedcapEnrollmentStatusPush.participant_id).where(RedcapEnrollmentStatusPush.id == item_id)
        )
        participant = db.session.get(Participant, participant_id) if participant_id else None
        audit.record(ACTOR, action, participant=participant, enrollment_push_id=item_id)

    def count_pushed(self, n: int) -> None:
        self.ctx.report.enrollment_pushed += n
