"""Everything about one participant, gathered for the participant page: visits, texts, answers, audit.

The page shows visits as cards (with their answers, REDCap sync state and actions) and one
chronological timeline of every text, inbound message, submission and audit entry.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select

from app.console.actions import start_message_after_opt_out
from app.console.answer_rows import answer_rows
from app.console.labels import visit_label
from app.extensions import db
from app.models import (
    AuditEntry,
    InboundMessage,
    OutboundMessage,
    Participant,
    RedcapStatusPush,
    Submission,
    User,
    Visit,
)
from app.models.messaging import SENT_STATUSES

AUDIT_LIMIT = 300


@dataclass
class VisitCard:
    """One visit with what the page shows beside it."""

    visit: Visit
    submission: Submission | None
    answers: list[dict[str, str]]
    messages: list[OutboundMessage]
    status_push: RedcapStatusPush | None = None

    @property
    def texts_sent(self) -> int:
        return sum(1 for m in self.messages if m.status in SENT_STATUSES)


@dataclass
class TimelineEvent:
    """A dated line of the timeline; `kind` picks its rendering, `text` is escaped by the template."""

    at: datetime
    kind: str
    title: str
    text: str = ""
    status: str | None = None
    actor: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass
class ParticipantPage:
    participant: Participant
    cards: list[VisitCard]
    inbound: list[InboundMessage]
    audit: list[AuditEntry]
    timeline: list[TimelineEvent]
    start_after_opt_out: InboundMessage | None
    actors: dict[str, str]


def mask_phone(e164: str | None) -> str:
    """A number with its middle hidden, for everyone but admins."""
    if not e164:
        return "—"
    return e164[:4] + "•" * max(0, len(e164) - 7) + e164[-3:]


def _actor_names(entries: list[AuditEntry], submissions: list[Submission]) -> dict[str, str]:
    actors = {e.actor for e in entries} | {s.red_flag_acknowledged_by for s in submissions if s}
    ids = [int(a.split(":", 1)[1]) for a in actors if a and a.startswith("user:") and a[5:].isdigit()]
    users = db.session.scalars(select(User).where(User.id.in_(ids))).all() if ids else []
    return {f"user:{u.id}": u.email for u in users}


def build_page(participant: Participant, language: str) -> ParticipantPage:
    """Collect the participant page's data in a handful of queries."""
    visits = list(participant.visits)
    visit_ids = [v.id for v in visits]
    submissions = {
        s.visit_id: s
        for s in db.session.scalars(select(Submission).where(Submission.visit_id.in_(visit_ids))).all()
    }
    status_pushes = {
        r.visit_id: r
        for r in db.session.scalars(
            select(RedcapStatusPush).where(RedcapStatusPush.visit_id.in_(visit_ids))
        ).all()
    }
    messages = db.session.scalars(
        select(OutboundMessage)
        .where(OutboundMessage.participant_id == participant.id)
        .order_by(OutboundMessage.created_at, OutboundMessage.id)
    ).all()
    inbound = db.session.scalars(
        select(InboundMessage)
        .where(InboundMessage.participant_id == participant.id)
        .order_by(InboundMessage.received_at)
    ).all()
    audit = db.session.scalars(
        select(AuditEntry)
        .where(AuditEntry.participant_id == participant.id)
        .order_by(AuditEntry.at.desc(), AuditEntry.id.desc())
        .limit(AUDIT_LIMIT)
    ).all()
    cards = []
    for visit in visits:
        submission = submissions.get(visit.id)
        cards.append(
            VisitCard(
                visit=visit,
                submission=submission,
                answers=answer_rows(submission, language) if submission else [],
                messages=[m for m in messages if m.visit_id == visit.id],
                status_push=status_pushes.get(visit.id),
            )
        )
    keys = {v.id: visit_label(v.visit_key) for v in visits}
    timeline: list[TimelineEvent] = []
    for m in messages:
        timeline.append(
            TimelineEvent(
                at=m.sent_at or m.created_at,
                kind="sms_out",
                title=f"{m.kind} {keys.get(m.visit_id, '')} {m.slot or ''}".strip(),
                status=m.status,
                detail={"error_code": m.error_code, "error": m.error_message, "segments": m.segments},
            )
        )
    for i in inbound:
        timeline.append(
            TimelineEvent(at=i.received_at, kind="sms_in", title=i.keyword or "", text=i.body or "")
        )
    for s in submissions.values():
        timeline.append(
            TimelineEvent(
                at=s.submitted_at,
                kind="submission",
                title=keys.get(s.visit_id, ""),
                status=s.sync_status,
                detail={"red_flag": s.red_flag, "error": s.last_error},
            )
        )
    for e in audit:
        timeline.append(
            TimelineEvent(
                at=e.at, kind="audit", title=e.action, text=e.reason or "", actor=e.actor, detail=e.detail
            )
        )
    timeline.sort(key=lambda ev: ev.at, reverse=True)
    return ParticipantPage(
        participant=participant,
        cards=cards,
        inbound=list(inbound),
        audit=list(audit),
        timeline=timeline,
        start_after_opt_out=start_message_after_opt_out(participant) if participant.opted_out else None,
        actors=_actor_names(list(audit), list(submissions.values())),
    )
