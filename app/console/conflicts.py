"""Console: submissions held back because REDCap already had staff's data, side by side, with two actions.

Thin views over app.redcap.conflicts. Viewing needs the viewer role; importing anyway or discarding
needs a coordinator. Each decision form carries the hash of the REDCap values shown, so an import
is refused if REDCap changed while the coordinator was looking.
"""

from __future__ import annotations

from typing import Any, cast

from flask import abort, flash, redirect, render_template, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from wtforms import HiddenField
from wtforms.validators import DataRequired, Length, Regexp

from app.console.blueprint import bp
from app.console.forms import ReasonForm
from app.console.permissions import require_role
from app.extensions import db
from app.models import Submission, SyncStatus, utcnow
from app.redcap.client import RedcapClientError
from app.redcap.conflicts import (
    ConflictChanged,
    ConflictStateError,
    comparison,
    discard,
    import_anyway,
    open_conflicts,
    snapshot_hash,
)


class ConflictDecisionForm(ReasonForm):
    """A decision on one conflict, bound to the REDCap values the coordinator saw (their hash)."""

    snapshot_hash = HiddenField(
        _l("REDCap values shown"),
        validators=[DataRequired(), Length(min=64, max=64), Regexp(r"^[0-9a-f]{64}$")],
    )


def _refused(message: str, submission_id: int, status: int) -> Any:
    back = url_for("console.conflict", submission_id=submission_id)
    return render_template("console/refused.html", messages=[message], back=back), status


def _conflict_or_404(submission_id: int) -> Submission:
    submission = db.session.get(Submission, submission_id)
    if submission is None:
        abort(404)
    return submission


@bp.route("/conflicts")
@require_role("viewer")
def conflicts() -> Any:
    """Every submission waiting for a decision because REDCap already held staff's data."""
    return render_template("console/conflicts.html", items=open_conflicts(), submission=None)


@bp.route("/conflicts/<int:submission_id>")
@require_role("viewer")
def conflict(submission_id: int) -> Any:
    """Our answers and REDCap's values side by side, with import-anyway and discard for coordinators."""
    submission = _conflict_or_404(submission_id)
    if submission.sync_status != SyncStatus.CONFLICT:
        flash(
            _(
                "This submission is not waiting for a decision (it is %(status)s).",
                status=submission.sync_status,
            )
        )
        return redirect(url_for("console.conflicts"))
    shown = snapshot_hash(submission.redcap_snapshot)
    form = ConflictDecisionForm(snapshot_hash=shown)
    return render_template(
        "console/conflicts.html", items=None, submission=submission, rows=comparison(submission), form=form
    )


def _decide(submission_id: int, action: str) -> Any:
    form = ConflictDecisionForm()
    if not form.validate_on_submit():
        messages = [
            f"{form[name].label.text}: {'; '.join(errs)}"
            for name, errs in form.errors.items()
            if name in form
        ]
        return _refused(" ".join(messages), submission_id, 400)
    submission = _conflict_or_404(submission_id)
    actor = f"user:{current_user.id}"
    try:
        if action == "import":
            import_anyway(
                submission, cast(str, form.snapshot_hash.data), actor, utcnow(), note=form.reason.data
            )
            done = _("Queued for import into REDCap over the values shown; the push re-checks REDCap first.")
        else:
            discard(submission, cast(str, form.snapshot_hash.data), actor, utcnow(), note=form.reason.data)
            done = _("Discarded: REDCap's values stay; the submission is kept here, marked discarded.")
    except ConflictChanged:
        return _refused(
            _(
                "REDCap's values for this visit changed since the page was shown. Nothing was imported; "
                "review the new values and decide again."
            ),
            submission_id,
            409,
        )
    except ConflictStateError:
        db.session.rollback()
        return _refused(_("This submission is not waiting for a decision any more."), submission_id, 409)
    except RedcapClientError:
        db.session.rollback()
        return _refused(
            _("REDCap cannot be reached to re-check its values; nothing was changed. Try again later."),
            submission_id,
            503,
        )
    flash(done, "success")
    return redirect(url_for("console.conflicts"), 303)


@bp.route("/conflicts/<int:submission_id>/import", methods=["POST"])
@require_role("coordinator")
def conflict_import(submission_id: int) -> Any:
    """Import this submission over REDCap's values, if REDCap still holds what was shown (audited)."""
    return _decide(submission_id, "import")


@bp.route("/conflicts/<int:submission_id>/discard", methods=["POST"])
@require_role("coordinator")
def conflict_discard(submission_id: int) -> Any:
    """Keep REDCap's values and never push this submission (audited)."""
    return _decide(submission_id, "discard")
