"""Named values the REDCap side keeps in `SystemState`: the last error time and what the metadata said.

Imports only the models, so the roster, the metadata refresh, the push and the CLI can all use it.
"""

from __future__ import annotations

from datetime import datetime

from app.models import SystemState

ERROR_STATE_KEY = "redcap.last_error_at"
CONTACT_STATE_KEY = "redcap.contact_fields"
PROJECT_STATE_KEY = "redcap.project"


def note_redcap_error(now: datetime) -> None:
    """Remember when REDCap last failed us, for /healthz (key redcap.last_error_at)."""
    SystemState.write(ERROR_STATE_KEY, now.isoformat())
