"""The participant's pages: the questionnaire behind a personal link (`/s/<token>`), the code entry
(`/c`) and stopping or restarting text reminders (`/s/<token>/stop`, `/s/<token>/start`)."""

from flask import Blueprint
from flask.blueprints import BlueprintSetupState

bp = Blueprint("patient", __name__)


@bp.record_once
def _check_red_flag_rules(state: BlueprintSetupState) -> None:
    """Start-up check of RED_FLAG_RULES: each malformed rule is logged and left out, never a crash."""
    from app.questionnaire.redflags import check_configured_rules

    check_configured_rules(state.app.config.get("RED_FLAG_RULES"))


from app.patient import csrf, entry, reminders, routes  # noqa: E402,F401
