"""Console routes: thin views over worklist, overview, participant_view, actions and export."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

from flask import (
    Response,
    abort,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    stream_with_context,
    url_for,
)
from flask.typing import ResponseReturnValue
from flask_babel import get_locale
from flask_babel import gettext as _
from flask_login import current_user
from sqlalchemy import func, select, text
from wtforms.fields.choices import SelectChoice  # type: ignore[attr-defined]  # WTForms 3.3; its stubs are 3.2

from app.console import actions
from app.console.auth import safe_next
from app.console.blueprint import bp
from app.console.export import VisitFilters, csv_rows, visit_query
from app.console.forms import (
    AcknowledgeForm,
    ReasonForm,
    ReminderForm,
    ReopenForm,
    VisitFilterForm,
)
from app.console.labels import visit_label
from app.console.overview import completions_svg, visit_counts, weekly_completions
from app.console.participant_view import build_page, mask_phone
from app.console.permissions import require_role
from app.console.worklist import build_worklist
from app.extensions import db
from app.models import Participant, RedcapStatusPush, StudyStatus, Submission, Visit, utcnow
from app.schedule.study_plan import send_window, study_zone, visit_plan

PAGE_SIZE = 100


def _actor() -> str:
    return f"user:{current_user.id}"


def _run_action(form: Any, action: Callable[[], Any], default_next: str, done: str) -> ResponseReturnValue:
    """Validate the form, run the action in one transaction, and answer 303, 400 or the refusal's code."""
    if not form.validate_on_submit():
        errors = [
            f"{form[name].label.text}: {'; '.join(msgs)}"
            for name, msgs in form.errors.items()
            if name in form
        ]
        return render_template("console/refused.html", messages=errors, back=default_next), 400
    try:
        action()
        db.session.commit()
    except actions.ActionRefused as exc:
        db.session.rollback()
        return render_template("console/refused.html", messages=[exc.message], back=default_next), exc.status
    flash(done, "success")
    return redirect(safe_next(form.next.data if "next" in form else None, default_next), 303)


def _locked(model: type, ident: int) -> Any:
    """The row, read fresh under a write lock taken first; 404 for an id that does not exist.

    Two clicks on one button arrive as two requests at once: the lock makes the second read the
    state the first left, so it is refused (409) instead of acting twice. PostgreSQL locks the row
    (SELECT … FOR UPDATE). SQLite ignores FOR UPDATE and its driver starts a transaction only at the
    first write, so a write that changes nothing is issued first to take the database's write lock.
    """
    if db.session.get_bind().dialect.name == "sqlite":
        db.session.execute(text("UPDATE system_state SET key = key WHERE 1 = 0"))
    row = db.session.get(model, ident, with_for_update=True, populate_existing=True)
    if row is None:
        abort(404)
    return row


def _participant_url(participant_id: int, anchor: str | None = None) -> str:
    return url_for("console.participant", participant_id=participant_id, _anchor=anchor)


# --- pages ------------------------------------------------------------------------------------


@bp.get("/")
@require_role("viewer")
def worklist() -> ResponseReturnValue:
    work = build_worklist(utcnow())
    return render_template(
        "console/worklist.html",
        work=work,
        ack_form=AcknowledgeForm(),
        retry_form=ReasonForm(),
        remind_form=ReminderForm(),
    )


@bp.get("/overview")
@require_role("viewer")
def overview() -> ResponseReturnValue:
    now = utcnow()
    rows = visit_counts([spec.key for spec in visit_plan().visits])
    series = weekly_completions(now, study_zone())
    chart = completions_svg(series, _("Completed visits per week"))
    return render_template("console/overview.html", rows=rows, chart=chart, series=series)


def _filters() -> tuple[VisitFilterForm, VisitFilters]:
    form = VisitFilterForm(request.args, meta={"csrf": False})
    form.visit.choices = [SelectChoice("", "—")] + [
        SelectChoice(s.key, visit_label(s.key)) for s in visit_plan().visits
    ]
    form.validate()
    return form, VisitFilters(
        record_id=form.q.data or None if "q" not in form.errors else None,
        visit_key=form.visit.data or None if "visit" not in form.errors else None,
        status=form.status.data or None if "status" not in form.errors else None,
        date_from=form.date_from.data if "date_from" not in form.errors else None,
        date_to=form.date_to.data if "date_to" not in form.errors else None,
    )


