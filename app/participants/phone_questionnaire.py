"""The questionnaire taken by phone: a coordinator reads the questions and submits for the participant.

The same definition, form, branching, validation and red-flag rules as the participant's own page
(`app.questionnaire`), and the same `accept_submission`: one accepted submission per visit, the visit
completed and its pending texts withdrawn, red-flag alerts planned, the REDCap push queued once. The
submission is recorded as `source="interviewer"` with the coordinator as actor (REDCap gets mode "phone").
`accept_submission` spends a link; the phone path issues one for this submission only, never sent.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, cast
from zoneinfo import ZoneInfo

from sqlalchemy import select

from app.extensions import db
from app.models import Submission, SurveyLink, Visit
from app.participants.calls import check_callable, record_reached
from app.participants.links import find_link, issue_link
from app.participants.submissions import SubmissionOutcome, accept_submission
from app.questionnaire.answers import clean_answers
from app.questionnaire.definition import InstrumentDef
from app.questionnaire.form_builder import Question, QuestionnaireForm

SOURCE = "interviewer"


@dataclass
class PhoneResult:
    """The form with its questions and errors, or the outcome (and, if another answer won, which)."""

    form: QuestionnaireForm
    questions: list[Question]
    errors: dict[str, str] = field(default_factory=dict)
    outcome: SubmissionOutcome | None = None
    winner: Submission | None = None


def local_today(visit: Visit, now: datetime) -> date:
    """The participant's local date ('today' in date checks is theirs, not the coordinator's)."""
    return now.astimezone(ZoneInfo(visit.participant.timezone)).date()


def existing(visit: Visit) -> Submission | None:
    """The visit's accepted submission, if any."""
    return db.session.scalar(select(Submission).where(Submission.visit_id == visit.id))


def blank(
    visit: Visit,
    definition: InstrumentDef,
    lang: str,
    now: datetime,
    formdata: Mapping[str, Any] | None = None,
) -> PhoneResult:
    """The questionnaire for the phone (empty, or filled with `formdata` and no errors shown)."""
    form = QuestionnaireForm(definition, lang, formdata, local_today(visit, now))
    return PhoneResult(form, form.questions())


def take_by_phone(
    visit: Visit,
    definition: InstrumentDef,
    formdata: Mapping[str, Any],
    lang: str,
    now: datetime,
    actor: str,
    version_id: int | None,
) -> PhoneResult:
    """Validate the answers typed on the phone call; accept them when clean (commits), else show errors.

    Raises `CallRefused` for a visit that is not open. When the visit already has its answers (the
    participant used their link meanwhile, or another coordinator), nothing is stored and `winner` says
    which submission was accepted.
    """
    found = existing(visit)
    if found is not None:
        form = QuestionnaireForm(definition, lang, formdata, local_today(visit, now))
        return PhoneResult(form, [], outcome=SubmissionOutcome("already_received"), winner=found)
    check_callable(visit, now)
    today = local_today(visit, now)
    form = QuestionnaireForm(definition, lang, formdata, today)
    result = clean_answers(definition, form.answers_input(formdata), today=today)
    if result.errors:
        return PhoneResult(form, form.questions(result.errors), dict(result.errors))
    link = cast(SurveyLink, find_link(issue_link(visit, now)))  # just issued, so it is found
    outcome = accept_submission(
        link,
        result.answers,
        now=now,
        language=lang,
        instrument_version_id=version_id,
        columns=definition.columns(),
        actor=actor,
        source=SOURCE,
    )
    if not outcome.accepted:
        db.session.rollback()  # the unsent link issued for this attempt goes too
        return PhoneResult(form, [], outcome=outcome, winner=existing(visit))
    record_reached(visit, now, actor)
    return PhoneResult(form, [], outcome=outcome)
