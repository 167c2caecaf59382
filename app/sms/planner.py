"""The plan pass: one outbox row per open visit and due reminder slot, and manual reminders on request.

Planning looks only at visits that are open now (an indexed range on status and opening time),
so its cost follows the number of visits in their window, not the million scheduled ones.
The unique (visit, slot) constraint makes a second plan pass, or two at once, plan nothing new.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any, cast
from zoneinfo import ZoneInfo

from flask import current_app
from sqlalchemy import Table, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.sql import FromClause

from app import audit
from app.extensions import db
from app.models import OutboundMessage, OutboundStatus, Participant, Visit
from app.schedule import SendWindow, VisitSpec, compute_visit, parse_visit_plan
from app.schedule.engine import ReminderTime

if TYPE_CHECKING:
    from sqlalchemy.dialects.sqlite import Insert as SqliteInsert  # the PostgreSQL one has the same API

log = logging.getLogger(__name__)

CHUNK = 1000
STALE_EARLIER = "stale: a later reminder is due"


class CannotQueue(ValueError):
    """A manual reminder was refused; the message says why, for the coordinator."""


class OutsideSendWindow(CannotQueue):
    """It is outside the participant's local send window: ask the coordinator to confirm."""


@dataclass
class PlanResult:
    planned: int = 0
    stale: int = 0
    visits: int = 0

    def as_dict(self) -> dict[str, int]:
        return {"planned": self.planned, "stale": self.stale, "visits": self.visits}


def dialect_insert(table: FromClause) -> SqliteInsert:
    """INSERT … ON CONFLICT support for whichever database the app runs on."""
    if db.engine.dialect.name == "sqlite":
        from sqlalchemy.dialects.sqlite import insert
    else:
        from sqlalchemy.dialects.postgresql import insert  # type: ignore[assignment]  # same on-conflict API
    return insert(cast(Table, table))  # a model's __table__ is a Table


def _reminder_template(slot_index: int) -> str:
    return "invite" if slot_index == 0 else "reminder"


def plan_due(now: datetime) -> PlanResult:
    """Insert the reminder rows that are due by `now` and not planned yet; commits.

    When several slots of one visit are due and unplanned (the service was down), only the
    latest is planned to be sent; the earlier ones are recorded as skipped, never sent in a burst.
    """
    plan = parse_visit_plan(current_app.config["VISIT_PLAN"])
    specs = {spec.key: spec for spec in plan.visits}
    window = SendWindow.parse(current_app.config["SMS_SEND_WINDOW"])
    rows = db.session.execute(
        select(
            Visit.id,
            Visit.visit_key,
            Visit.schedule_version,
            Visit.participant_id,
            Participant.anchor_date,
            Participant.timezone,
            Participant.language,
            Participant.phone_e164,
        )
        .join(Participant, Participant.id == Visit.participant_id)
        .where(Visit.status == "open", Visit.opens_at <= now, Visit.closes_at > now)
    ).all()
    result = PlanResult(visits=len(rows))
    cache: dict[tuple[date, str, str], tuple[ReminderTime, ...]] = {}
    for start in range(0, len(rows), CHUNK):
        chunk = rows[start : start + CHUNK]
        planned = _planned_slots([row.id for row in chunk])
        inserts: list[dict[str, Any]] = []
        for row in chunk:
            spec = specs.get(row.visit_key)
            if spec is None:
                continue
            reminders = _reminders(cache, row.anchor_date, row.timezone, spec, window)
            due = [(i, r) for i, r in enumerate(reminders) if r.due_at <= now]
            if not due:
                continue
            done = planned.get(row.id, set())
            latest_index = due[-1][0]
            for index, reminder in due:
                if reminder.slot in done:
                    continue
                stale = index != latest_index
                inserts.append(
                    {
                        "dedupe_key": f"visit:{row.id}:{reminder.slot}",
                        "kind": "reminder",
                        "participant_id": row.participant_id,
                        "visit_id": row.id,
                        "slot": reminder.slot,
                        "to_e164": row.phone_e164,
                        "language": row.language,
                        "template": _reminder_template(index),
                        "status": OutboundStatus.SKIPPED if stale else OutboundStatus.PENDING,
                        "error_message": STALE_EARLIER if stale else None,
                        "due_at": reminder.due_at,
                        "schedule_version": row.schedule_version,
                        "created_by": "system:plan",
                        "created_at": now,
                        "updated_at": now,
                    }
                )
        if inserts:
            # Core executemany: one compiled statement for the whole chunk (the ORM path compiles per row).
            stmt = dialect_insert(OutboundMessage.__table__).on_conflict_do_nothing()
            db.session.connection().execute(stmt, inserts)
            result.planned += sum(1 for row in inserts if row["status"] == OutboundStatus.PENDING)
            result.stale += sum(1 for row in inserts if row["status"] == OutboundStatus.SKIPPED)
        db.session.commit()
    if result.planned or result.stale:
        log.info("planned %d reminders, skipped %d stale slots", result.planned, result.stale)
    return result


