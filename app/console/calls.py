"""The call list, call outcomes and the questionnaire taken by phone: thin views over app.participants.

A blueprint of its own (same `/console` prefix, same sign-in and roles) because one view must answer
a coordinator whose session ended mid-questionnaire: the answers come back in the form with a sign-in
box, instead of a redirect that would drop them.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, cast

from flask import Blueprint, abort, current_app, flash, redirect, render_template, request, session, url_for
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user, login_user, logout_user
from flask_wtf import FlaskForm
from flask_wtf.csrf import CSRFError
from sqlalchemy.exc import IntegrityError
from wtforms import DateTimeLocalField, HiddenField, IntegerField, StringField, TextAreaField
from wtforms.validators import DataRequired, InputRequired, Length, Optional

from app.console.auth import authenticate
from app.console.participant_view import mask_phone
from app.console.permissions import (
    LAST_SEEN_KEY,
    guard_console,
    require_role,
    session_expired,
    set_page_language,
    touch_session,
)
from app.console.routes import _locked
from app.extensions import db
from app.i18n import SUPPORTED
from app.models import CALL_OUTCOMES, User, Visit, utcnow
from app.participants.call_list import REASONS, build_call_list
from app.participants.calls import CallRefused, history, local_to_utc, record_outcome
from app.participants.phone_questionnaire import PhoneResult, blank, existing, take_by_phone
from app.patient.flow import logic_json, version_id
from app.questionnaire.definition import InstrumentDef
from app.questionnaire.form_builder import UNANSWERED
from app.questionnaire.store import current_definition

bp = Blueprint("console_calls", __name__, url_prefix="/console")

OUTCOME_LABELS = {
    "reached_done": _l("Reached – questionnaire done"),
    "callback": _l("Reached – call back"),
    "no_answer": _l("No answer"),
    "busy": _l("Busy"),
    "wrong_number": _l("Wrong number"),
    "refused": _l("Refused this visit"),
    "stop_texts": _l("Asked to stop texts"),
    "withdrew": _l("Withdrew from the study"),
}
REASON_LABELS = {
    "callback": _l("Callback promised"),
    "red_flag": _l("Red flag not acknowledged"),
    "closing": _l("Window closes soon, no answer"),
    "undelivered": _l("Texts not delivered"),
    "no_consent": _l("No SMS consent"),
    "unusable": _l("No usable number"),
    "opted_out": _l("Opted out of texts"),
}
LANGUAGE_NAMES = {"en": "English", "zh": "中文"}


class OutcomeForm(FlaskForm):
    """One call's outcome: the button pressed, an optional note, the callback time when there is one."""

    outcome = StringField(validators=[DataRequired(), Length(max=20)])
    note = TextAreaField(_l("Note (optional)"), validators=[Optional(), Length(max=500)])
    callback_at = DateTimeLocalField(
        _l("Call back at (participant's time)"), format="%Y-%m-%dT%H:%M", validators=[Optional()]
    )
    seen_attempts = IntegerField(validators=[InputRequired()])
    next = HiddenField()


class PhoneForm(FlaskForm):
    """The phone questionnaire's own fields (the questions are checked by the questionnaire core)."""

    language = HiddenField(validators=[DataRequired(), Length(max=5)])


def _actor() -> str:
    return f"user:{current_user.id}"


def _labels() -> dict[str, Any]:
    return {
        "outcome_labels": OUTCOME_LABELS,
        "reason_labels": REASON_LABELS,
        "language_names": LANGUAGE_NAMES,
    }


@bp.before_request
def _guard() -> Any:
    """The console's guard, except for a phone questionnaire POST: that view keeps the answers itself."""
    if request.endpoint == "console_calls.phone_questionnaire" and request.method == "POST":
        set_page_language()
        return None
    return guard_console()


@bp.get("/calls")
@require_role("viewer")
def calls() -> ResponseReturnValue:
    """The call list, most urgent first; `?reason=` keeps one reason."""
    reason = request.args.get("reason") or None
    if reason not in REASONS:
        reason = None
    rows = build_call_list(utcnow(), current_app.config["CALL_MAX_ATTEMPTS"], reason)
    return render_template(
        "console/calls.html",
        rows=rows,
        reason=reason,
        reasons=REASONS,
        form=OutcomeForm(),
        can_act=current_user.can("coordinator"),
        show_number=current_user.can("coordinator"),
        mask_phone=mask_phone,
        max_attempts=current_app.config["CALL_MAX_ATTEMPTS"],
        **_labels(),
    )


def _refused(message: str, status: int, back: str) -> tuple[str, int]:
    return render_template("console/refused.html", messages=[message], back=back), status


@bp.post("/calls/<int:visit_id>/outcome")
@require_role("coordinator")
def record(visit_id: int) -> ResponseReturnValue:
    """Record one outcome; "reached – done" opens the phone questionnaire instead."""
    form = OutcomeForm()
    back = url_for("console_calls.calls")
    if not form.validate_on_submit() or form.outcome.data not in CALL_OUTCOMES:
        errors = [f"{form[n].label.text}: {'; '.join(m)}" for n, m in form.errors.items() if n in form]
        return render_template(
            "console/refused.html", messages=errors or [_("Unknown call outcome.")], back=back
        ), 400
    if form.outcome.data == "reached_done":
        return redirect(url_for("console_calls.phone_questionnaire", visit_id=visit_id), 303)
    visit = _locked_visit(visit_id)
    callback_at = None
    if form.callback_at.data is not None:
        callback_at = local_to_utc(form.callback_at.data, visit.participant.timezone)
    try:
        record_outcome(
            visit,
            form.outcome.data,
            utcnow(),
            _actor(),
            note=form.note.data,
            callback_at=callback_at,
            seen_attempts=form.seen_attempts.data,
            max_attempts=current_app.config["CALL_MAX_ATTEMPTS"],
        )
        db.session.commit()
    except CallRefused as exc:
        db.session.rollback()
        return _refused(exc.message, exc.status, back)
    except IntegrityError:
        db.session.rollback()
        return _refused(
            _("Someone else recorded a call for this visit at the same moment. Nothing was saved."), 409, back
        )
    flash(_("Call recorded: %(outcome)s.", outcome=OUTCOME_LABELS[form.outcome.data]), "success")
    return redirect(back + f"#call-{visit_id}", 303)


