"""Short personal codes typed at `/c` (SMS_LINK_MODE=entry), and the `code` a text carries in either mode.

A code is 8 characters from an alphabet without look-alikes (no 0/O, 1/I/L): 31 symbols, about 40 bits.
That is far too few to store as a plain SHA-256 (a stolen table could be searched in hours), so the
database keeps an HMAC-SHA256 keyed with SECRET_KEY: a table without the key says nothing. Rotating
SECRET_KEY therefore retires every code still out (links are unaffected). Guessing over the web is held
down by the same per-client limit as link tokens (`app.patient.guessing`); every hash is unique, so no
two codes ever issued collide, and a collision at issue time is retried with a fresh code.

A code is bound to one visit and valid over the visit link's window; it stays usable until the window
closes, the visit is answered or closed, or its links are revoked (`app.participants.links.revoke_links`).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
import unicodedata
from datetime import datetime
from typing import Literal

from flask import current_app
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from app.extensions import db
from app.models import EntryCode, StudyStatus, Visit
from app.participants.links import issue_link

log = logging.getLogger(__name__)

ALPHABET = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"  # no 0/O, 1/I/L
CODE_LENGTH = 8
MAX_TYPED = 64  # longer input is cut before normalising (a code with generous spacing still fits)
_ISSUE_ATTEMPTS = 8
_IGNORED = frozenset(" -_.\u00b7\u2010\u2011\u2012\u2013\u2014\u2212\u30fc\t\r\n")
LinkMode = Literal["path", "entry"]


class CodeCollision(RuntimeError):
    """Several fresh codes in a row were already taken: the random source or the table is broken."""


def normalise(typed: str) -> str:
    """What the participant typed, as a code: full-width folded (NFKC), spaces and dashes dropped, upper
    case."""
    folded = unicodedata.normalize("NFKC", typed or "")
    return "".join(c for c in folded if c not in _IGNORED and not c.isspace()).upper()


def hash_code(code: str) -> str:
    """The stored form of a normalised code: HMAC-SHA256 keyed by SECRET_KEY (never the code itself)."""
    key = ("entry-code:" + str(current_app.config.get("SECRET_KEY") or "")).encode("utf-8")
    return hmac.new(key, code.encode("utf-8"), hashlib.sha256).hexdigest()


def _new_code() -> str:
    return "".join(secrets.choice(ALPHABET) for _ in range(CODE_LENGTH))


def issue_code(visit: Visit, now: datetime) -> str:
    """Create a new code for `visit`, valid over the visit's window, and return it (shown once, in the SMS).

    Unique among every code ever issued (open visits included): a fresh code whose hash exists is drawn
    again. Adds to the session in a savepoint; the caller commits.
    """
    for _ in range(_ISSUE_ATTEMPTS):
        code = _new_code()
        digest = hash_code(code)
        if db.session.scalar(select(EntryCode.id).where(EntryCode.code_hash == digest)) is not None:
            continue
        try:
            with db.session.begin_nested():  # a concurrent issuer may take the same hash in between
                db.session.add(
                    EntryCode(
                        visit_id=visit.id,
                        code_hash=digest,
                        valid_from=visit.opens_at,
                        valid_until=visit.closes_at,
                        created_at=now,
                    )
                )
        except IntegrityError:
            continue
        return code
    raise CodeCollision(f"no free entry code after {_ISSUE_ATTEMPTS} attempts")


def usable_code(typed: str, now: datetime) -> EntryCode | None:
    """The code row if `typed` opens a questionnaire at `now`, else None for every other reason alike:
    unknown, malformed, revoked, outside its window, visit answered or closed, participant not active."""
    code = normalise(typed)
    if len(code) != CODE_LENGTH or any(c not in ALPHABET for c in code):
        hash_code("2" * CODE_LENGTH)  # the same work as a well-formed miss
        return None
    digest = hash_code(code)
    row = db.session.scalar(select(EntryCode).where(EntryCode.code_hash == digest))
    if row is None or not hmac.compare_digest(row.code_hash, digest) or row.revoked_at is not None:
        return None
    if not (row.valid_from <= now < row.valid_until):
        return None
    visit = row.visit
    if not visit.is_open_at(now) or visit.participant.status != StudyStatus.ACTIVE:
        return None
    return row


def redeem(typed: str, now: datetime) -> str | None:
    """A fresh link token for the code's visit (the caller redirects to it), or None if the code cannot
    be used. Adds the link to the session; the caller commits."""
    row = usable_code(typed, now)
    if row is None:
        return None
    return issue_link(row.visit, now)


def personal_code(visit: Visit, now: datetime, mode: LinkMode | None = None) -> str:
    """The `code` parameter of an invite or reminder for `visit`, issued now (adds to the session).

    `mode` defaults to SMS_LINK_MODE. "path": a new link token (22 characters), which follows the fixed
    `{PUBLIC_BASE_URL}/s/` of the template. "entry": a new 8-character code, typed at the fixed
    `{PUBLIC_BASE_URL}/c`. Either way the variable never carries a domain.
    """
    mode = mode or current_app.config.get("SMS_LINK_MODE", "path")
    if mode == "path":
        return issue_link(visit, now)
    if mode == "entry":
        return issue_code(visit, now)
    raise ValueError(f"unknown SMS link mode {mode!r}")


def code_base_url(mode: LinkMode | None = None) -> str:
    """The fixed address the templates hold for `mode`: `{PUBLIC_BASE_URL}/s/` or `{PUBLIC_BASE_URL}/c`."""
    mode = mode or current_app.config.get("SMS_LINK_MODE", "path")
    base = current_app.config["PUBLIC_BASE_URL"]
    return f"{base}/c" if mode == "entry" else f"{base}/s/"


def format_code(code: str) -> str:
    """A code as printed for people to read and type: two groups of four ("ABCD 2345")."""
    return f"{code[:4]} {code[4:]}" if len(code) == CODE_LENGTH else code
