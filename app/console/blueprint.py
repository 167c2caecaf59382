"""The `console` blueprint object and its hooks; the route modules attach their views to it.

Sign-in (`app.console.auth`) and the call list (`app.console.calls`) are blueprints of their own,
registered beside this one in `create_app`.
"""

from typing import cast

from flask import Blueprint, Flask
from flask.blueprints import BlueprintSetupState
from flask.typing import ResponseReturnValue

bp = Blueprint("console", __name__, url_prefix="/console")


@bp.record_once
def _install_labels(state: BlueprintSetupState) -> None:
    """The console's Jinja label helpers and Flask-Login's translated sign-in prompt."""
    from flask_babel import gettext

    from app.console import labels
    from app.extensions import login_manager

    labels.install(cast(Flask, state.app))  # a Flask app: this blueprint is only registered on one
    # Flask-Login flashes this (translated through gettext at the time) when a page needs a login.
    login_manager.login_message = "Please sign in to see this page."
    login_manager.localize_callback = gettext
    login_manager.login_message_category = "info"


@bp.before_request
def _guard() -> ResponseReturnValue | None:
    from app.console.permissions import guard_console

    return guard_console()