def _locked_visit(visit_id: int) -> Visit:
    """The visit read fresh under the write lock (see routes._locked): two saves at once run one by one."""
    visit: Visit = _locked(Visit, visit_id)
    return visit


def _phone_language(visit: Visit) -> str:
    chosen = request.values.get("language") or request.args.get("lang")
    return chosen if chosen in SUPPORTED else visit.participant.language


def _render_phone(
    visit: Visit | None,
    definition: InstrumentDef,
    result: PhoneResult,
    lang: str,
    status: int = 200,
    **extra: Any,
) -> tuple[str, int]:
    return (
        render_template(
            "console/phone_questionnaire.html",
            visit=visit,
            page=result,
            lang=lang,
            logic=logic_json(definition),
            unanswered_name=UNANSWERED,
            language_names=LANGUAGE_NAMES,
            **extra,
        ),
        status,
    )


def _signed_in_again(now: datetime) -> bool:
    """A POST whose session ended: sign in from the form's own e-mail and password, if given and right."""
    email, password = request.form.get("relogin_email", ""), request.form.get("relogin_password", "")
    if not email or not password:
        return False
    config = current_app.config
    user: User | None = authenticate(
        email[:254],
        password[:500],
        request.remote_addr or "-",
        now,
        config["LOGIN_MAX_FAILURES"],
        config["LOGIN_LOCK_MINUTES"],
    )
    db.session.commit()
    if user is None:
        return False
    login_user(user)
    touch_session(now)
    return True


def _session_ok(now: datetime) -> bool:
    if not current_user.is_authenticated:
        return False
    if not current_user.is_active or session_expired(now, current_app.config["SESSION_IDLE_MINUTES"]):
        logout_user()
        session.pop(LAST_SEEN_KEY, None)
        return False
    touch_session(now)
    return True


def _phone_view(visit_id: int) -> ResponseReturnValue:
    now = utcnow()
    definition = current_definition(current_app.config["REDCAP_QUESTIONNAIRE_INSTRUMENT"])
    if request.method == "POST" and not _session_ok(now) and not _signed_in_again(now):
        # Nothing about the participant is shown before sign-in: only the answers this browser posted.
        if definition is None:
            abort(401)
        # .get() is one of SUPPORTED here, so a str.
        lang = cast(str, request.form.get("language")) if request.form.get("language") in SUPPORTED else "en"
        visit = db.session.get(Visit, visit_id)
        if visit is None:
            abort(404)
        result = blank(visit, definition, lang, now, request.form)
        tried = bool(request.form.get("relogin_email"))
        return _render_phone(None, definition, result, lang, 401, relogin=True, relogin_failed=tried)
    if not current_user.can("coordinator"):
        abort(403)
    visit = db.get_or_404(Visit, visit_id)
    back = url_for("console_calls.calls")
    if request.method == "POST" and not PhoneForm().validate_on_submit():
        return _refused(_("The form was incomplete; nothing was saved."), 400, back)
    if definition is None:
        flash(_("The questionnaire is not available yet: REDCap's metadata has not been fetched."), "error")
        return redirect(back)
    lang = _phone_language(visit)
    if request.method == "GET":
        winner = existing(visit)
        if winner is not None:
            return _render_phone(visit, definition, blank(visit, definition, lang, now), lang, winner=winner)
        if visit.status != "open" or not visit.is_open_at(now):
            return _refused(
                _("The visit is %(status)s, not open: no questionnaire can be taken.", status=visit.status),
                409,
                back,
            )
        return _render_phone(
            visit, definition, blank(visit, definition, lang, now), lang, attempts=history(visit).attempts
        )
    try:
        result = take_by_phone(visit, definition, request.form, lang, now, _actor(), version_id(definition))
    except CallRefused as exc:
        db.session.rollback()
        return _refused(exc.message, exc.status, back)
    if result.outcome is None:
        return _render_phone(visit, definition, result, lang, 400)
    if not result.outcome.accepted:
        return _render_phone(visit, definition, result, lang, 409, winner=result.winner)
    flash(_("Answers submitted for %(id)s (taken by phone).", id=visit.participant.record_id), "success")
    if result.outcome.red_flag:
        flash(_("The answers raised a red flag: the on-call clinician is alerted."), "error")
    return redirect(back, 303)


@bp.route("/calls/<int:visit_id>/questionnaire", methods=["GET", "POST"])
def phone_questionnaire(visit_id: int) -> ResponseReturnValue:
    """The questionnaire taken by phone (coordinator or admin)."""
    return _phone_view(visit_id)


phone_questionnaire.required_role = "coordinator"  # type: ignore[attr-defined]


@bp.errorhandler(CSRFError)
def csrf_failed(exc: CSRFError) -> ResponseReturnValue:
    """A form whose CSRF token no longer matches (the session cookie is gone): the phone answers come
    back with a sign-in box, nothing stored; other forms get the usual refusal."""
    if request.endpoint == "console_calls.phone_questionnaire":
        logout_user()
        return _phone_view((request.view_args or {}).get("visit_id", 0))
    return _refused(
        _("The form had expired; nothing was saved. Please try again."), 400, url_for("console_calls.calls")
    )
