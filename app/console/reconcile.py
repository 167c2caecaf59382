"""Console: the reconciliation report (what `flask redcap reconcile` prints), read-only."""

from __future__ import annotations

from typing import Any

from flask import render_template
from flask_babel import gettext as _

from app.console.blueprint import bp
from app.console.permissions import require_role
from app.models import utcnow
from app.redcap import reconcile as redcap_reconcile
from app.redcap.client import RedcapClientError


@bp.route("/reconcile")
@require_role("viewer")
def reconcile() -> Any:
    """Compare REDCap with every questionnaire-completed visit now; changes nothing (repair: CLI)."""
    try:
        report = reconcile_report()
        error = None
    except RedcapClientError as exc:
        report, error = (
            None,
            _("REDCap cannot be reached, so nothing could be compared: %(why)s", why=str(exc)[:200]),
        )
    return render_template("console/reconcile.html", report=report, error=error, kinds=redcap_reconcile.KINDS)


def reconcile_report() -> Any:
    """The report, never repairing."""
    return redcap_reconcile.reconcile(utcnow(), repair=False)
