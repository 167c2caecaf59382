"""How many texts a send pass keeps in flight: enough to reach SMS_RATE_PER_SECOND at the provider's latency.

Little's law: when one text takes L seconds (our own work on it and the provider's answer), `rate` texts
a second need rate × L senders at once. The pass keeps that many, with headroom, bounded by
SMS_MAX_IN_FLIGHT as a ceiling; L is an EWMA over the texts this process has sent, per backend.
The rate itself is still enforced by app.sms.ratelimit across processes: more senders never send faster.

L counts the provider call's wall time and the CPU time the sender thread spent on the text, not the
text's whole wall time: the rest is waiting (for the rate's turn, for the database's write lock, for the
interpreter lock), and waits grow with the number of senders. Sizing on them fed back on itself: more
senders waited longer, which asked for more senders, until the ceiling (measured: 64 threads at 50 ms,
where 10 suffice, and the extra contention cost about 5 ms of CPU per text).
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

HEADROOM = 1.5  # latency jitter, and the waits L leaves out
SPARE = 2  # senders beyond rate × L × HEADROOM: one whose text is between steps never leaves a slot unused
FIRST_GUESS_SECONDS = 0.5  # the latency assumed before this process has timed a call
SMOOTHING = 0.2  # weight of each new observation in the moving average


def in_flight(rate_per_second: float, latency_seconds: float, ceiling: int) -> int:
    """ceil(rate × latency × HEADROOM) + SPARE requests, at least 1 and at most `ceiling`."""
    if rate_per_second <= 0 or latency_seconds <= 0:
        return 1
    wanted = math.ceil(rate_per_second * latency_seconds * HEADROOM) + SPARE
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
    """Record how long one text took: the provider's answer and our own CPU time on it."""
    meter(backend).observe(seconds)


_calls = threading.local()


@contextmanager
def provider_call() -> Iterator[None]:
    """Around one request to the provider: its wall time is part of the text's L (see `timed`)."""
    started = time.monotonic()
    try:
        yield
    finally:
        _calls.seconds = getattr(_calls, "seconds", 0.0) + time.monotonic() - started


@contextmanager
def timed(backend: str) -> Iterator[None]:
    """Observe one text's L: this thread's CPU time over the block plus its provider calls' wall time."""
    calls_before, cpu_before = getattr(_calls, "seconds", 0.0), time.thread_time()
    try:
        yield
    finally:
        calls = getattr(_calls, "seconds", 0.0) - calls_before
        observe(backend, time.thread_time() - cpu_before + calls)


def ceiling(config: Mapping[str, Any]) -> int:
    """The most senders a pass may start: SMS_MAX_IN_FLIGHT (one for the console backend)."""
    return 1 if config["SMS_BACKEND"] == "console" else int(config["SMS_MAX_IN_FLIGHT"])


def wanted(config: Mapping[str, Any]) -> int:
    """How many senders should be active now, from the rate and the latency observed so far."""
    rate = float(config["SMS_RATE_PER_SECOND"])
    return in_flight(rate, meter(config["SMS_BACKEND"]).seconds, ceiling(config))
