"""One CSRF-failure handler for the patient pages: each page shows itself again with a fresh token."""

from __future__ import annotations

from flask import request
from flask.typing import ResponseReturnValue
from flask_wtf.csrf import CSRFError

from app.patient import entry, reminders, routes
from app.patient.blueprint import bp


@bp.errorhandler(CSRFError)
def csrf_failed(exc: CSRFError) -> ResponseReturnValue:
    """An expired or missing CSRF token: nothing is stored or changed; the page comes back to try again."""
    if request.endpoint == "patient.entry":
        return entry.csrf_retry()
    token = (request.view_args or {}).get("token", "")
    if request.endpoint in ("patient.stop_texts", "patient.start_texts"):
        return reminders.csrf_retry(token)
    return routes.csrf_retry(token)
