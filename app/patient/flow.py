"""The questionnaire behind a personal link, as plain functions the thin routes call.

`resolve` turns a token into one of four states. Every unusable token (unknown, malformed,
expired, revoked, spent, or its visit closed) is the same `invalid` state, reached by the same
single query, so neither the page nor its timing tells a guessed token from an expired one.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo

from flask import current_app, request, session
from jinja2.utils import htmlsafe_json_dumps
from markupsafe import Markup
from sqlalchemy import Select, bindparam, select
from sqlalchemy.sql.elements import Label

from app.extensions import db
from app.i18n import SUPPORTED
from app.models import InstrumentVersion, Participant, StudyStatus, Submission, SurveyLink, Visit, VisitStatus
from app.models.visit import FINAL_STATUSES
from app.participants.links import hash_token
from app.participants.submissions import SubmissionOutcome, accept_submission
from app.questionnaire import translations as tr
from app.questionnaire.answers import clean_answers
from app.questionnaire.definition import InstrumentDef
from app.questionnaire.form_builder import Question, QuestionnaireForm, logic_map
from app.questionnaire.store import current_definition

INVALID = "invalid"  # every unusable token, whatever the reason
RECEIVED = "received"  # a valid link whose visit already has its answers
OPEN = "open"  # the questionnaire can be answered
MAX_TOKEN_LENGTH = 64
_BLANK_CACHE_SIZE = 32
_lock = threading.Lock()
_definitions: dict[tuple[str, str], InstrumentDef] = {}  # keyed by content hash: the same in every app


class SubmitRefused(RuntimeError):
    """`submit` was called with a link that was not resolved open for a POST: a bug in the caller,
    never the participant's doing. Raised (not asserted) so it holds under `python -O` too."""


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
    visit: Visit | None = None  # held so the link's many-to-one finds it in the identity map
    version_id: int | None = None  # the questionnaire's current stored version, read in the same query
    version_hash: str | None = None
    opted_out: bool = False  # the participant stopped text reminders (the page offers to restart them)


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
    Participant.opted_out,
)


def _current_version_columns(name: str) -> tuple[Label[int], Label[str]]:
    """The current questionnaire version's id and hash as scalar subqueries, so a page needs one query."""
    base = (
        select()
        .where(InstrumentVersion.instrument == name, InstrumentVersion.is_current.is_(True))
        .order_by(InstrumentVersion.id.desc())
        .limit(1)
    )
    return (
        base.add_columns(InstrumentVersion.id).scalar_subquery().label("current_version_id"),
        base.add_columns(InstrumentVersion.version_hash).scalar_subquery().label("current_version_hash"),
    )


@lru_cache(maxsize=16)
def _token_query(instrument_name: str, posting: bool) -> Select[Any]:
    """The one statement behind every token lookup, built once (the digest is a bound parameter).
    A POST may store, so it also loads the link and its visit (the many-to-one then needs no query)."""
    columns = (*_COLUMNS, *_current_version_columns(instrument_name))
    query = select(*columns, SurveyLink, Visit) if posting else select(*columns)
    return (
        query.join_from(SurveyLink, Visit, SurveyLink.visit_id == Visit.id)
        .join(Participant, Visit.participant_id == Participant.id)
        .where(SurveyLink.token_hash == bindparam("digest"))
    )


def resolve(token: str, now: datetime, posting: bool = False) -> LinkContext:
    """The state of a token at `now`, from one statement whatever the token. A spent link answers
    `received` only to a POST (a replay); to a GET it looks like any unusable token."""
    digest = hash_token(token[:MAX_TOKEN_LENGTH] if token else "")
    query = _token_query(current_app.config["REDCAP_QUESTIONNAIRE_INSTRUMENT"], posting)
    if posting:
        row = db.session.execute(query, {"digest": digest}).first()
    else:  # plain columns on a pooled connection: no ORM session to begin and close for a page view
        with db.engine.connect() as connection:
            row = connection.execute(query, {"digest": digest}).first()
    if row is None or not token or len(token) > MAX_TOKEN_LENGTH:
        return LinkContext(INVALID)
    ctx = LinkContext(
        INVALID,
        row.link_id,
        row.visit_id,
        row.language,
        row.timezone,
        row[-2] if posting else None,
        row[-1] if posting else None,
        row.current_version_id,
        row.current_version_hash,
        bool(row.opted_out),
    )
    if row.revoked_at is not None or not (row.valid_from <= now < row.valid_until):
        return ctx
    if row.used_at is not None:
        ctx.state = RECEIVED if posting else INVALID
        return ctx
    if row.visit_status == VisitStatus.COMPLETED:
        ctx.state = RECEIVED
        return ctx
    open_now = row.visit_status not in FINAL_STATUSES and row.opens_at <= now < row.closes_at
    if open_now and row.participant_status == StudyStatus.ACTIVE:
        ctx.state = OPEN
    return ctx


