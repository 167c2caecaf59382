"""The coordinators' console: work list, visits, participants, actions."""

from flask import Blueprint

bp = Blueprint("console", __name__, url_prefix="/console")


@bp.record_once
def _register_auth(state) -> None:
    """Sign-in lives in its own blueprint (it must answer without a login); register it alongside."""
    from flask_babel import gettext

    from app.console import labels
    from app.console.auth import bp as auth_bp
    from app.console.calls import bp as calls_bp
    from app.extensions import login_manager

    state.app.register_blueprint(auth_bp)
    state.app.register_blueprint(calls_bp)  # the call list and the phone questionnaire
    labels.install(state.app)
    # Flask-Login flashes this (translated through gettext at the time) when a page needs a login.
    login_manager.login_message = "Please sign in to see this page."
    login_manager.localize_callback = gettext
    login_manager.login_message_category = "info"


@bp.before_request
def _guard():
    from app.console.permissions import guard_console

    return guard_console()


# conflicts, reconcile: REDCap pages; enrollment_work: work-list source of study statuses REDCap refused
from app.console import conflicts, enrollment_work, reconcile, routes, user_routes  # noqa: E402,F401
