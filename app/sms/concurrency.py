"""How many texts a send pass keeps in flight: enough to reach SMS_RATE_PER_SECOND at the provider's latency.

Little's law: when one text takes L seconds (our database work and the provider's answer), `rate` texts a
second need rate × L senders at once. The pass keeps that many, with headroom, bounded by
SMS_MAX_IN_FLIGHT as a ceiling; L is an EWMA over the texts this process has sent, per backend.
The rate itself is still enforced by app.sms.ratelimit across processes: more senders never send faster.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

HEADROOM = 1.5  # our own database work per text, and latency jitter
FIRST_GUESS_SECONDS = 0.5  # the latency assumed before this process has timed a call
SMOOTHING = 0.2  # weight of each new observation in the moving average


def in_flight(rate_per_second: float, latency_seconds: float, ceiling: int) -> int:
    """ceil(rate × latency × HEADROOM) + 1 requests, at least 1 and at most `ceiling`."""
    wanted = math.ceil(max(rate_per_second, 0.0) * max(latency_seconds, 0.0) * HEADROOM) + 1
    return max(1, min(int(ceiling), wanted))


class LatencyMeter:
    """An exponentially weighted moving average of observed call times, safe across threads."""

    def __init__(self, initial: float = FIRST_GUESS_SECONDS, smoothing: float = SMOOTHING) -> None:
        self._value = float(initial)
        self._smoothing = smoothing
        self._timed = False
        self._lock = threading.Lock()

    def observe(self, seconds: float) -> None:
        """Fold one call's duration in; the first one replaces the initial guess."""
        with self._lock:
            if self._timed:
                self._value += self._smoothing * (seconds - self._value)
            else:
                self._value, self._timed = float(seconds), True

    @property
    def seconds(self) -> float:
        """The current estimate of one call's duration."""
        return self._value


_meters: dict[str, LatencyMeter] = {}
_meters_lock = threading.Lock()


def meter(backend: str) -> LatencyMeter:
    """This process's latency meter for an SMS backend."""
    with _meters_lock:
        return _meters.setdefault(backend, LatencyMeter())


def observe(backend: str, seconds: float) -> None:
    """Record how long one text took from its row to the provider's answer, its turn aside."""
    meter(backend).observe(seconds)


_turns = threading.local()


def waited(seconds: float) -> None:
    """This thread waited `seconds` for its turn under the rate ceiling (not part of a text's cost)."""
    _turns.seconds = getattr(_turns, "seconds", 0.0) + seconds


@contextmanager
def timed(backend: str) -> Iterator[None]:
    """Observe the block's duration (one text: database work and the provider call) less its turn waits."""
    before, started = getattr(_turns, "seconds", 0.0), time.monotonic()
    try:
        yield
    finally:
        observe(backend, time.monotonic() - started - (getattr(_turns, "seconds", 0.0) - before))


def ceiling(config: Mapping[str, Any]) -> int:
    """The most senders a pass may start: SMS_MAX_IN_FLIGHT (one for the console backend)."""
    return 1 if config["SMS_BACKEND"] == "console" else int(config["SMS_MAX_IN_FLIGHT"])


def wanted(config: Mapping[str, Any]) -> int:
    """How many senders should be active now, from the rate and the latency observed so far."""
    rate = float(config["SMS_RATE_PER_SECOND"])
    return in_flight(rate, meter(config["SMS_BACKEND"]).seconds, ceiling(config))
