"""The questionnaire behind a personal link, as plain functions the thin routes call.

`resolve` turns a token into one of four states. Every unusable token (unknown, malformed,
expired, revoked, spent, or its visit closed) is the same `invalid` state, reached by the same
single query, so neither the page nor its timing tells a guessed token from an expired one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from zoneinfo import ZoneInfo

from flask import current_app, request, session
from sqlalchemy import select
from sqlalchemy.orm import lazyload

from app.extensions import db
from app.i18n import SUPPORTED
from app.links import hash_token
from app.models import Participant, Submission, SurveyLink, Visit
from app.questionnaire.answers import clean_answers
from app.questionnaire.definition import InstrumentDef
from app.questionnaire.form_builder import Question, QuestionnaireForm
from app.questionnaire.store import current_definition, current_version_id
from app.submissions import SubmissionOutcome, accept_submission

INVALID = "invalid"  # every unusable token, whatever the reason
RECEIVED = "received"  # a valid link whose visit already has its answers
OPEN = "open"  # the questionnaire can be answered
MAX_TOKEN_LENGTH = 64


@dataclass
class LinkContext:
    """What a token leads to; `participant` is known for a known token even when it is unusable."""

    state: str
    link: SurveyLink | None = None
    visit: Visit | None = None
    participant: Participant | None = None


def resolve(token: str, now: datetime, posting: bool = False) -> LinkContext:
    """The state of a token at `now`. A spent link answers `received` only to a POST (a replay)."""
    digest = hash_token(token[:MAX_TOKEN_LENGTH] if token else "")
    row = db.session.execute(
        select(SurveyLink, Visit, Participant)
        .join(Visit, SurveyLink.visit_id == Visit.id)
        .join(Participant, Visit.participant_id == Participant.id)
        .where(SurveyLink.token_hash == digest)
        # One statement whatever the token: no eager load of the participant's other visits.
        .options(lazyload(Participant.visits))
    ).first()
    if row is None or not token or len(token) > MAX_TOKEN_LENGTH:
        return LinkContext(INVALID)
    link, visit, participant = row
    known = LinkContext(INVALID, link, visit, participant)
    if link.revoked_at is not None or not (link.valid_from <= now < link.valid_until):
        return known
    if link.used_at is not None:
        return LinkContext(RECEIVED, link, visit, participant) if posting else known
    if visit.status == "completed":
        return LinkContext(RECEIVED, link, visit, participant)
    if not visit.is_open_at(now) or participant.status != "active":
        return known
    return LinkContext(OPEN, link, visit, participant)


def choose_language(ctx: LinkContext, requested: str | None) -> str:
    """?lang= (remembered in the session for this link), then the session, then the participant's
    language from REDCap, then the browser's Accept-Language for a token we do not know."""
    link_id = ctx.link.id if ctx.link is not None else None
    if requested in SUPPORTED:
        session["lang"] = requested
        session["lang_link"] = link_id
        return requested
    stored = session.get("lang")
    if stored in SUPPORTED and (link_id is None or session.get("lang_link") == link_id):
        return stored
    if ctx.participant is not None and ctx.participant.language in SUPPORTED:
        return ctx.participant.language
    return request.accept_languages.best_match(SUPPORTED) or "en"


def instrument() -> InstrumentDef | None:
    """The current questionnaire definition (None until the first metadata refresh)."""
    return current_definition(current_app.config["REDCAP_QUESTIONNAIRE_INSTRUMENT"])


def local_today(ctx: LinkContext, now: datetime) -> date:
    """The participant's local date, which resolves 'today' in date ranges."""
    zone = ctx.participant.timezone if ctx.participant else current_app.config["STUDY_TIMEZONE"]
    try:
        return now.astimezone(ZoneInfo(zone)).date()
    except (ValueError, KeyError):
        return now.date()


@dataclass
class Page:
    """A rendered questionnaire: its form, the question view models and the errors by field."""

    form: QuestionnaireForm
    questions: list[Question]
    errors: dict[str, str] = field(default_factory=dict)
    outcome: SubmissionOutcome | None = None


def blank_page(definition: InstrumentDef, lang: str, today: date) -> Page:
    """The empty questionnaire."""
    form = QuestionnaireForm(definition, lang, None, today)
    return Page(form, form.questions())


def submit(ctx: LinkContext, definition: InstrumentDef, formdata, lang: str, now: datetime) -> Page:
    """Validate a posted questionnaire; accept it when clean, else return it with errors, answers kept."""
    today = local_today(ctx, now)
    form = QuestionnaireForm(definition, lang, formdata, today)
    result = clean_answers(definition, form.answers_input(formdata), today=today)
    if result.errors:
        return Page(form, form.questions(result.errors), dict(result.errors))
    assert ctx.link is not None
    outcome = accept_submission(
        ctx.link,
        result.answers,
        now=now,
        language=lang,
        instrument_version_id=current_version_id(definition.name),
        columns=definition.columns(),
    )
    return Page(form, [], {}, outcome)


def visit_red_flag(visit: Visit | None) -> bool:
    """Whether the visit's accepted answers raised a red flag (the replay page repeats the warning)."""
    if visit is None:
        return False
    return bool(db.session.scalar(select(Submission.red_flag).where(Submission.visit_id == visit.id)))