def _planned_slots(visit_ids: list[int]) -> dict[int, set[str]]:
    found: dict[int, set[str]] = {}
    if not visit_ids:
        return found
    for visit_id, slot in db.session.execute(
        select(OutboundMessage.visit_id, OutboundMessage.slot).where(
            OutboundMessage.visit_id.in_(visit_ids), OutboundMessage.kind == "reminder"
        )
    ):
        found.setdefault(visit_id, set()).add(slot)
    return found


def _reminders(
    cache: dict[tuple[date, str, str], tuple[ReminderTime, ...]],
    anchor: date,
    zone: str,
    spec: VisitSpec,
    window: SendWindow,
) -> tuple[ReminderTime, ...]:
    key = (anchor, zone, spec.key)
    if key not in cache:
        cache[key] = compute_visit(anchor, ZoneInfo(zone), spec, window).reminders
    return cache[key]


def in_send_window(participant: Participant, now: datetime) -> bool:
    """Whether `now` is inside SMS_SEND_WINDOW on the participant's local clock."""
    window = SendWindow.parse(current_app.config["SMS_SEND_WINDOW"])
    return window.contains(now.astimezone(ZoneInfo(participant.timezone)).time())


def queue_manual_reminder(
    visit: Visit, now: datetime, actor: str, *, outside_window_confirmed: bool = False
) -> OutboundMessage:
    """Queue a "send reminder now" text for the console; raises CannotQueue with the reason.

    The row is added to the session (the caller commits); the send pass picks it up at once.
    """
    participant = visit.participant
    reason = participant.sms_block_reason()
    if reason:
        raise CannotQueue(f"this participant cannot be texted ({reason})")
    if not visit.is_open_at(now):
        raise CannotQueue(f"the visit is not open (it is {visit.status})")
    interval = current_app.config.get("SMS_MANUAL_MIN_INTERVAL_MINUTES", 60)
    if interval:
        recent = db.session.scalar(
            select(func.count())
            .select_from(OutboundMessage)
            .where(
                OutboundMessage.participant_id == participant.id,
                OutboundMessage.kind == "manual",
                OutboundMessage.status.notin_(
                    (OutboundStatus.CANCELLED, OutboundStatus.SKIPPED, OutboundStatus.FAILED)
                ),
                OutboundMessage.created_at > now - timedelta(minutes=interval),
            )
        )
        if recent:
            raise CannotQueue(
                f"a manual reminder was already sent to this participant in the last {interval} minutes"
            )
    if not in_send_window(participant, now) and not outside_window_confirmed:
        raise OutsideSendWindow(
            f"it is outside the participant's local texting hours ({current_app.config['SMS_SEND_WINDOW']}); "
            "confirm to send anyway"
        )
    count = db.session.scalar(
        select(func.count())
        .select_from(OutboundMessage)
        .where(OutboundMessage.visit_id == visit.id, OutboundMessage.kind == "manual")
    )
    slot = f"manual-{(count or 0) + 1}"
    message = OutboundMessage(
        dedupe_key=f"visit:{visit.id}:{slot}",
        kind="manual",
        participant_id=participant.id,
        visit_id=visit.id,
        slot=slot,
        to_e164=participant.phone_e164,
        language=participant.language,
        template="reminder",
        status=OutboundStatus.PENDING,
        due_at=now,
        schedule_version=visit.schedule_version,
        created_by=actor,
        created_at=now,
    )
    try:
        with db.session.begin_nested():
            db.session.add(message)
    except IntegrityError:
        raise CannotQueue("another manual reminder for this visit was queued at the same moment") from None
    audit.record(
        actor,
        "sms.manual_queued",
        visit=visit,
        slot=slot,
        outside_window=not in_send_window(participant, now),
    )
    return message
