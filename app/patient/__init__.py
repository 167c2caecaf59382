"""The participant's questionnaire behind a personal link (`/s/<token>`)."""

from flask import Blueprint

bp = Blueprint("patient", __name__)

from app.patient import routes  # noqa: E402,F401
