"""The questionnaire behind a personal link, as plain functions the thin routes call.

`resolve` turns a token into one of four states. Every unusable token (unknown, malformed,
expired, revoked, spent, or its visit closed) is the same `invalid` state, reached by the same
single query, so neither the page nor its timing tells a guessed token from an expired one.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from flask import current_app, render_template, request, session
from jinja2.utils import htmlsafe_json_dumps
from markupsafe import Markup
from sqlalchemy import select

from app.extensions import db
from app.i18n import SUPPORTED
from app.links import hash_token
from app.models import InstrumentVersion, Participant, Submission, SurveyLink, Visit
from app.models.visit import FINAL_STATUSES
from app.questionnaire import translations as tr
from app.questionnaire.answers import clean_answers
from app.questionnaire.definition import InstrumentDef
from app.questionnaire.form_builder import UNANSWERED, Question, QuestionnaireForm, logic_map
from app.questionnaire.store import current_definition
from app.submissions import SubmissionOutcome, accept_submission

INVALID = "invalid"  # every unusable token, whatever the reason
RECEIVED = "received"  # a valid link whose visit already has its answers
OPEN = "open"  # the questionnaire can be answered
MAX_TOKEN_LENGTH = 64
_BLANK_CACHE_SIZE = 32
_lock = threading.Lock()
_blank_forms: OrderedDict[tuple, tuple[Any, Markup, Markup]] = OrderedDict()
_version_ids: dict[tuple[str, str], int] = {}


@dataclass
class LinkContext:
    """What a token leads to. A known token's participant language and zone are set even when the
    token is unusable; the ORM link (with its visit) is loaded only for a POST, which may store."""

    state: str
    link_id: int | None = None
    visit_id: int | None = None
    language: str | None = None
    timezone: str | None = None
    link: SurveyLink | None = None


_COLUMNS = (
    SurveyLink.id.label("link_id"),
    SurveyLink.revoked_at,
    SurveyLink.valid_from,
    SurveyLink.valid_until,
    SurveyLink.used_at,
    Visit.id.label("visit_id"),
    Visit.status.label("visit_status"),
    Visit.opens_at,
    Visit.closes_at,
    Participant.language,
    Participant.timezone,
    Participant.status.label("participant_status"),
)


def resolve(token: str, now: datetime, posting: bool = False) -> LinkContext:
    """The state of a token at `now`, from one statement whatever the token. A spent link answers
    `received` only to a POST (a replay); to a GET it looks like any unusable token."""
    digest = hash_token(token[:MAX_TOKEN_LENGTH] if token else "")
    query = (select(*_COLUMNS, SurveyLink) if posting else select(*_COLUMNS)).join_from(
        SurveyLink, Visit, SurveyLink.visit_id == Visit.id
    )
    query = query.join(Participant, Visit.participant_id == Participant.id).where(
        SurveyLink.token_hash == digest
    )
    row = db.session.execute(query).first()
    if row is None or not token or len(token) > MAX_TOKEN_LENGTH:
        return LinkContext(INVALID)
    ctx = LinkContext(
        INVALID, row.link_id, row.visit_id, row.language, row.timezone, row[-1] if posting else None
    )
    if row.revoked_at is not None or not (row.valid_from <= now < row.valid_until):
        return ctx
    if row.used_at is not None:
        ctx.state = RECEIVED if posting else INVALID
        return ctx
    if row.visit_status == "completed":
        ctx.state = RECEIVED
        return ctx
    open_now = row.visit_status not in FINAL_STATUSES and row.opens_at <= now < row.closes_at
    if open_now and row.participant_status == "active":
        ctx.state = OPEN
    return ctx


def choose_language(ctx: LinkContext, requested: str | None) -> str:
    """?lang= (remembered in the session for this link), then the session, then the participant's
    language from REDCap, then the browser's Accept-Language for a token we do not know."""
    if requested in SUPPORTED:
        session["lang"] = requested
        session["lang_link"] = ctx.link_id
        return requested
    stored = session.get("lang")
    if stored in SUPPORTED and (ctx.link_id is None or session.get("lang_link") == ctx.link_id):
        return stored
    if ctx.language in SUPPORTED:
        return str(ctx.language)
    return request.accept_languages.best_match(SUPPORTED) or "en"


def instrument() -> InstrumentDef | None:
    """The current questionnaire definition (None until the first metadata refresh)."""
    return current_definition(current_app.config["REDCAP_QUESTIONNAIRE_INSTRUMENT"])


def version_id(definition: InstrumentDef) -> int | None:
    """The stored version's id, for the submission; a version's id never changes, so it is cached."""
    key = (definition.name, definition.version_hash)
    found = _version_ids.get(key)
    if found is None:
        found = db.session.scalar(
            select(InstrumentVersion.id).where(
                InstrumentVersion.instrument == definition.name,
                InstrumentVersion.version_hash == definition.version_hash,
            )
        )
        if found is not None:
            _version_ids[key] = found
    return found


def logic_json(definition: InstrumentDef) -> Markup:
    """The branching ASTs as JSON safe inside <script type="application/json"> (no '</script>')."""
    return htmlsafe_json_dumps(logic_map(definition))


def blank_form_html(definition: InstrumentDef, lang: str, today: date) -> tuple[Markup, Markup]:
    """The blank form's questions and its branching JSON, rendered once per version, language, day
    and translation file content: a GET then costs one lookup and the page shell."""
    texts = tr.load_translations()
    key = (current_app.import_name, definition.name, definition.version_hash, lang, today)
    with _lock:
        hit = _blank_forms.get(key)
    if hit is not None and hit[0] is texts:
        return hit[1], hit[2]
    page = blank_page(definition, lang, today)
    html = render_template("patient/_questions.html", page=page, unanswered_name=UNANSWERED)
    questions = Markup(html)  # noqa: S704 (autoescaped template output)
    logic = logic_json(definition)
    with _lock:
        _blank_forms[key] = (texts, questions, logic)
        _blank_forms.move_to_end(key)
        while len(_blank_forms) > _BLANK_CACHE_SIZE:
            _blank_forms.popitem(last=False)
    return questions, logic


def local_today(ctx: LinkContext, now: datetime) -> date:
    """The participant's local date, which resolves 'today' in date ranges."""
    zone = ctx.timezone or current_app.config["STUDY_TIMEZONE"]
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
        instrument_version_id=version_id(definition),
        columns=definition.columns(),
    )
    return Page(form, [], {}, outcome)


def visit_red_flag(ctx: LinkContext) -> bool:
    """Whether the visit's accepted answers raised a red flag (the replay page repeats the warning)."""
    if ctx.visit_id is None:
        return False
    return bool(db.session.scalar(select(Submission.red_flag).where(Submission.visit_id == ctx.visit_id)))
