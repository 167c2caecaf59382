"""SMS_RATE_PER_SECOND across every sender thread, process and host, kept in one database row.

Each text takes the next free instant and sleeps until then. Instants come from a single atomic
UPDATE … RETURNING on the `sms_rate_buckets` row (`next_at = max(next_at, now) + n/rate`), which
hands a process a block of n consecutive slots (n = 1 at ordinary rates, 5 at 100/s: BLOCK_SECONDS). One
statement is atomic on PostgreSQL (row lock) and on SQLite (single writer), so two schedulers
overlapping still share one rate. A database row rather than Redis: the database is already
the one thing every process shares, and the rate is low (a long code allows ~1 text a second),
so one small write per text costs nothing worth another moving part.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable

from sqlalchemy import case, func, update
from sqlalchemy.engine import Connection

from app.extensions import db
from app.models import SmsRateBucket

BUCKET = "sms"
# Threads of one process start at least this fraction of 1/rate apart: lateness is made up within a
# few texts, and no second sees more than about 5 % over the rate.
CATCH_UP_SPACING = 0.95
# A bucket further ahead than this was written by a clock that has since stepped back (NTP, a restored
# VM): honouring it would stall every text for the size of the step, so it restarts from now.
MAX_LEAD_SECONDS = 60.0
# A process reserves the slots of about this many seconds in one UPDATE (at 100/s: 5 slots, at 1/s: 1),
# so the shared row costs one write transaction per block, not per text; at most BLOCK_MAX slots.
BLOCK_SECONDS = 0.05
BLOCK_MAX = 16


def reserve(
    rate_per_second: float, name: str = BUCKET, clock: Callable[[], float] = time.time, count: int = 1
) -> float:
    """Reserve the next `count` send slots, 1/rate apart; returns the first one's wall-clock instant
    (epoch seconds)."""
    interval = 1.0 / rate_per_second
    span = interval * count
    # The wall clock, not a passed-in `now`: slots are real instants shared by every process.
    now = clock()
    with db.engine.begin() as conn:
        greatest = func.max if conn.dialect.name == "sqlite" else func.greatest
        start = case(
            (SmsRateBucket.next_at > now + MAX_LEAD_SECONDS, now),
            else_=greatest(SmsRateBucket.next_at, now),
        )
        slot = conn.execute(
            update(SmsRateBucket)
            .where(SmsRateBucket.name == name)
            .values(next_at=start + span)
            .returning(SmsRateBucket.next_at)
        ).scalar()
        if slot is None:
            _create(conn, name)
            slot = conn.execute(
                update(SmsRateBucket)
                .where(SmsRateBucket.name == name)
                .values(next_at=start + span)
                .returning(SmsRateBucket.next_at)
            ).scalar_one()
    return float(slot) - span


def block_size(rate_per_second: float) -> int:
    """How many slots one reservation takes: BLOCK_SECONDS' worth, at least 1, at most BLOCK_MAX."""
    return max(1, min(BLOCK_MAX, math.floor(rate_per_second * BLOCK_SECONDS)))


_blocks_lock = threading.Lock()
_blocks: dict[tuple[str, float], deque[float]] = {}


def take_slot(rate_per_second: float, name: str = BUCKET, clock: Callable[[], float] = time.time) -> float:
    """The next slot this process holds, reserving a block from the shared row when none is left.

    Every slot still comes from the one row, so slots stay distinct and 1/rate apart across processes;
    a block only means fewer writes. A held slot already more than an interval past (no thread took it
    in time) or beyond MAX_LEAD_SECONDS ahead (the clock stepped back) is dropped, never used late:
    an unused slot costs rate, a late one could bunch with another process's.
    """
    size = block_size(rate_per_second)
    if size == 1:
        return reserve(rate_per_second, name, clock)
    interval = 1.0 / rate_per_second
    with _blocks_lock:
        held = _blocks.setdefault((name, rate_per_second), deque())
        now = clock()
        while held and not now - interval <= held[0] <= now + MAX_LEAD_SECONDS:
            held.popleft()
        if not held:
            first = reserve(rate_per_second, name, clock, count=size)
            held.extend(first + i * interval for i in range(size))
        return held.popleft()


def _create(conn: Connection, name: str) -> None:
    if conn.dialect.name == "sqlite":
        from sqlalchemy.dialects.sqlite import insert as dialect_insert
    else:
        from sqlalchemy.dialects.postgresql import insert as dialect_insert  # type: ignore[assignment]  # same API
    conn.execute(dialect_insert(SmsRateBucket).values(name=name, next_at=0.0).on_conflict_do_nothing())


_pace_lock = threading.Lock()
_last_start: dict[str, float] = {}


def wait_turn(rate_per_second: float, stop: threading.Event | None = None, name: str = BUCKET) -> float:
    """Block until this caller's reserved slot; returns the seconds waited.

    The database hands out slots 1/rate apart across every process. Threads of one process that
    wake late for their slots would otherwise leave in a clump, so they also start at least
    CATCH_UP_SPACING of an interval apart in real time. A whole interval there would let every late
    wake-up push all later texts back (the rate then sags below the configured one); a little less
    lets a late sender catch up within a few texts without a burst. That spacing is kept on the
    monotonic clock, so a wall clock stepped back never stalls the threads of a process.
    """
    started = time.monotonic()
    at = take_slot(rate_per_second, name)
    _sleep(at - time.time(), stop)
    spacing = CATCH_UP_SPACING / rate_per_second
    with _pace_lock:
        last = _last_start.get(name)
        begin = time.monotonic()
        if last is not None and last + spacing > begin:
            _sleep(last + spacing - begin, stop)
            # The planned instant, not the moment this thread got the interpreter back: recording the
            # wake-up (late by up to a switch interval when the process is busy) pushed every later
            # start back by that much, text after text, and the rate sagged to ~70-90 % of the setting.
            begin = last + spacing
        _last_start[name] = begin
    return time.monotonic() - started


def _sleep(seconds: float, stop: threading.Event | None) -> None:
    if seconds <= 0:
        return
    if stop is not None:
        stop.wait(seconds)
    else:
        time.sleep(seconds)


def reset(name: str = BUCKET) -> None:
    """Forget past reservations (tests and benchmarks start from an idle bucket)."""
    with _blocks_lock:
        _blocks.clear()
    with db.engine.begin() as conn:
        conn.execute(update(SmsRateBucket).where(SmsRateBucket.name == name).values(next_at=0.0))
