"""The shared pause after a failed REDCap re-read, so one hanging REDCap does not stall every caller.

Used by the send-time freshness check (`app.redcap.freshness`) and the open-visit refresh of the
Data Entry Trigger queue (`app.redcap.rereads`). Imports nothing from the project.
"""

from __future__ import annotations

import threading
import time

# After a failed re-read, later texts of the same pass wait at once instead of each waiting for
# REDCap's timeout again (a hanging REDCap would otherwise stall the whole send pass).
FAILURE_PAUSE_S = 60.0
_failure_lock = threading.Lock()
_failed_at = [float("-inf")]


def recently_failed() -> bool:
    """Whether a REDCap re-read failed less than FAILURE_PAUSE_S ago in this process."""
    with _failure_lock:
        return time.monotonic() - _failed_at[0] < FAILURE_PAUSE_S


def note_failure() -> None:
    """Remember that REDCap just failed a re-read (pauses further re-reads for FAILURE_PAUSE_S)."""
    with _failure_lock:
        _failed_at[0] = time.monotonic()


def reset_failure_pause() -> None:
    """Forget a recent REDCap failure (tests, or an operator who knows REDCap is back)."""
    with _failure_lock:
        _failed_at[0] = float("-inf")
