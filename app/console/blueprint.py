"""The `console` blueprint object and its hooks; the route modules attach their views to it."""


from flask import Blueprint

bp = Blueprint("console", __name__, url_prefix="/console")


@bp.record_once
def _register_auth(state) -> None:
    """Sign-in lives in its own blueprint (it must answer without a login); register it alongside."""
    from flask_babel import gettext

    from app.console import labels
    from app.console.auth import bp as auth_bp
    from app.extensions import login_manager

    state.app.register_blueprint(auth_bp)
    labels.install(state.app)
    # Flask-Login flashes this (translated through gettext at the time) when a page needs a login.
    login_manager.login_message = "Please sign in to see this page."
    login_manager.localize_callback = gettext
    login_manager.login_message_category = "info"


@bp.before_request
def _guard():
    from app.console.permissions import guard_console

    return guard_console()
