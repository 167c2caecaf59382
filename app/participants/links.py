"""Personal questionnaire links: a random token in the SMS, only its SHA-256 in the database.

A link is bound to one visit and valid from the window's opening until it closes. Every way a
token can be unusable resolves to the same `None`, so a page cannot tell a guessed token from
an expired one.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import datetime

from flask import current_app
from sqlalchemy import select

from app.extensions import db
from app.models import EntryCode, SurveyLink, Visit

TOKEN_BYTES = 16  # 128 bits; base64url gives 22 characters, short enough for a 2-segment SMS


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def issue_link(visit: Visit, now: datetime) -> str:
    """Create a new link for `visit` and return its raw token (shown once, in the SMS)."""
    token = secrets.token_urlsafe(TOKEN_BYTES)
    db.session.add(
        SurveyLink(
            visit_id=visit.id,
            token_hash=hash_token(token),
            valid_from=visit.opens_at,
            valid_until=visit.closes_at,
            created_at=now,
        )
    )
    db.session.flush()
    return token


def link_url(token: str) -> str:
    """The public URL of a token, built from PUBLIC_BASE_URL (the app runs behind a proxy)."""
    return f"{current_app.config['PUBLIC_BASE_URL']}/s/{token}"


def find_link(token: str) -> SurveyLink | None:
    """The link row for a token, whatever its state (None if the token is unknown or malformed)."""
    if not token or len(token) > 64:
        return None
    digest = hash_token(token)
    link = db.session.scalar(select(SurveyLink).where(SurveyLink.token_hash == digest))
    # The lookup is by hash already; compare again in constant time so timing says nothing more.
    if link is None or not hmac.compare_digest(link.token_hash, digest):
        return None
    return link


def usable_link(token: str, now: datetime) -> SurveyLink | None:
    """The link if usable at `now`: known, not revoked, in its window (the caller checks the visit)."""
    link = find_link(token)
    if link is None or link.revoked_at is not None:
        return None
    if not (link.valid_from <= now < link.valid_until):
        return None
    return link


def revoke_links(visit: Visit, now: datetime) -> int:
    """Revoke every live link of a visit, and its entry codes (e.g. after a new phone number); returns how
    many links."""
    links = db.session.scalars(
        select(SurveyLink).where(SurveyLink.visit_id == visit.id, SurveyLink.revoked_at.is_(None))
    ).all()
    for link in links:
        link.revoked_at = now
    codes = db.session.scalars(
        select(EntryCode).where(EntryCode.visit_id == visit.id, EntryCode.revoked_at.is_(None))
    ).all()
    for code in codes:
        code.revoked_at = now
    return len(links)