@bp.get("/visits")
@require_role("viewer")
def visits() -> ResponseReturnValue:
    form, filters = _filters()
    page = max(1, request.args.get("page", 1, type=int) or 1)
    query = visit_query(filters)
    total = db.session.scalar(select(func.count()).select_from(query.order_by(None).subquery()))
    rows = db.session.execute(query.offset((page - 1) * PAGE_SIZE).limit(PAGE_SIZE)).all()
    args = {k: v for k, v in request.args.items() if k != "page"}
    return render_template(
        "console/visits.html", form=form, rows=rows, total=total, page=page, page_size=PAGE_SIZE, args=args
    )


@bp.get("/visits.csv")
@require_role("viewer")
def visits_csv() -> ResponseReturnValue:
    _form, filters = _filters()
    include_phone = current_user.can("admin")
    # Streamed a chunk of rows at a time; stream_with_context keeps the request (and its database
    # session) alive until the last chunk is sent.
    return Response(
        stream_with_context(csv_rows(filters, include_phone)),
        mimetype="text/csv",
        headers={
            "Content-Disposition": "attachment; filename=visit-status.csv",
            "Cache-Control": "no-store",
        },
    )


@bp.get("/search")
@require_role("viewer")
def search() -> ResponseReturnValue:
    record_id = (request.args.get("q") or "").strip()[:100]
    participant = db.session.scalar(select(Participant).where(Participant.record_id == record_id))
    if participant is not None:
        return redirect(_participant_url(participant.id))
    flash(_("No participant with record id %(id)s.", id=record_id), "error")
    return redirect(url_for("console.visits"))


@bp.get("/participants/<int:participant_id>")
@require_role("viewer")
def participant(participant_id: int) -> ResponseReturnValue:
    found = db.get_or_404(Participant, participant_id)
    page = build_page(found, str(get_locale() or "en"))
    return render_template(
        "console/participant.html",
        page=page,
        now=utcnow(),
        is_admin=current_user.can("admin"),
        mask_phone=mask_phone,
        can_act=current_user.can("coordinator"),
        forms={
            "remind": ReminderForm(),
            "reason": ReasonForm(),
            "reopen": ReopenForm(),
            "ack": AcknowledgeForm(),
        },
    )


# --- actions on visits ------------------------------------------------------------------------


def _visit_action(visit_id: int, form: Any, run: Callable[[Visit], Any], done: str) -> ResponseReturnValue:
    visit = _locked(Visit, visit_id)
    back = _participant_url(visit.participant_id, f"visit-{visit.id}")
    return _run_action(form, lambda: run(visit), back, done)


@bp.post("/visits/<int:visit_id>/remind")
@require_role("coordinator")
def remind(visit_id: int) -> ResponseReturnValue:
    form = ReminderForm()
    config = current_app.config
    return _visit_action(
        visit_id,
        form,
        lambda v: actions.send_reminder_now(
            v,
            utcnow(),
            _actor(),
            cast(str, form.reason.data),
            send_window(),
            config["SMS_MANUAL_MIN_INTERVAL_MINUTES"],
            outside_window_confirmed=bool(form.confirm_outside_window.data),
        ),
        _("Reminder queued."),
    )


@bp.post("/visits/<int:visit_id>/resend-link")
@require_role("coordinator")
def resend_link(visit_id: int) -> ResponseReturnValue:
    form = ReminderForm()
    config = current_app.config
    return _visit_action(
        visit_id,
        form,
        lambda v: actions.resend_link(
            v,
            utcnow(),
            _actor(),
            cast(str, form.reason.data),
            send_window(),
            config["SMS_MANUAL_MIN_INTERVAL_MINUTES"],
            outside_window_confirmed=bool(form.confirm_outside_window.data),
        ),
        _("Old links revoked; a new link is queued."),
    )


@bp.post("/visits/<int:visit_id>/clinic")
@require_role("coordinator")
def clinic(visit_id: int) -> ResponseReturnValue:
    form = ReasonForm()
    return _visit_action(
        visit_id,
        form,
        lambda v: actions.mark_done_in_clinic(v, utcnow(), _actor(), cast(str, form.reason.data)),
        _("Visit marked done in clinic."),
    )


