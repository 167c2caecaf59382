"""The one backoff curve: exponential from a base, doubled per attempt, capped.

App-wide (the REDCap push, the Data Entry Trigger re-reads and the SMS provider calls all wait on it), so
it lives at the top of `app/` and imports nothing. Callers choose their base, cap and jitter.
"""

from __future__ import annotations


def backoff_ceiling(attempts: int, base_s: float, cap_s: float) -> float:
    """Seconds to wait after `attempts` tries: base, 2 x base, 4 x base … at most `cap_s` (attempts >= 1)."""
    wait: float = min(cap_s, base_s * 2 ** max(0, attempts - 1))
    return wait
