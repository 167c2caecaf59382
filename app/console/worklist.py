"""The work list: what needs a coordinator now, most urgent first, each row with its reason and action.

Each kind of work is a *source*: a function of `now` returning rows, each row with its rank (lower = more
urgent). `SOURCES` at the end names every source, in rank order, this module's own and those of other
areas (the study statuses REDCap refused, `app.console.enrollment_work`); a new kind is added there, by
name. The page renders a row's `action` by name.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from flask_babel import gettext as _
from sqlalchemy import and_, exists, func, select
from sqlalchemy.sql.selectable import Exists

from app.console.enrollment_work import enrollment_push_failed
from app.console.work_items import Source, WorkItem, WorkList
from app.extensions import db
from app.models import (
    OutboundMessage,
    Participant,
    RedcapStatusPush,
    StudyStatus,
    Submission,
    SyncStatus,
    Visit,
    VisitStatus,
)
from app.models.messaging import NOT_DELIVERED_STATUSES, SENT_STATUSES
from app.models.visit import LIVE_STATUSES

SOURCE_LIMIT = 200
CLOSING_SOON = timedelta(hours=48)


def build_worklist(now: datetime, limit: int = SOURCE_LIMIT) -> WorkList:
    """Every source's rows, by rank and then by each source's own urgency (oldest or soonest first)."""
    items: list[WorkItem] = []
    truncated: list[str] = []
    for kind, source in SOURCES:
        rows = source(now, limit + 1)
        if len(rows) > limit:
            truncated.append(kind)
            rows = rows[:limit]
        items.extend(rows)
    items.sort(key=lambda item: (item.rank, item.sort_key))
    return WorkList(items=items, truncated=truncated, alerts=service_alerts())


def service_alerts() -> list[str]:
    """Problems that stop work for everyone, not one participant: today, SMS sending halted."""
    from app.sms.carriers import halt_reason

    reason = halt_reason()
    return [reason] if reason else []


def _has_live_visit() -> Exists:
    return exists().where(Visit.participant_id == Participant.id, Visit.status.in_(LIVE_STATUSES))


def red_flags(now: datetime, limit: int) -> list[WorkItem]:
    """Answers that raised a red flag nobody has acknowledged yet (oldest first)."""
    rows = db.session.execute(
        select(Submission, Visit, Participant)
        .join(Visit, Submission.visit_id == Visit.id)
        .join(Participant, Visit.participant_id == Participant.id)
        .where(Submission.red_flag.is_(True), Submission.red_flag_acknowledged_at.is_(None))
        .order_by(Submission.submitted_at)
        .limit(limit)
    ).all()
    return [
        WorkItem(
            rank=10,
            kind="red_flag",
            participant_id=p.id,
            record_id=p.record_id,
            visit_id=v.id,
            visit_key=v.visit_key,
            submission_id=s.id,
            why=_("Red flag not acknowledged: %(reasons)s", reasons="; ".join(s.red_flag_reasons or [])),
            sort_key=s.submitted_at,
            action="acknowledge",
        )
        for s, v, p in rows
    ]


def closing_soon(now: datetime, limit: int) -> list[WorkItem]:
    """Open visits whose window closes within 48 hours without an answer (soonest first)."""
    rows = db.session.execute(
        select(Visit, Participant)
        .join(Participant, Visit.participant_id == Participant.id)
        .where(Visit.status == VisitStatus.OPEN, Visit.closes_at > now, Visit.closes_at <= now + CLOSING_SOON)
        .where(~exists().where(Submission.visit_id == Visit.id))
        .order_by(Visit.closes_at)
        .limit(limit)
    ).all()
    items = []
    for v, p in rows:
        hours = max(0, int((v.closes_at - now).total_seconds() // 3600))
        items.append(
            WorkItem(
                rank=20,
                kind="closing",
                participant_id=p.id,
                record_id=p.record_id,
                visit_id=v.id,
                visit_key=v.visit_key,
                why=_("Window closes in %(hours)s h with no answer", hours=hours),
                sort_key=v.closes_at,
                action="remind",
                extra={"blocked": p.sms_block_reason()},
            )
        )
    return items


def undelivered(now: datetime, limit: int) -> list[WorkItem]:
    """Participants whose latest text bounced, or whose number the provider reported unusable."""
    latest = (
        select(OutboundMessage.participant_id, func.max(OutboundMessage.id).label("last_id"))
        .where(OutboundMessage.status.in_(SENT_STATUSES))
        .group_by(OutboundMessage.participant_id)
        .subquery()
    )
    rows = db.session.execute(
        select(OutboundMessage, Participant)
        .join(latest, and_(latest.c.last_id == OutboundMessage.id))
        .join(Participant, OutboundMessage.participant_id == Participant.id)
        .where(OutboundMessage.status.in_(NOT_DELIVERED_STATUSES))
        .where(
            Participant.status == StudyStatus.ACTIVE,
            Participant.phone_status != "unusable",
            _has_live_visit(),
        )
        .order_by(OutboundMessage.updated_at)
        .limit(limit)
    ).all()
    items = [
        WorkItem(
            rank=30,
            kind="undelivered",
            participant_id=p.id,
            record_id=p.record_id,
            visit_id=m.visit_id,
            why=_(
                "Last text %(status)s (error %(code)s)",
                status=m.status,
                code=m.error_code or "—",
            ),
            sort_key=m.updated_at,
            action="participant",
        )
        for m, p in rows
    ]
    unusable = db.session.scalars(
        select(Participant)
        .where(
            Participant.status == StudyStatus.ACTIVE,
            Participant.phone_status == "unusable",
            _has_live_visit(),
        )
        .order_by(Participant.updated_at)
        .limit(limit)
    ).all()
    items += [
        WorkItem(
            rank=31,
            kind="unusable",
            participant_id=p.id,
            record_id=p.record_id,
            why=_("Number unusable: %(error)s", error=p.phone_error or p.phone_status),
            sort_key=p.updated_at,
            action="phone",
        )
        for p in unusable
    ]
    return items


def push_failed(now: datetime, limit: int) -> list[WorkItem]:
    """Answers REDCap refused: they wait for a fix and a retry (oldest first)."""
    rows = db.session.execute(
        select(Submission, Visit, Participant)
        .join(Visit, Submission.visit_id == Visit.id)
        .join(Participant, Visit.participant_id == Participant.id)
        .where(Submission.sync_status == SyncStatus.FAILED)
        .order_by(Submission.submitted_at)
        .limit(limit)
    ).all()
    return [
        WorkItem(
            rank=40,
            kind="push_failed",
            participant_id=p.id,
            record_id=p.record_id,
            visit_id=v.id,
            visit_key=v.visit_key,
            submission_id=s.id,
            why=_("REDCap refused the answers: %(error)s", error=(s.last_error or "—")[:300]),
            sort_key=s.submitted_at,
            action="retry",
        )
        for s, v, p in rows
    ]


def status_push_failed(now: datetime, limit: int) -> list[WorkItem]:
    """Visit statuses (completed in clinic, missed, withdrawn…) REDCap refused to store."""
    rows = db.session.execute(
        select(RedcapStatusPush, Visit, Participant)
        .join(Visit, RedcapStatusPush.visit_id == Visit.id)
        .join(Participant, Visit.participant_id == Participant.id)
        .where(RedcapStatusPush.sync_status == SyncStatus.FAILED)
        .order_by(RedcapStatusPush.queued_at)
        .limit(limit)
    ).all()
    return [
        WorkItem(
            rank=41,
            kind="status_push_failed",
            participant_id=p.id,
            record_id=p.record_id,
            visit_id=v.id,
            visit_key=v.visit_key,
            why=_(
                "REDCap refused the visit status %(status)s: %(error)s",
                status=row.status,
                error=(row.last_error or "—")[:300],
            ),
            sort_key=row.queued_at,
            action="retry_status",
            extra={"push_id": row.id},
        )
        for row, v, p in rows
    ]


def redcap_conflicts(now: datetime, limit: int) -> list[WorkItem]:
    """Answers held back because REDCap already had staff's data for the visit (decided on its page)."""
    rows = db.session.execute(
        select(Submission, Visit, Participant)
        .join(Visit, Submission.visit_id == Visit.id)
        .join(Participant, Visit.participant_id == Participant.id)
        .where(Submission.sync_status == SyncStatus.CONFLICT)
        .order_by(Submission.submitted_at)
        .limit(limit)
    ).all()
    return [
        WorkItem(
            rank=42,
            kind="conflict",
            participant_id=p.id,
            record_id=p.record_id,
            visit_id=v.id,
            visit_key=v.visit_key,
            submission_id=s.id,
            why=_("REDCap already holds other data for this visit: compare and decide"),
            sort_key=s.submitted_at,
            action="conflict",
        )
        for s, v, p in rows
    ]


