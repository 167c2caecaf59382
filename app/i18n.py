"""Language choice: the participant's language on patient pages, the browser's elsewhere."""

from __future__ import annotations

from flask import current_app, g, request, session

SUPPORTED = ("en", "zh")


def select_locale() -> str:
    """Flask-Babel's locale selector: this request's choice, then the session's, then the browser's."""
    chosen: str | None = getattr(g, "locale", None)
    if chosen in SUPPORTED:
        return chosen
    stored: str | None = session.get("lang") if current_app else None
    if stored in SUPPORTED:
        return stored
    return request.accept_languages.best_match(SUPPORTED) or "en"
