"""Health checks for the hospital's monitoring: no participant data, ever."""

from flask import Blueprint

bp = Blueprint("health", __name__)

from app.health import routes  # noqa: E402,F401
