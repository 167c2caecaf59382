"""Stop and restart text reminders from the participant's own pages, with no reply needed.

`/s/<token>/stop` asks once for confirmation (GET) and opts out (POST, CSRF); `/s/<token>/start` opts
back in (POST, CSRF). Both do what a STOP or START reply does (`app.participants.lifecycle`), recorded as
arriving through the web. Which links serve is `app.patient.optout`; every other token gets the one
invalid-link page and counts against the guess limit.
"""

from __future__ import annotations

from datetime import datetime

from flask import render_template, request
from flask.typing import ResponseReturnValue

from app.extensions import db, unlimited_view
from app.models import Participant, utcnow
from app.participants import lifecycle
from app.patient import flow
from app.patient.blueprint import bp
from app.patient.optout import link_participant
from app.patient.routes import _invalid_counted, _use_language


def _context(token: str) -> tuple[datetime, flow.LinkContext, Participant | None]:
    now = utcnow()
    ctx = flow.resolve(token, now)
    _use_language(flow.choose_language(ctx, request.args.get("lang")))
    return now, ctx, link_participant(token, now)


def _done(token: str, stopped: bool, ctx: flow.LinkContext) -> ResponseReturnValue:
    return render_template(
        "patient/reminders.html", token=token, stopped=stopped, questionnaire_open=ctx.state == flow.OPEN
    )


@bp.route("/s/<token>/stop", methods=["GET", "POST"])
@unlimited_view  # the guess limit counts failed lookups only
def stop_texts(token: str) -> ResponseReturnValue:
    """One confirmation (GET), then the opt-out (POST): the same as a STOP reply, via the web."""
    now, ctx, participant = _context(token)
    if participant is None:
        return _invalid_counted()
    if request.method == "GET":
        return render_template("patient/stop_confirm.html", token=token, opted_out=participant.opted_out)
    lifecycle.opt_out(participant, now, source="web", actor="participant:web")
    db.session.commit()
    return _done(token, True, ctx)


@bp.post("/s/<token>/start")
@unlimited_view
def start_texts(token: str) -> ResponseReturnValue:
    """Restart text reminders: the same as a START reply, via the web."""
    now, ctx, participant = _context(token)
    if participant is None:
        return _invalid_counted()
    lifecycle.opt_in(participant, now, source="web", actor="participant:web")
    db.session.commit()
    return _done(token, False, ctx)


def csrf_retry(token: str) -> ResponseReturnValue:
    """A stop or restart POST whose CSRF token had expired: the confirmation again, with a fresh token."""
    _now, _ctx, participant = _context(token)
    if participant is None:
        return _invalid_counted()
    html = render_template(
        "patient/stop_confirm.html", token=token, opted_out=participant.opted_out, expired=True
    )
    return html, 400
