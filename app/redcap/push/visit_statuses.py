"""The visit statuses queue: completed, missed, opted-out and withdrawn visits, into REDCap's contact form.

Queueing (`queue_status_push`, `enqueue_missed_visits`) adds to the caller's transaction; the queue class
is what the push pass drains.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import or_, select, update

from app.extensions import db
from app.models import Participant, Visit
from app.models.redcap_sync import PUSHED_VISIT_STATUSES, RedcapStatusPush
from app.redcap.push.queue import INTERIM_VISIT_STATUSES, PushItem, PushQueue


def queue_status_push(visit: Visit, status: str, now: datetime) -> RedcapStatusPush:
    """Queue the visit's status (completed, missed, opted_out, withdrawn) for REDCap's contact instrument.

    Adds to the caller's transaction, so the status is queued exactly when the visit change commits.
    """
    if status not in PUSHED_VISIT_STATUSES:
        raise ValueError(
            f"unknown visit status for REDCap: {status!r} (one of {', '.join(PUSHED_VISIT_STATUSES)})"
        )
    if visit.id is None:
        db.session.flush()
    row = db.session.scalar(select(RedcapStatusPush).where(RedcapStatusPush.visit_id == visit.id))
    if row is None:
        row = RedcapStatusPush(visit_id=visit.id, status=status, queued_at=now, next_attempt_at=now)
        db.session.add(row)
        return row
    if row.status == status and row.sync_status in ("pending", "pushed"):
        return row
    row.status = status
    row.requeue(now)
    return row


class StatusQueue(PushQueue):
    model = RedcapStatusPush
    kind = "status_push"

    def keep_redcaps(self, items: list[PushItem]) -> list[PushItem]:
        """Never write a visit status over one staff entered in REDCap: one export per window.

        A status REDCap already holds is marked pushed; a different one is kept, and the row is marked
        failed with the reason for coordinators (audited), not retried.
        """
        status_field = (self.ctx.config.get("REDCAP_CONTACT_FIELDS") or {}).get("visit_status")
        if not items or not status_field:
            return items
        record_field = self.ctx.record_field
        events = sorted({item.row.get("redcap_event_name", "") for item in items} - {""})
        rows = self.ctx.client.export_records(
            [record_field, status_field],
            records=sorted({item.row[record_field] for item in items}),
            events=events or None,
        )
        codes = self.ctx.config.get("REDCAP_VISIT_STATUS_CODES") or {}
        interim = {codes[s] for s in INTERIM_VISIT_STATUSES if codes.get(s)}  # ours, written to be replaced
        held = {
            (str(r.get(record_field, "")), str(r.get("redcap_event_name", ""))): str(r.get(status_field, ""))
            for r in rows
        }
        send: list[PushItem] = []
        same: list[int] = []
        for item in items:
            current = held.get((item.row[record_field], item.row.get("redcap_event_name", "")), "")
            if not current or current in interim:
                send.append(item)
                continue
            if current == item.row.get(status_field):
                same.append(item.id)
                continue
            db.session.execute(
                update(RedcapStatusPush)
                .where(RedcapStatusPush.id == item.id)
                .values(
                    sync_status="failed",
                    next_attempt_at=None,
                    last_error=(
                        f"not pushed: REDCap already holds visit status code {current!r} for this visit "
                        "(entered there); REDCap's value was kept"
                    ),
                )
            )
            self.audit_failure(item.id, "redcap.status_kept")
        self.mark_pushed(same)
        return send

    def next_batch(self, last_id: int, size: int) -> tuple[list[PushItem], int]:
        stmt = self.due(
            select(
                RedcapStatusPush.id,
                RedcapStatusPush.status,
                Visit.event_name,
                Visit.invited_at,
                Visit.reminders_sent,
                Participant.record_id,
            )
            .join(Visit, RedcapStatusPush.visit_id == Visit.id)
            .join(Participant, Visit.participant_id == Participant.id),
            last_id,
            size,
        )
        rows = db.session.execute(stmt).all()
        if not rows:
            return [], 0
        items: list[PushItem] = []
        for push_id, status, event, invited_at, reminders, record_id in rows:
            values = self.ctx.contact_values(status, invited_at, reminders, None)
            status_field = (self.ctx.config.get("REDCAP_CONTACT_FIELDS") or {}).get("visit_status")
            if not status_field or status_field not in values:
                self.mark_invalid(
                    push_id, [f"no REDCap contact field or code configured for status {status!r}"]
                )
                continue
            row = self.ctx.base_row(record_id, event)
            row.update(values)
            items.append(PushItem(push_id, row))
        return items, rows[-1][0]

    def count_pushed(self, n: int) -> None:
        self.ctx.report.statuses_pushed += n


def enqueue_missed_visits(now: datetime, limit: int = 1000) -> int:
    """Queue a status push for every missed visit that has none yet (opted-out participants as opted_out).

    Derived from the visits themselves, so a sweep that crashed before queueing loses nothing.
    """
    queued = 0
    while True:
        rows = db.session.execute(
            select(Visit.id, Participant.opted_out)
            .join(Participant, Visit.participant_id == Participant.id)
            .outerjoin(RedcapStatusPush, RedcapStatusPush.visit_id == Visit.id)
            .where(
                Visit.status == "missed",
                or_(RedcapStatusPush.id.is_(None), RedcapStatusPush.status.in_(INTERIM_VISIT_STATUSES)),
            )
            .order_by(Visit.id)
            .limit(limit)
        ).all()
        if not rows:
            return queued
        interim = {
            push.visit_id: push
            for push in db.session.scalars(
                select(RedcapStatusPush).where(RedcapStatusPush.visit_id.in_([r[0] for r in rows]))
            )
        }
        for visit_id, opted_out in rows:
            status = "opted_out" if opted_out else "missed"
            push = interim.get(visit_id)
            if push is None:
                db.session.add(
                    RedcapStatusPush(visit_id=visit_id, status=status, queued_at=now, next_attempt_at=now)
                )
                continue
            push.status = status
            push.requeue(now)
        db.session.flush()
        queued += len(rows)