@bp.post("/visits/<int:visit_id>/reopen")
@require_role("coordinator")
def reopen(visit_id: int) -> ResponseReturnValue:
    form = ReopenForm()
    return _visit_action(
        visit_id,
        form,
        lambda v: actions.reopen_missed_visit(
            v,
            cast(int, form.days.data),
            utcnow(),
            _actor(),
            cast(str, form.reason.data),
        ),
        _("Visit reopened. Send a reminder so the participant gets a link."),
    )


# --- actions on submissions -------------------------------------------------------------------


@bp.post("/submissions/<int:submission_id>/acknowledge")
@require_role("coordinator")
def acknowledge(submission_id: int) -> ResponseReturnValue:
    form = AcknowledgeForm()
    submission = _locked(Submission, submission_id)
    back = _participant_url(submission.visit.participant_id, f"visit-{submission.visit_id}")
    return _run_action(
        form,
        lambda: actions.acknowledge_red_flag(submission, cast(str, form.note.data), utcnow(), _actor()),
        back,
        _("Red flag acknowledged."),
    )


@bp.post("/submissions/<int:submission_id>/retry")
@require_role("coordinator")
def retry(submission_id: int) -> ResponseReturnValue:
    form = ReasonForm()
    submission = _locked(Submission, submission_id)
    back = _participant_url(submission.visit.participant_id, f"visit-{submission.visit_id}")
    return _run_action(
        form,
        lambda: actions.retry_push(submission, utcnow(), _actor(), cast(str, form.reason.data)),
        back,
        _("Push queued again."),
    )


@bp.post("/status-pushes/<int:push_id>/retry")
@require_role("coordinator")
def retry_status(push_id: int) -> ResponseReturnValue:
    form = ReasonForm()
    row = _locked(RedcapStatusPush, push_id)
    back = _participant_url(row.visit.participant_id, f"visit-{row.visit_id}")
    return _run_action(
        form,
        lambda: actions.retry_status_push(row, utcnow(), _actor(), cast(str, form.reason.data)),
        back,
        _("Status push queued again."),
    )


# --- actions on participants ------------------------------------------------------------------


def _participant_action(
    participant_id: int, run: Callable[[Participant, str], Any], done: str
) -> ResponseReturnValue:
    form = ReasonForm()
    found = _locked(Participant, participant_id)
    return _run_action(
        form, lambda: run(found, cast(str, form.reason.data)), _participant_url(found.id), done
    )


@bp.post("/participants/<int:participant_id>/withdraw")
@require_role("coordinator")
def withdraw(participant_id: int) -> ResponseReturnValue:
    return _participant_action(
        participant_id,
        lambda p, reason: actions.end_participation(p, StudyStatus.WITHDRAWN, utcnow(), _actor(), reason),
        _(
            "Participant withdrawn; visits and texts cancelled. The withdrawal is queued for REDCap's "
            "enrollment form (REDCap stays the system of record)."
        ),
    )


@bp.post("/participants/<int:participant_id>/death")
@require_role("coordinator")
def death(participant_id: int) -> ResponseReturnValue:
    return _participant_action(
        participant_id,
        lambda p, reason: actions.end_participation(p, StudyStatus.DECEASED, utcnow(), _actor(), reason),
        _(
            "Death recorded; visits and texts cancelled. The death is queued for REDCap's enrollment "
            "form (REDCap stays the system of record)."
        ),
    )


@bp.post("/participants/<int:participant_id>/opt-out")
@require_role("coordinator")
def opt_out(participant_id: int) -> ResponseReturnValue:
    return _participant_action(
        participant_id,
        lambda p, reason: actions.opt_out_of_texts(p, utcnow(), _actor(), reason),
        _("Participant opted out of texts; their unsent texts are cancelled."),
    )


@bp.post("/participants/<int:participant_id>/opt-in")
@require_role("coordinator")
def opt_in(participant_id: int) -> ResponseReturnValue:
    return _participant_action(
        participant_id,
        lambda p, reason: actions.opt_back_in(p, utcnow(), _actor(), reason),
        _("Participant opted back in to texts."),
    )
