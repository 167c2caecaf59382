"""Patient routes: `/s/<token>` shows and accepts the questionnaire; the work is in `flow`."""

from __future__ import annotations

import time
from datetime import date
from typing import Any

from flask import Response, current_app, g, render_template, request
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _
from flask_babel import refresh
from markupsafe import escape
from werkzeug.exceptions import TooManyRequests

from app.extensions import unlimited_view
from app.models import utcnow
from app.patient import flow, guessing, optout
from app.patient.blueprint import bp
from app.questionnaire.definition import InstrumentDef
from app.questionnaire.form_builder import UNANSWERED, QuestionnaireForm
from app.questionnaire.translations import instrument_label
from app.security import csrf_token


def _use_language(lang: str) -> None:
    g.locale = lang
    refresh()


def _message(template: str, status: int, **context: Any) -> tuple[str, int]:
    return render_template(f"patient/{template}.html", **context), status


def _invalid() -> tuple[str, int]:
    # One page and one status for every unusable token: unknown, expired, revoked, spent, closed.
    return _message("invalid", 404)


def _invalid_counted() -> ResponseReturnValue:
    """A failed lookup: counted against this client, and 429 once it is over TOKEN_GUESS_LIMIT."""
    return _invalid() if guessing.count_failure() else _too_many()


def _render_form(
    page: flow.Page,
    definition: InstrumentDef,
    expired: bool = False,
    csrf_value: str | None = None,
    token: str | None = None,
    opted_out: bool = False,
) -> str:
    return render_template(
        "patient/questionnaire.html",
        title=instrument_label(definition.name, g.locale, default=_("Follow-up questionnaire")),
        page=page,
        logic=flow.logic_json(definition),
        unanswered_name=UNANSWERED,
        session_expired=expired,
        csrf_value=csrf_value,
        token=token,
        opted_out=opted_out,
        reminders_slot=flow.REMINDERS_SLOT if token is None else None,
    )


def _blank_form(definition: InstrumentDef, today: date, token: str, ctx: flow.LinkContext) -> str:
    """The blank page from the per-app cache, with this session's CSRF token and the participant's
    stop/restart texts block put in."""
    html = flow.blank_page_html(
        definition,
        g.locale,
        today,
        lambda page: _render_form(page, definition, csrf_value=flow.CSRF_SLOT),
    )
    html = html.replace(flow.CSRF_SLOT, str(escape(csrf_token())), 1)
    return html.replace(flow.REMINDERS_SLOT, optout.block(token, ctx.opted_out), 1)


def _answered(template: str, token: str, ctx: flow.LinkContext, red_flag: bool) -> tuple[str, int]:
    """The thank-you or already-received page; this session may still stop or restart texts."""
    optout.remember_answered(ctx.link_id)
    return _message(template, 200, red_flag=red_flag, token=token, opted_out=ctx.opted_out)


@bp.route("/s/<token>", methods=["GET", "POST"])
@unlimited_view  # the guess limit below counts only failed lookups
def questionnaire(token: str) -> ResponseReturnValue:
    """The participant's questionnaire; only failed lookups count against TOKEN_GUESS_LIMIT."""
    now = utcnow()
    ctx = flow.resolve(token, now, posting=request.method == "POST")
    _use_language(flow.choose_language(ctx, request.args.get("lang")))
    if ctx.state == flow.INVALID:
        return _invalid_counted()
    if ctx.state == flow.RECEIVED:
        return _answered("received", token, ctx, flow.visit_red_flag(ctx))
    definition = flow.instrument(ctx)
    if definition is None:
        return _message("unavailable", 503)
    if request.method == "GET":
        return _blank_form(definition, flow.local_today(ctx, now), token, ctx)
    page = flow.submit(ctx, definition, request.form, g.locale, now)
    if page.outcome is None:
        return _render_form(page, definition, token=token, opted_out=ctx.opted_out)
    if not page.outcome.accepted:
        return _answered("received", token, ctx, flow.visit_red_flag(ctx))
    return _answered("thanks", token, ctx, page.outcome.red_flag)


def csrf_retry(token: str) -> ResponseReturnValue:
    """A questionnaire POST with an expired or missing CSRF token: the answers again with a fresh token,
    nothing stored (`app.patient.csrf` dispatches here)."""
    now = utcnow()
    ctx = flow.resolve(token, now, posting=True)
    _use_language(flow.choose_language(ctx, request.args.get("lang")))
    if ctx.state != flow.OPEN:
        return _invalid_counted() if ctx.state == flow.INVALID else _message("received", 200, red_flag=False)
    definition = flow.instrument(ctx)
    if definition is None:
        return _message("unavailable", 503)
    form = QuestionnaireForm(definition, g.locale, request.form, flow.local_today(ctx, now))
    page = flow.Page(form, form.questions())
    return _render_form(page, definition, expired=True, token=token, opted_out=ctx.opted_out), 400


def _too_many() -> Response:
    """Too many wrong links from one client: wait, or call the study team."""
    _use_language(flow.choose_language(flow.LinkContext(flow.INVALID), request.args.get("lang")))
    response = current_app.make_response(_message("too_many", 429))
    response.headers["Retry-After"] = str(guessing.retry_after(time.time()))
    return response


@bp.errorhandler(TooManyRequests)
def too_many(exc: TooManyRequests) -> ResponseReturnValue:
    """Any other rate limit met on a patient page gets the same friendly page."""
    return _too_many()
