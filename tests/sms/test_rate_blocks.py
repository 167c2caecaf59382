"""Rate slots taken in blocks per process: still distinct and 1/rate apart across processes, never late."""

from __future__ import annotations

import itertools

from app.sms import ratelimit


def test_two_processes_taking_blocks_share_one_spacing(twilio_server, monkeypatch):
    """Each process holds its own blocks; together they get every slot once, exactly 1/rate apart."""
    start = 1_900_000_000.0
    clock = itertools.count()
    ratelimit.reset()
    taken: list[float] = []
    held_by = [{}, {}]  # the module's per-process store, one per pretend process
    for turn in range(40):
        monkeypatch.setattr(ratelimit, "_blocks", held_by[turn % 2])
        now = start + next(clock) * 0.001  # the wall clock moves on slower than slots are handed out
        taken.append(ratelimit.take_slot(100.0, clock=lambda now=now: now))
    assert ratelimit.block_size(100.0) == 5
    assert len(set(taken)) == len(taken)
    gaps = [b - a for a, b in itertools.pairwise(sorted(taken))]
    assert all(abs(gap - 0.01) < 1e-6 for gap in gaps)


def test_a_held_slot_already_past_is_dropped_not_used_late(twilio_server):
    ratelimit.reset()
    start = 1_900_000_000.0
    first = ratelimit.take_slot(100.0, clock=lambda: start)
    assert first == start
    later = ratelimit.take_slot(100.0, clock=lambda: start + 5)  # four held slots are stale now
    assert later == start + 5


def test_held_slots_from_before_a_clock_step_back_are_dropped(twilio_server):
    ratelimit.reset()
    start = 1_900_000_000.0
    ratelimit.take_slot(100.0, clock=lambda: start)
    back = start - 3600
    assert ratelimit.take_slot(100.0, clock=lambda: back) == back


def test_ordinary_rates_take_one_slot_at_a_time(twilio_server):
    assert ratelimit.block_size(1.0) == ratelimit.block_size(19.0) == 1
    assert ratelimit.block_size(10_000.0) == ratelimit.BLOCK_MAX


class _LateClock:
    """A fake clock whose every sleep overruns by `late` seconds, as a thread waking on a busy interpreter."""

    def __init__(self, late: float) -> None:
        self.now, self.late = 1_900_000_000.0, late

    def time(self) -> float:
        return self.now

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float, stop=None) -> None:
        if seconds > 0:
            self.now += seconds + self.late


def test_late_wake_ups_do_not_push_every_later_start_back(monkeypatch):
    """Texts whose slots have passed are spaced CATCH_UP_SPACING apart from the planned starts, so a thread
    waking 3 ms late delays its own text, not the 19 after it (the rate stayed at the setting)."""
    clock = _LateClock(late=0.003)
    monkeypatch.setattr(ratelimit, "time", clock)
    monkeypatch.setattr(ratelimit, "_sleep", clock.sleep)
    monkeypatch.setattr(ratelimit, "take_slot", lambda rate, name=ratelimit.BUCKET: clock.now - 0.001)
    monkeypatch.setattr(ratelimit, "_last_start", {})
    begun = clock.now
    for _ in range(20):
        ratelimit.wait_turn(100.0)
    spacing = ratelimit.CATCH_UP_SPACING / 100.0
    assert clock.now - begun < 20 * spacing + 0.003 + 1e-9  # one overrun in all, not one per text
    assert clock.now - begun >= 19 * spacing  # still never closer than the catch-up spacing
