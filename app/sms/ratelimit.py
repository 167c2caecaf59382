"""SMS_RATE_PER_SECOND across every sender thread, process and host, kept in one database row.

Each text reserves the next free instant with a single atomic UPDATE … RETURNING on the
`sms_rate_buckets` row (`next_at = max(next_at, now) + 1/rate`) and sleeps until then. One
statement is atomic on PostgreSQL (row lock) and on SQLite (single writer), so two schedulers
overlapping still share one rate. A database row rather than Redis: the database is already
the one thing every process shares, and the rate is low (a long code allows ~1 text a second),
so one small write per text costs nothing worth another moving part.
"""

from __future__ import annotations

import threading
import time
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


def reserve(rate_per_second: float, name: str = BUCKET, clock: Callable[[], float] = time.time) -> float:
    """Reserve the next send slot; returns the wall-clock instant (epoch seconds) to send at."""
    interval = 1.0 / rate_per_second
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
            .values(next_at=start + interval)
            .returning(SmsRateBucket.next_at)
        ).scalar()
        if slot is None:
            _create(conn, name)
            slot = conn.execute(
                update(SmsRateBucket)
                .where(SmsRateBucket.name == name)
                .values(next_at=start + interval)
                .returning(SmsRateBucket.next_at)
            ).scalar_one()
    return float(slot) - interval


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
    at = reserve(rate_per_second, name)
    _sleep(at - time.time(), stop)
    spacing = CATCH_UP_SPACING / rate_per_second
    with _pace_lock:
        last = _last_start.get(name)
        if last is not None:
            _sleep(last + spacing - time.monotonic(), stop)
        _last_start[name] = time.monotonic()
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
    with db.engine.begin() as conn:
        conn.execute(update(SmsRateBucket).where(SmsRateBucket.name == name).values(next_at=0.0))