def no_usable_phone(now: datetime, limit: int) -> list[WorkItem]:
    """Active participants with visits ahead who cannot be texted: no number, invalid, or no consent."""
    rows = db.session.scalars(
        select(Participant)
        .where(Participant.status == StudyStatus.ACTIVE, _has_live_visit())
        .where(
            (Participant.phone_status.in_(("missing", "invalid")))
            | Participant.phone_e164.is_(None)
            | Participant.sms_consent.is_(False)
        )
        .order_by(Participant.record_id)
        .limit(limit)
    ).all()
    items = []
    for p in rows:
        # A good number without consent needs consent (or a call), not a new number.
        if not p.sms_consent and p.phone_status == "ok" and p.phone_e164:
            why, action = _("No SMS consent: contact by phone or in clinic"), "consent"
        else:
            why = _("No usable phone number (%(status)s)", status=p.phone_error or p.phone_status)
            action = "phone"
        items.append(
            WorkItem(
                rank=50,
                kind="no_phone",
                participant_id=p.id,
                record_id=p.record_id,
                why=why,
                sort_key=p.created_at,
                action=action,
            )
        )
    return items


# Every kind of work, in rank order (the rank each row carries; ties keep this order). Wired here by name:
# a kind missing from this tuple is not on the page, whatever modules happen to be imported.
SOURCES: tuple[tuple[str, Source], ...] = (
    ("red_flag", red_flags),  # 10
    ("closing", closing_soon),  # 20
    ("undelivered", undelivered),  # 30, and 31 for unusable numbers
    ("push_failed", push_failed),  # 40
    ("status_push_failed", status_push_failed),  # 41
    ("enrollment_push_failed", enrollment_push_failed),  # 41
    ("conflict", redcap_conflicts),  # 42
    ("no_phone", no_usable_phone),  # 50
)
