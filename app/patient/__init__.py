"""The participant's pages: the questionnaire behind a personal link (`/s/<token>`), the code entry
(`/c`) and stopping or restarting text reminders (`/s/<token>/stop`, `/s/<token>/start`)."""

from app.patient import (
    csrf,  # noqa: F401  (the CSRF check of the participant's forms)
    entry,  # noqa: F401  (attaches its routes to bp)
    reminders,  # noqa: F401  (attaches its routes to bp)
    routes,  # noqa: F401  (attaches its routes to bp)
)
from app.patient.blueprint import bp

__all__ = ["bp"]
