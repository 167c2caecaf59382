"""The leader lease: a database row that says which scheduler process may run jobs, and until when.

Only the holder of an unexpired lease runs jobs. The holder renews it on every heartbeat; a standby
tries to take it when it has expired, so it takes over within about one lease period after the leader
dies. Taking and renewing are single conditional UPDATEs (or one INSERT guarded by the primary key),
atomic on SQLite and PostgreSQL alike, so two processes can never both believe they won the same
renewal. A process restarted on the same machine after a crash takes the lease over at once when its
previous owner's pid is gone (see `owner_is_dead_here`). The lease is an efficiency guard, not the only
one: the outbox claims keep sends unique even if two schedulers overlap (a paused leader that wakes
after its lease expired).
"""

from __future__ import annotations

import hashlib
import logging
import os
import secrets
import socket
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, cast

from sqlalchemy import Table, insert, or_, select, update
from sqlalchemy.engine import CursorResult
from sqlalchemy.exc import IntegrityError

from app.extensions import db
from app.models import SchedulerLease

log = logging.getLogger(__name__)

LEASE_NAME = "scheduler"


def _machine_tag() -> str:
    """Same boot of the same machine and the same PID namespace: where our pids mean the same thing.

    Linux only (boot id and PID namespace from /proc); elsewhere "-", which never matches.
    """
    try:
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
        namespace = os.readlink("/proc/self/ns/pid")
    except OSError:
        return "-"
    return hashlib.sha256(f"{boot}|{namespace}".encode()).hexdigest()[:12]


def make_owner_id() -> str:
    """An owner name unique to this process and run: host, pid, a random suffix and the machine tag."""
    return f"{socket.gethostname()[:120]}:{os.getpid()}:{secrets.token_hex(3)}:{_machine_tag()}"


def owner_is_dead_here(owner: str) -> bool:
    """True only if `owner` ran on this very machine, boot and PID namespace, and its pid is gone.

    Lets a scheduler restarted after a crash (systemd Restart=always, SIGKILL, OOM) take over at once
    instead of waiting out the lease. Any doubt (another host, an unparsable owner, a pid that exists,
    even reused by another program) answers False, and the lease simply expires as usual.
    """
    try:
        host, pid_text, _rand, tag = owner.rsplit(":", 3)
        pid = int(pid_text)
    except ValueError:
        return False
    if host != socket.gethostname()[:120] or tag == "-" or tag != _machine_tag() or pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except OSError:  # exists but not ours to signal: alive
        return False
    return False


class LeaderLease:
    """This process's view of the leader lease; the database row is the truth.

    `held()` is the local answer used before each job: true only after a successful take or renewal,
    and only until the lease would expire counted from the moment that renewal started (monotonic
    clock, with a safety margin), so a heartbeat stuck on the database also stops the jobs in time.
    A renewal that fails or finds another owner drops the lease at once.
    """

    def __init__(
        self,
        seconds: int,
        owner: str | None = None,
        name: str = LEASE_NAME,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.seconds = seconds
        self.owner = owner or make_owner_id()
        self.name = name
        self._clock = clock
        self._valid_until: float | None = None
        # Renew-time safety margin: stop trusting the lease a little before the row expires.
        self._margin = min(5.0, seconds / 10)

    def held(self) -> bool:
        """True while this process holds a lease it renewed recently enough to trust."""
        return self._valid_until is not None and self._clock() < self._valid_until

    def drop(self, reason: str) -> None:
        """Forget the lease locally (jobs stop at once); the row expires on its own."""
        if self._valid_until is not None:
            log.warning("scheduler lease dropped (%s): jobs paused until it is re-acquired", reason)
        self._valid_until = None

    def acquire(self, now: datetime) -> bool:
        """Take the lease if it is free or expired, or renew it if ours; True when we hold it after.

        Commits its own transaction. Database errors propagate after dropping the lease, so the caller
        (the heartbeat) logs them and tries again on the next beat.
        """
        started = self._clock()
        was_held = self.held()
        try:
            won = self._take_or_renew(now)
        except Exception:
            db.session.rollback()
            self.drop("database error while renewing")
            raise
        if won:
            self._valid_until = started + self.seconds - self._margin
            if not was_held:
                log.info("scheduler lease acquired by %s for %d s", self.owner, self.seconds)
        elif was_held:
            self.drop("another scheduler holds it")
        return won

    def _take_or_renew(self, now: datetime) -> bool:
        expires = now + timedelta(seconds=self.seconds)
        table = cast(Table, SchedulerLease.__table__)  # a model's __table__ is a Table
        # An UPDATE gives a CursorResult, which has the row count.
        result = cast(
            "CursorResult[Any]",
            db.session.execute(
                update(table)
                .where(table.c.name == self.name)
                .where(or_(table.c.owner == self.owner, table.c.expires_at <= now))
                .values(owner=self.owner, expires_at=expires, renewed_at=now)
            ),
        )
        if result.rowcount == 1:
            db.session.commit()
            return True
        holder = db.session.execute(select(table.c.owner).where(table.c.name == self.name)).scalar()
        if holder is not None:
            if owner_is_dead_here(holder):
                taken = cast(
                    "CursorResult[Any]",
                    db.session.execute(
                        update(table)
                        .where(table.c.name == self.name, table.c.owner == holder)
                        .values(owner=self.owner, expires_at=expires, renewed_at=now)
                    ),
                )
                if taken.rowcount == 1:
                    db.session.commit()
                    log.info("took the lease over from %s, which no longer runs on this machine", holder)
                    return True
            db.session.rollback()
            return False
        try:
            db.session.execute(
                insert(table).values(name=self.name, owner=self.owner, expires_at=expires, renewed_at=now)
            )
            db.session.commit()
        except IntegrityError:  # another process inserted first: it won
            db.session.rollback()
            return False
        return True

    def expires_at(self) -> datetime | None:
        """When the current lease row expires (whoever holds it), for a standby's next attempt."""
        row = db.session.get(SchedulerLease, self.name)
        value = None if row is None else row.expires_at
        db.session.rollback()
        return value

    def holder(self) -> str | None:
        """The owner named in the lease row, or None when there is no row."""
        row = db.session.get(SchedulerLease, self.name)
        value = None if row is None else row.owner
        db.session.rollback()
        return value

    def release(self, now: datetime) -> None:
        """Give the lease up on a clean stop, so a standby takes over at its next attempt."""
        self._valid_until = None
        table = cast(Table, SchedulerLease.__table__)  # a model's __table__ is a Table
        db.session.execute(
            update(table)
            .where(table.c.name == self.name, table.c.owner == self.owner)
            .values(expires_at=now, renewed_at=now)
        )
        db.session.commit()
        log.info("scheduler lease released by %s", self.owner)
