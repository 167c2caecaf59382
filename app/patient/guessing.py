"""The token-guess limit: Flask-Limiter's configured storage and strategy, consulted directly.

Only failed lookups count, and only a failed lookup is refused: a valid, usable link opens even from
an address over the limit, because mobile carriers put many phones behind one address and one guesser
must not lock all of them out. (A blocked guesser could thus tell a right guess from a wrong one, but
a 128-bit token is not found by guessing; the limit keeps the noise down.) Calling the extension's
strategy here instead of through a route decorator keeps a participant's own page free of storage
calls.
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


def retry_after(now: float) -> int:
    """Seconds until this client may try again (at least 1)."""
    key = get_remote_address()
    try:
        resets = [limiter.limiter.get_window_stats(item, SCOPE, key).reset_time for item in _limits()]
    except Exception:
        return 60
    return max(1, int(max(resets, default=now + 60) - now))


def count_failure() -> bool:
    """Count one failed lookup against this client; False once it is over TOKEN_GUESS_LIMIT."""
    key = get_remote_address()
    try:
        # Every window is hit (no short-circuit), so each limit counts the failure.
        within = [limiter.limiter.hit(item, SCOPE, key) for item in _limits()]
    except Exception:  # storage down: the answer is the same 404 as for any bad link
        log.warning("rate-limit storage unavailable; failed lookup not counted")
        return True
    return all(within)
