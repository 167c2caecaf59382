"""The send pass's sizing: Little's law with headroom, bounded by the ceiling, on an observed latency."""

from __future__ import annotations

import time

import pytest

from app.sms import concurrency
from app.sms.concurrency import LatencyMeter, ceiling, in_flight


@pytest.mark.parametrize(
    ("rate", "latency", "cap", "expected"),
    [
        (100, 0.05, 64, 10),  # ceil(100 x 0.05 x 1.5) + 2
        (100, 0.3, 64, 47),
        (100, 1.0, 64, 64),  # the ceiling binds
        (1, 0.3, 64, 3),  # the default rate needs hardly any
        (100, 0.0, 64, 1),
        (0, 0.3, 64, 1),
        (0.01, 0.05, 64, 3),
        (100, 0.3, 1, 1),
    ],
)
def test_in_flight_follows_rate_and_latency(rate, latency, cap, expected):
    assert in_flight(rate, latency, cap) == expected


def test_more_latency_never_means_fewer_in_flight():
    sizes = [in_flight(100, ms / 1000, 64) for ms in range(0, 2000, 7)]
    assert sizes == sorted(sizes) and sizes[0] == 1 and sizes[-1] == 64


def test_meter_starts_from_a_guess_then_follows_observations():
    meter = LatencyMeter(initial=0.5, smoothing=0.5)
    assert meter.seconds == 0.5
    meter.observe(0.1)  # the first observation replaces the guess
    assert meter.seconds == pytest.approx(0.1)
    meter.observe(0.3)
    assert meter.seconds == pytest.approx(0.2)


def test_console_backend_sends_one_at_a_time():
    assert ceiling({"SMS_BACKEND": "console", "SMS_MAX_IN_FLIGHT": 64}) == 1
    assert ceiling({"SMS_BACKEND": "twilio", "SMS_MAX_IN_FLIGHT": 64}) == 64


def test_a_text_is_timed_by_its_provider_calls_and_its_own_cpu_not_its_waits():
    """Waiting (for the rate's turn, a lock) is left out: it grows with the senders, and fed back on itself."""
    concurrency._meters.pop("timing-test", None)
    with concurrency.timed("timing-test"):
        time.sleep(0.2)  # a wait: no CPU, not a provider call
        with concurrency.provider_call():
            time.sleep(0.05)  # the provider's answer
    observed = concurrency.meter("timing-test").seconds
    assert 0.05 <= observed < 0.15