def choose_language(ctx: LinkContext, requested: str | None) -> str:
    """?lang= (remembered in the session for this link), then the session, then the participant's
    language from REDCap, then the browser's Accept-Language for a token we do not know. An unusable
    token is treated as unknown, so neither its page nor the session cookie tells that it once existed."""
    if ctx.state == INVALID:
        ctx = LinkContext(INVALID)
    if requested in SUPPORTED:
        session["lang"] = requested
        session["lang_link"] = ctx.link_id
        return requested
    stored: str | None = session.get("lang")
    if stored in SUPPORTED and (ctx.link_id is None or session.get("lang_link") == ctx.link_id):
        return stored
    if ctx.language in SUPPORTED:
        return str(ctx.language)
    return request.accept_languages.best_match(SUPPORTED) or "en"


def instrument(ctx: LinkContext) -> InstrumentDef | None:
    """The current questionnaire definition (None until the first metadata refresh). The token's query
    already named the current version; its parsed definition is kept per version hash."""
    name = current_app.config["REDCAP_QUESTIONNAIRE_INSTRUMENT"]
    if ctx.version_hash is None:
        return current_definition(name)
    key = (name, ctx.version_hash)
    with _lock:
        found = _definitions.get(key)
    if found is None:
        found = current_definition(name)
        if found is None or found.version_hash != ctx.version_hash:
            return found  # a refresh landed in between: use it, uncached
        with _lock:
            _definitions[key] = found
            while len(_definitions) > _BLANK_CACHE_SIZE:
                _definitions.pop(next(iter(_definitions)))
    return found


def version_id(definition: InstrumentDef) -> int | None:
    """The stored version's id, for the submission; a version's id never changes in its database, so
    it is cached per app (two apps in one process have two databases, and two sets of ids)."""
    cache: dict[tuple[str, str], int] = current_app.extensions.setdefault("patient_version_ids", {})
    key = (definition.name, definition.version_hash)
    found = cache.get(key)
    if found is None:
        found = db.session.scalar(
            select(InstrumentVersion.id).where(
                InstrumentVersion.instrument == definition.name,
                InstrumentVersion.version_hash == definition.version_hash,
            )
        )
        if found is not None:
            cache[key] = found
    return found


def logic_json(definition: InstrumentDef) -> Markup:
    """The branching ASTs as JSON safe inside <script type="application/json"> (no '</script>')."""
    return htmlsafe_json_dumps(logic_map(definition))


CSRF_SLOT = "\x00csrf\x00"  # stands for the per-session CSRF token in a cached blank page
REMINDERS_SLOT = "\x00reminders\x00"  # stands for the participant's stop/restart texts block


def blank_page_html(definition: InstrumentDef, lang: str, today: date, render: Callable[[Page], str]) -> str:
    """The whole blank questionnaire page, rendered once per app, version, language, local day and
    translation file content; only the CSRF token (CSRF_SLOT) differs between participants."""
    texts = tr.load_translations()
    cache: OrderedDict[tuple[str, str, str, date], tuple[object, str]] = current_app.extensions.setdefault(
        "patient_blank_pages", OrderedDict()
    )
    key = (definition.name, definition.version_hash, lang, today)
    with _lock:
        hit = cache.get(key)
    if hit is not None and hit[0] is texts:
        return hit[1]
    html = render(blank_page(definition, lang, today))
    with _lock:
        cache[key] = (texts, html)
        cache.move_to_end(key)
        while len(cache) > _BLANK_CACHE_SIZE:
            cache.popitem(last=False)
    return html


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


def submit(
    ctx: LinkContext, definition: InstrumentDef, formdata: Mapping[str, Any], lang: str, now: datetime
) -> Page:
    """Validate a posted questionnaire; accept it when clean, else return it with errors, answers kept."""
    if ctx.state != OPEN or ctx.link is None:
        raise SubmitRefused("submit needs an open link resolved with posting=True")
    today = local_today(ctx, now)
    form = QuestionnaireForm(definition, lang, formdata, today)
    result = clean_answers(definition, form.answers_input(formdata), today=today)
    if result.errors:
        return Page(form, form.questions(result.errors), dict(result.errors))
    outcome = accept_submission(
        ctx.link,
        result.answers,
        now=now,
        language=lang,
        instrument_version_id=ctx.version_id
        if ctx.version_hash == definition.version_hash
        else version_id(definition),
        columns=definition.columns(),
    )
    return Page(form, [], {}, outcome)


def visit_red_flag(ctx: LinkContext) -> bool:
    """Whether the visit's accepted answers raised a red flag (the replay page repeats the warning)."""
    if ctx.visit_id is None:
        return False
    return bool(db.session.scalar(select(Submission.red_flag).where(Submission.visit_id == ctx.visit_id)))
