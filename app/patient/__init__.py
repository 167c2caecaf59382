"""The participant's questionnaire behind a personal link (`/s/<token>`)."""

from app.patient import routes  # noqa: F401  (attaches its routes to bp)
from app.patient.blueprint import bp

__all__ = ["bp"]
