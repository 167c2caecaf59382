"""The token-guess limit: Flask-Limiter's configured storage and strategy, consulted directly.

Only failed lookups count, and a client over the limit is refused before its token is even looked
up (so a blocked guesser cannot learn that a guess was right). Calling the extension's strategy
here instead of through a route decorator keeps the participant's own page at one storage read.
"""

from __future__ import annotations

import logging
from functools import lru_cache

from flask import current_app
from flask_limiter.util import get_remote_address
from limits import RateLimitItem, parse_many

from app.extensions import limiter

log = logging.getLogger(__name__)
SCOPE = "patient-token-guess"


@lru_cache(maxsize=8)
def _items(text: str) -> tuple[RateLimitItem, ...]:
    return tuple(parse_many(text))


def _limits() -> tuple[RateLimitItem, ...]:
    if not (limiter.enabled and limiter.initialized):
        return ()
    return _items(current_app.config["TOKEN_GUESS_LIMIT"])


def blocked() -> bool:
    """Whether this client has used up its failed lookups (TOKEN_GUESS_LIMIT)."""
    key = get_remote_address()
    try:
        return any(not limiter.limiter.test(item, SCOPE, key) for item in _limits())
    except Exception:  # storage down: participants must still reach their questionnaire
        log.warning("rate-limit storage unavailable; token-guess limit not applied")
        return False


def retry_after(now: float) -> int:
    """Seconds until this client may try again (at least 1)."""
    key = get_remote_address()
    try:
        resets = [limiter.limiter.get_window_stats(item, SCOPE, key).reset_time for item in _limits()]
    except Exception:
        return 60
    return max(1, int(max(resets, default=now + 60) - now))


def count_failure() -> None:
    """Count one failed lookup against this client."""
    key = get_remote_address()
    try:
        for item in _limits():
            limiter.limiter.hit(item, SCOPE, key)
    except Exception:
        log.warning("rate-limit storage unavailable; failed lookup not counted")
