"""Visits from the schedule engine, in the database: creation, rescheduling, sweep, constraints."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from app.extensions import db
from app.models import AuditEntry, OutboundMessage, Submission, Visit, utcnow
from app.participants.visits import ScheduleInputError, check_anchor, schedule_participant, sweep_visits
from app.schedule import SendWindow, parse_visit_plan
from config import DEFAULT_VISIT_PLAN
from tests.factories import make_participant

PLAN = parse_visit_plan(DEFAULT_VISIT_PLAN)
WINDOW = SendWindow.parse("09:00-20:00")


def test_schedule_creates_one_visit_per_plan_entry(app):
    participant = make_participant(days_since_discharge=10)
    changes = schedule_participant(participant, PLAN, WINDOW, utcnow())
    db.session.commit()
    assert [v.visit_key for v in changes.created] == ["week_4", "month_6"]
    again = schedule_participant(participant, PLAN, WINDOW, utcnow())
    assert not again.created and not again.rescheduled


def test_changed_anchor_reschedules_only_visits_not_started(app):
    participant = make_participant(days_since_discharge=30)
    schedule_participant(participant, PLAN, WINDOW, utcnow())
    db.session.commit()
    sweep_visits(utcnow())
    week4 = next(v for v in participant.visits if v.visit_key == "week_4")
    month6 = next(v for v in participant.visits if v.visit_key == "month_6")
    assert week4.status == "open"
    old_week4 = (week4.opens_at, week4.closes_at)
    pending = OutboundMessage(
        dedupe_key=f"visit:{month6.id}:r0",
        visit_id=month6.id,
        participant_id=participant.id,
        slot="r0",
        due_at=month6.opens_at,
        status="pending",
    )
    db.session.add(pending)
    db.session.commit()

    participant.anchor_date = participant.anchor_date + timedelta(days=3)
    changes = schedule_participant(participant, PLAN, WINDOW, utcnow())
    db.session.commit()
    assert [v.visit_key for v in changes.rescheduled] == ["month_6"]
    assert (week4.opens_at, week4.closes_at) == old_week4
    assert month6.schedule_version == 2
    assert db.session.get(OutboundMessage, pending.id).status == "cancelled"
    assert db.session.scalar(select(AuditEntry).where(AuditEntry.action == "visit.rescheduled")) is not None


def test_completed_and_missed_visits_never_change(app):
    participant = make_participant(days_since_discharge=40)
    schedule_participant(participant, PLAN, WINDOW, utcnow())
    db.session.commit()
    result = sweep_visits(utcnow())
    db.session.commit()
    week4 = next(v for v in participant.visits if v.visit_key == "week_4")
    assert week4.status == "missed" and week4.id in result.missed
    before = (week4.opens_at, week4.closes_at, week4.status)
    participant.anchor_date = participant.anchor_date - timedelta(days=5)
    schedule_participant(participant, PLAN, WINDOW, utcnow())
    db.session.commit()
    assert (week4.opens_at, week4.closes_at, week4.status) == before


@pytest.mark.parametrize(
    ("anchor", "message"),
    [
        (None, "missing"),
        (date.today() + timedelta(days=1), "in the future"),
        (date.today() - timedelta(days=800), "two years"),
    ],
)
def test_bad_anchor_dates_name_the_record(anchor, message):
    with pytest.raises(
        ScheduleInputError, match=f"record R77: discharge date.*{message}|record R77.*{message}"
    ):
        check_anchor("R77", anchor, date.today())


def test_bad_zone_is_refused_and_nothing_is_written(app):
    participant = make_participant(timezone="Mars/Olympus")
    with pytest.raises(ScheduleInputError, match=f"record {participant.record_id}: unknown time zone"):
        schedule_participant(participant, PLAN, WINDOW, utcnow())
    db.session.rollback()
    assert db.session.scalar(select(Visit)) is None


def test_schema_allows_one_visit_per_key(app):
    participant = make_participant()
    schedule_participant(participant, PLAN, WINDOW, utcnow())
    db.session.commit()
    week4 = participant.visits[0]
    db.session.add(
        Visit(
            participant_id=participant.id,
            visit_key=week4.visit_key,
            event_name="x",
            target_date=week4.target_date,
            window_start=week4.window_start,
            window_end=week4.window_end,
            opens_at=week4.opens_at,
            closes_at=week4.closes_at,
        )
    )
    with pytest.raises(IntegrityError):
        db.session.commit()
    db.session.rollback()


def test_schema_allows_one_message_per_visit_and_slot(app):
    participant = make_participant()
    schedule_participant(participant, PLAN, WINDOW, utcnow())
    db.session.commit()
    visit = participant.visits[0]
    for key in ("a", "b"):
        db.session.add(OutboundMessage(dedupe_key=key, visit_id=visit.id, slot="r0", due_at=utcnow()))
    with pytest.raises(IntegrityError):
        db.session.commit()
    db.session.rollback()


def test_schema_allows_one_submission_per_visit(app):
    participant = make_participant()
    schedule_participant(participant, PLAN, WINDOW, utcnow())
    db.session.commit()
    visit = participant.visits[0]
    db.session.add_all([Submission(visit_id=visit.id, answers={}), Submission(visit_id=visit.id, answers={})])
    with pytest.raises(IntegrityError):
        db.session.commit()
    db.session.rollback()


def test_audit_log_is_append_only(app):
    entry = AuditEntry(actor="system", action="test")
    db.session.add(entry)
    db.session.commit()
    entry.action = "changed"
    with pytest.raises(PermissionError):
        db.session.commit()
    db.session.rollback()
    db.session.delete(db.session.get(AuditEntry, entry.id))
    with pytest.raises(PermissionError):
        db.session.commit()
    db.session.rollback()
