"""Builders shared by the REDCap-as-source-of-truth tests (fictitious participants only)."""

from __future__ import annotations

from datetime import datetime, timedelta

from app.extensions import db
from app.models import OutboundMessage, Participant, Submission, Visit, utcnow
from app.participants.visits import complete_visit, schedule_participant
from app.schedule.study_plan import send_window, visit_plan
from tests.factories import make_participant

ANSWERS = {
    "fu_fever": "1",
    "fu_fever_days": "3",
    "fu_mmrc": "2",
    "fu_cough": "1",
    "fu_ae___1": "0",
    "fu_ae___3": "1",
}


def scheduled(record: str, days: int = 26, **kwargs) -> Participant:
    """A participant with their visits scheduled from a discharge `days` ago."""
    participant = make_participant(record, days_since_discharge=days, **kwargs)
    schedule_participant(participant, visit_plan(), send_window(), utcnow())
    db.session.commit()
    return participant


def visit_of(participant: Participant, key: str = "week_4") -> Visit:
    return next(v for v in participant.visits if v.visit_key == key)


def pending_message(visit: Visit, due: datetime | None = None, slot: str = "r0") -> OutboundMessage:
    """A planned reminder for `visit`, as the SMS planner would write it."""
    message = OutboundMessage(
        dedupe_key=f"visit:{visit.id}:{slot}",
        kind="reminder",
        participant_id=visit.participant_id,
        visit_id=visit.id,
        slot=slot,
        to_e164=visit.participant.phone_e164,
        language=visit.participant.language,
        status="pending",
        due_at=due or utcnow() + timedelta(minutes=5),
        schedule_version=visit.schedule_version,
    )
    db.session.add(message)
    db.session.commit()
    return message


def submitted(participant: Participant, key: str = "week_4", answers: dict | None = None) -> Submission:
    """A participant's accepted questionnaire for a visit, queued for the push."""
    visit = visit_of(participant, key)
    now = utcnow()
    submission = Submission(
        visit_id=visit.id,
        answers=dict(answers or ANSWERS),
        language="en",
        source="participant",
        submitted_at=now,
        sync_status="pending",
        next_attempt_at=now,
    )
    db.session.add(submission)
    complete_visit(visit, via="questionnaire", now=now, actor="participant")
    db.session.commit()
    return submission
