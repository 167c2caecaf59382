"""`/c`: the participant types the short code from their text (SMS_LINK_MODE=entry), and gets the
questionnaire.

A right code issues a fresh link for its visit and answers 303 to `/s/<token>`, so the code leads to
exactly the page a link does (same checks, same guess limit, same opt-out). The code travels only in a
POST body; the token only in a same-origin redirect, never in a query string, a referrer to another site
(Referrer-Policy same-origin) or a log line (the access log writes `/s/[token]`). Every unusable code
(wrong, malformed, used, expired, revoked) gets the same page, byte for byte, and counts against the
same per-client limit as a wrong link; a right code opens even over the limit.
"""

from __future__ import annotations

from flask import redirect, render_template, request
from flask.typing import ResponseReturnValue

from app.extensions import db, unlimited_view
from app.i18n import SUPPORTED
from app.models import utcnow
from app.participants.entry_codes import MAX_TYPED, redeem
from app.patient import flow, guessing
from app.patient.blueprint import bp
from app.patient.routes import _too_many, _use_language


def _form(status: int = 200, *, wrong: bool = False, expired: bool = False) -> ResponseReturnValue:
    return render_template("patient/entry.html", wrong=wrong, expired=expired), status


@bp.route("/c", methods=["GET", "POST"])
@unlimited_view  # the guess limit counts failed codes only
def entry() -> ResponseReturnValue:
    """The code form (GET) and its answer (POST): the questionnaire, or the one page for a wrong code."""
    _use_language(flow.choose_language(flow.LinkContext(flow.INVALID), request.args.get("lang")))
    if request.method == "GET":
        return _form()
    token = redeem(request.form.get("code", "")[:MAX_TYPED], utcnow())
    if token is None:
        return _form(404, wrong=True) if guessing.count_failure() else _too_many()
    db.session.commit()
    chosen = request.args.get("lang")  # the language picked on this page carries over; nothing else does
    return redirect(f"/s/{token}" + (f"?lang={chosen}" if chosen in SUPPORTED else ""), 303)


def csrf_retry() -> ResponseReturnValue:
    """The code form again after an expired or missing CSRF token; nothing was checked, nothing counted."""
    _use_language(flow.choose_language(flow.LinkContext(flow.INVALID), request.args.get("lang")))
    return _form(400, expired=True)
