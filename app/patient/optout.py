"""Which link may stop or restart text reminders, and the block every page behind a link carries.

A link serves here while it is in its window and not revoked, and its participant active. A link spent
by a submission serves only the browser session that sent the answers (the thank-you page offers the
control), so to everyone else a spent link still looks like any unusable token.
"""

from __future__ import annotations

import threading
from datetime import datetime
from typing import Any
from urllib.parse import quote

from flask import current_app, g, render_template, session
from markupsafe import escape

from app.models import Participant, StudyStatus
from app.participants.links import find_link
from app.security import csrf_token

ANSWERED_KEY = "answered_link"  # the link this session sent answers through
# Stand-ins in the cached block, replaced per request: they cannot occur in a token or in the texts.
TOKEN_SLOT = "tokenslot0reminders0"  # noqa: S105  (a stand-in, not a secret)
CSRF_SLOT = "\x00reminders-csrf\x00"
_lock = threading.Lock()


def remember_answered(link_id: int | None) -> None:
    """After a submission: this session may still stop or restart texts through its spent link."""
    if link_id is not None:
        session[ANSWERED_KEY] = link_id


def link_participant(token: str, now: datetime) -> Participant | None:
    """The participant behind a token that may stop or restart texts at `now`; None for every unusable
    token alike."""
    link = find_link(token)
    if link is None or link.revoked_at is not None or not (link.valid_from <= now < link.valid_until):
        return None
    if link.used_at is not None and session.get(ANSWERED_KEY) != link.id:
        return None
    participant = link.visit.participant
    return participant if participant.status == StudyStatus.ACTIVE else None


def block(token: str, opted_out: bool) -> str:
    """The "Stop text reminders" (or, once stopped, "Restart text reminders") block, as HTML for the
    cached blank questionnaire's slot; other pages include patient/_reminders.html themselves.

    Rendered once per app, language and state with stand-ins for the token and the CSRF token, which
    are put in here per request, so nothing of one participant's page is kept for another. The token is
    percent-encoded whole: for an issued token (URL-safe characters only) that is what `url_for` writes,
    and any other character could neither break out of the URL nor out of the attribute.
    """
    cache: dict[Any, Any] = current_app.extensions.setdefault("patient_reminder_blocks", {})
    key = (g.locale, bool(opted_out))
    with _lock:
        html = cache.get(key)
    if html is None:
        html = render_template(
            "patient/_reminders.html", token=TOKEN_SLOT, opted_out=opted_out, csrf_token=lambda: CSRF_SLOT
        )
        with _lock:
            cache[key] = html
    html = html.replace(TOKEN_SLOT, quote(token, safe=""))
    if opted_out:
        html = html.replace(CSRF_SLOT, str(escape(csrf_token())))
    return html
