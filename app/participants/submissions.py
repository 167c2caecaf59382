"""Accept a participant's questionnaire in one transaction, exactly once per visit.

Storing the answers, completing the visit (which withdraws its pending reminders), spending
the link, queueing the REDCap push and planning the on-call alerts all commit together, or
not at all. A second submit or a replayed POST meets the unique visit_id and changes nothing.
"""

from __future__ import annotations

import fcntl
import logging
import os
import threading
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import phonenumbers
from flask import current_app
from sqlalchemy.exc import IntegrityError

from app import audit
from app.extensions import db
from app.models import OutboundMessage, Submission, SurveyLink, SyncStatus, Visit, VisitStatus
from app.participants.visits import complete_visit
from app.questionnaire.redflags import evaluate, parse_rules, usable_rules

log = logging.getLogger(__name__)

ACCEPTED = "accepted"
ALREADY_RECEIVED = "already_received"


@dataclass
class SubmissionOutcome:
    """What happened to a submit: `accepted` (with the new row's id) or `already_received`."""

    status: str
    submission_id: int | None = None
    red_flag_reasons: list[str] = field(default_factory=list)
    alerts_planned: int = 0

    @property
    def accepted(self) -> bool:
        return self.status == ACCEPTED

    @property
    def red_flag(self) -> bool:
        return bool(self.red_flag_reasons)


def red_flag_reasons(answers: Mapping[str, Any], columns: Iterable[str] | None = None) -> list[str]:
    """The configured red-flag rules the answers trigger (rules on unknown columns are skipped)."""
    rules = parse_rules(current_app.config.get("RED_FLAG_RULES") or [])
    if columns is not None:
        rules = usable_rules(rules, columns)
    return evaluate(rules, answers)


def oncall_numbers() -> list[str]:
    """ONCALL_PHONES as E.164 numbers; an unreadable entry is skipped with a warning (number not logged)."""
    region = current_app.config.get("DEFAULT_PHONE_REGION", "CN")
    numbers: list[str] = []
    for index, raw in enumerate(current_app.config.get("ONCALL_PHONES") or []):
        try:
            parsed = phonenumbers.parse(raw, region)
        except phonenumbers.NumberParseException:
            parsed = None
        if parsed is None or not phonenumbers.is_possible_number(parsed):
            log.warning("ONCALL_PHONES entry %d is not a phone number; no alert goes to it", index + 1)
            continue
        numbers.append(phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164))
    return numbers


_process_lock = threading.Lock()
_lock_files: dict[str, int] = {}


@contextmanager
def writer_lock() -> Iterator[None]:
    """On SQLite, queue this process's and other processes' submissions on a file lock.

    SQLite allows one writer; a writer that finds the database locked sleeps in steps of up to
    100 ms before retrying, which wastes most of the time under a burst of submissions. A kernel
    file lock wakes the next writer the moment the previous one commits. PostgreSQL needs nothing.
    """
    url = db.engine.url
    if url.get_backend_name() != "sqlite" or not url.database or url.database == ":memory:":
        yield
        return
    path = f"{url.database}.write-lock"
    with _process_lock:
        fd = _lock_files.get(path)
        if fd is None:
            fd = _lock_files[path] = os.open(path, os.O_CREAT | os.O_RDWR, 0o600)
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)


def accept_submission(
    link: SurveyLink,
    answers: Mapping[str, str],
    *,
    now: datetime,
    language: str = "en",
    instrument_version_id: int | None = None,
    columns: Iterable[str] | None = None,
    actor: str = "participant",
    source: str = "participant",
) -> SubmissionOutcome:
    """Store `answers` (REDCap raw codes, already cleaned) for the link's visit and commit.

    The caller has checked that the link is usable and the visit open; this function owns the
    transaction and returns `already_received` instead of raising when the visit has an answer.
    """
    visit = link.visit
    # A submission always completes its visit in the same transaction; a visit reopened by hand
    # with its answers still stored is caught by the unique visit_id below.
    if visit.status == VisitStatus.COMPLETED:
        return SubmissionOutcome(ALREADY_RECEIVED)
    reasons = red_flag_reasons(answers, columns)
    submission = Submission(
        visit_id=visit.id,
        instrument_version_id=instrument_version_id,
        answers=dict(answers),
        language=language,
        source=source,
        submitted_at=now,
        red_flag=bool(reasons),
        red_flag_reasons=reasons,
        sync_status=SyncStatus.PENDING,  # queued for the REDCap push
        next_attempt_at=now,
    )
    with writer_lock():
        return _store(submission, link, visit, reasons, now, language, actor)


def _store(
    submission: Submission,
    link: SurveyLink,
    visit: Visit,
    reasons: list[str],
    now: datetime,
    language: str,
    actor: str,
) -> SubmissionOutcome:
    """The write transaction of `accept_submission`: everything commits together, or nothing."""
    try:
        db.session.add(submission)
        # Its statement flushes the new row with the visit's change: the unique visit_id speaks here
        # when two submits race.
        complete_visit(visit, "questionnaire", now, actor)
        db.session.flush()
        submission_id, visit_id = submission.id, visit.id  # read before the commit expires them
        link.used_at = now
        audit.record(
            actor,
            "submission.accepted",
            visit=visit,
            submission_id=submission_id,
            language=language,
            red_flag=bool(reasons),
        )
        alerts = _plan_alerts(submission, visit, now, actor) if reasons else 0
        db.session.commit()
    except IntegrityError:
        db.session.rollback()
        return SubmissionOutcome(ALREADY_RECEIVED)
    log.info("submission %s accepted for visit %s", submission_id, visit_id)
    return SubmissionOutcome(ACCEPTED, submission_id, reasons, alerts)


def _plan_alerts(submission: Submission, visit: Visit, now: datetime, actor: str) -> int:
    """One pending redflag_alert text per on-call number; the SMS engine sends record-id-only text."""
    numbers = oncall_numbers()
    for index, number in enumerate(numbers):
        db.session.add(
            OutboundMessage(
                kind="redflag_alert",
                template="redflag_alert",
                to_e164=number,
                dedupe_key=f"redflag:{submission.id}:{index}",
                due_at=now,
                participant_id=visit.participant_id,
                visit_id=None,
                slot=None,
                created_by=actor,
            )
        )
    if not numbers:
        log.warning("red flag on submission %s but no ONCALL_PHONES configured", submission.id)
    audit.record(actor, "submission.red_flag", visit=visit, submission_id=submission.id, alerts=len(numbers))
    return len(numbers)
