"""Which link may stop or restart text reminders, and the block every page behind a link carries.

A link serves here while it is in its window and not revoked, and its participant active. A link spent
by a submission serves only the browser session that sent the answers (the thank-you page offers the
control), so to everyone else a spent link still looks like any unusable token.
"""

from __future__ import annotations

from datetime import datetime

from flask import render_template, session

from app.models import Participant
from app.participants.links import find_link

ANSWERED_KEY = "answered_link"  # the link this session sent answers through


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
    return participant if participant.status == "active" else None


def block(token: str, opted_out: bool) -> str:
    """The "Stop text reminders" (or, once stopped, "Restart text reminders") block, as HTML for the
    cached blank questionnaire's slot; other pages include patient/_reminders.html themselves."""
    return render_template("patient/_reminders.html", token=token, opted_out=opted_out)
