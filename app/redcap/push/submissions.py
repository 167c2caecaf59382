"""The submissions queue: accepted answers, checked against the stored metadata, pushed to REDCap.

Also `retry_submission`, the one way a failed or waiting push is put back in the queue (the console and
the reconcile command call it).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select

from app import audit
from app.extensions import db
from app.models import Participant, Submission, Visit
from app.questionnaire.answers import validate_stored
from app.questionnaire.store import current_definition
from app.redcap.push.queue import SUBMISSION_MODES, PassContext, PushItem, PushQueue


class SubmissionQueue(PushQueue):
    model = Submission
    kind = "submission"
    screened = True

    def __init__(self, ctx: PassContext, retry_now: bool) -> None:
        super().__init__(ctx, retry_now)
        self.instrument = ctx.config["REDCAP_QUESTIONNAIRE_INSTRUMENT"]
        self.definition = current_definition(self.instrument)

    def next_batch(self, last_id: int, size: int) -> tuple[list[PushItem], int]:
        stmt = self.due(
            select(
                Submission.id,
                Submission.answers,
                Submission.red_flag,
                Submission.source,
                Visit.event_name,
                Visit.invited_at,
                Visit.reminders_sent,
                Participant.record_id,
            )
            .join(Visit, Submission.visit_id == Visit.id)
            .join(Participant, Visit.participant_id == Participant.id),
            last_id,
            size,
        )
        rows = db.session.execute(stmt).all()
        if not rows:
            return [], 0
        if self.definition is None:
            self.ctx.report.problem = (
                f"no stored metadata for {self.instrument}: run `flask --app wsgi redcap refresh-metadata`"
            )
            self.ctx.report.deferred += len(rows)
            return [], 0  # wait, unchanged, until the metadata is there
        items: list[PushItem] = []
        today = self.ctx.now.date()
        for sid, answers, red_flag, source, event, invited_at, reminders, record_id in rows:
            answers = dict(answers or {})
            problems = validate_stored(self.definition, answers, today=today)
            if problems:
                self.mark_invalid(sid, problems)
                continue
            row = self.ctx.base_row(record_id, event)
            row.update(answers)
            row[self.definition.complete_column] = "2"
            mode = SUBMISSION_MODES.get(source or "participant", "web")
            row.update(self.ctx.contact_values("completed", invited_at, reminders, bool(red_flag), mode))
            items.append(PushItem(sid, row))
        return items, rows[-1][0]

    def count_pushed(self, n: int) -> None:
        self.ctx.report.pushed += n


def retry_submission(
    submission: Submission, now: datetime, *, actor: str = "system", reason: str | None = None
) -> None:
    """Put a failed (or waiting) push back in the queue, due now; audited. The caller commits."""
    previous, previous_error = submission.sync_status, submission.last_error
    submission.requeue(now)
    audit.record(
        actor,
        "redcap.push_retried",
        visit=submission.visit,
        reason=reason,
        submission_id=submission.id,
        previous_status=previous,
        previous_error=(previous_error or "")[:300],
    )
