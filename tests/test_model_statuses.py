"""Statuses are StrEnums in the models, stored as the very strings they were, and one re-queue for a push."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from app.extensions import db
from app.models import (
    OutboundMessage,
    OutboundStatus,
    PushedVisitStatus,
    RedcapEnrollmentStatusPush,
    RedcapStatusPush,
    StudyStatus,
    Submission,
    SyncStatus,
    Visit,
    VisitStatus,
)
from app.models.messaging import OUTBOUND_STATUSES
from app.models.redcap_sync import PUSHED_STUDY_STATUSES, PUSHED_VISIT_STATUSES, STATUS_PUSH_STATES
from app.models.survey import SYNC_STATUSES
from app.models.visit import FINAL_STATUSES, VISIT_STATUSES
from tests.factories import make_participant

NOW = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)


def test_the_stored_strings_are_the_ones_rows_already_hold():
    # Rows written before the enums hold these strings; the CHECK constraints name exactly these.
    assert VISIT_STATUSES == ("scheduled", "open", "completed", "missed", "cancelled")
    assert FINAL_STATUSES == ("completed", "missed", "cancelled")
    assert SYNC_STATUSES == ("pending", "pushed", "failed", "conflict", "discarded")
    assert STATUS_PUSH_STATES == ("pending", "pushed", "failed")
    assert PUSHED_VISIT_STATUSES == ("completed", "missed", "opted_out", "withdrawn", "refused", "callback")
    assert PUSHED_STUDY_STATUSES == ("withdrawn", "deceased")
    assert OUTBOUND_STATUSES == (
        "pending",
        "sending",
        "queued",
        "sent",
        "delivered",
        "undelivered",
        "failed",
        "skipped",
        "cancelled",
    )
    for values in (VISIT_STATUSES, SYNC_STATUSES, PUSHED_VISIT_STATUSES, OUTBOUND_STATUSES):
        assert all(type(value) is str for value in values)  # they go into SQL as they are


def _visit(participant_id: int) -> Visit:
    visit = Visit(
        participant_id=participant_id,
        visit_key="week_4",
        event_name="week_4_arm_1",
        target_date=date(2026, 3, 2),
        window_start=date(2026, 2, 28),
        window_end=date(2026, 3, 6),
        opens_at=NOW - timedelta(days=2),
        closes_at=NOW + timedelta(days=5),
    )
    db.session.add(visit)
    db.session.flush()
    return visit


def _raw(table: str, column: str, row_id: int) -> object:
    return db.session.execute(text(f"SELECT {column} FROM {table} WHERE id = :id"), {"id": row_id}).scalar()


def test_statuses_are_stored_as_plain_strings_and_load_as_members(app):
    participant = make_participant(commit=False)
    db.session.flush()
    visit = _visit(participant.id)
    submission = Submission(visit_id=visit.id, answers={"fu_mmrc": "1"}, submitted_at=NOW)
    push = RedcapStatusPush(visit_id=visit.id, status=PushedVisitStatus.OPTED_OUT, next_attempt_at=NOW)
    # A bare string still binds (app/sms assigns them until it is switched over).
    ended = RedcapEnrollmentStatusPush(participant_id=participant.id, status="deceased")
    text_row = OutboundMessage(dedupe_key="visit:test:r0", due_at=NOW, participant_id=participant.id)
    db.session.add_all([submission, push, ended, text_row])
    db.session.commit()

    assert _raw("visits", "status", visit.id) == "scheduled"  # the defaults, as the strings they always were
    assert _raw("participants", "status", participant.id) == "active"
    assert _raw("submissions", "sync_status", submission.id) == "pending"
    assert _raw("redcap_status_pushes", "status", push.id) == "opted_out"
    assert _raw("redcap_enrollment_status_pushes", "status", ended.id) == "deceased"
    assert _raw("outbound_messages", "status", text_row.id) == "pending"

    db.session.expire_all()
    assert db.session.get(Visit, visit.id).status is VisitStatus.SCHEDULED
    assert db.session.get(Visit, visit.id).participant.status is StudyStatus.ACTIVE
    assert db.session.get(Submission, submission.id).sync_status is SyncStatus.PENDING
    assert db.session.get(RedcapStatusPush, push.id).status is PushedVisitStatus.OPTED_OUT
    assert db.session.get(RedcapEnrollmentStatusPush, ended.id).status is StudyStatus.DECEASED
    loaded = db.session.get(OutboundMessage, text_row.id)
    assert loaded.status is OutboundStatus.PENDING
    assert loaded.status == "pending" and f"{loaded.status}" == "pending"  # still the old string to compare


def test_an_unknown_status_is_refused_by_the_database_and_changes_nothing(app):
    participant = make_participant(commit=False)
    db.session.flush()
    visit = _visit(participant.id)
    db.session.commit()
    visit.status = "postponed"  # type: ignore[assignment]  # what an untyped caller might try
    with pytest.raises(IntegrityError):
        db.session.commit()
    db.session.rollback()
    assert _raw("visits", "status", visit.id) == "scheduled"


def test_requeue_is_one_retry_with_options():
    submission = Submission(
        sync_status=SyncStatus.CONFLICT,
        sync_attempts=3,
        next_attempt_at=None,
        last_error="held",
        pushed_at=NOW - timedelta(days=1),
    )
    submission.requeue(NOW, keep_attempts=True)  # "import anyway": the hold lifted, the attempts kept
    assert (submission.sync_status, submission.sync_attempts, submission.next_attempt_at) == (
        SyncStatus.PENDING,
        3,
        NOW,
    )
    assert submission.last_error is None and submission.pushed_at == NOW - timedelta(days=1)

    submission.requeue(NOW, forget_pushed=True)  # REDCap lost it (reconcile --repair)
    assert submission.sync_attempts == 0 and submission.pushed_at is None

    queued = NOW - timedelta(hours=5)
    push = RedcapStatusPush(
        status=PushedVisitStatus.MISSED,
        sync_status=SyncStatus.FAILED,
        sync_attempts=2,
        queued_at=queued,
        pushed_at=None,
        last_error="refused",
    )
    push.requeue(NOW)  # a coordinator's retry: still the status queued at `queued`
    assert (push.sync_status, push.sync_attempts, push.queued_at) == (SyncStatus.PENDING, 0, queued)
    push.pushed_at = NOW
    later = NOW + timedelta(hours=1)
    push.queue_anew(later)  # a new status for the visit: queued now, the earlier push forgotten
    assert (push.queued_at, push.next_attempt_at, push.pushed_at) == (later, later, None)
