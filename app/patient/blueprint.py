"""The `patient` blueprint object and its hooks; the route modules attach their views to it."""

from flask import Blueprint
from flask.blueprints import BlueprintSetupState

bp = Blueprint("patient", __name__)


@bp.record_once
def _check_red_flag_rules(state: BlueprintSetupState) -> None:
    """Start-up check of RED_FLAG_RULES: each malformed rule is logged and left out, never a crash."""
    from app.questionnaire.redflags import check_configured_rules

    check_configured_rules(state.app.config.get("RED_FLAG_RULES"))
