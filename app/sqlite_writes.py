"""SQLite write transactions of one process take turns on a Python lock before SQLite's own write lock.

SQLite lets one writer at a time into a database. A second writer gets SQLITE_BUSY and its busy
handler sleeps in coarse steps (1, 2, 5, 10 … 100 ms) before looking again, so with tens of sender
threads the wait for the lock, not the work under it, set the time a text took. Within a process the
waiters now queue on a lock per database file and the next one starts the moment the holder commits;
writers in other processes still meet SQLite's lock and its busy handler as before, so nothing about
the database's own locking (or what it guarantees) changes.

The lock is taken where pysqlite opens a write transaction (the first INSERT, UPDATE, DELETE or
REPLACE outside one) and given back after the transaction's COMMIT or ROLLBACK, or when the connection
closes. It waits at most LOCK_WAIT seconds, then goes on to SQLite's lock as before; a connection in
autocommit mode (isolation_level None) never takes it.
"""

from __future__ import annotations

import sqlite3
import threading
from typing import Any

LOCK_WAIT = 30.0  # seconds, as SQLite's busy timeout (app.extensions)
_WRITES = ("INSERT", "UPDATE", "DELETE", "REPLACE")

_locks_guard = threading.Lock()
_locks: dict[str, threading.Lock] = {}


def _lock_for(database: str) -> threading.Lock:
    with _locks_guard:
        return _locks.setdefault(database, threading.Lock())


class SerializedWritesConnection(sqlite3.Connection):
    """A pysqlite connection whose write transactions take this process's lock for its database."""

    def __init__(self, database: Any, *args: Any, **kwargs: Any) -> None:
        super().__init__(database, *args, **kwargs)
        name = str(database)
        # In-memory databases are private to their connection: nothing to take turns with.
        self._write_lock = None if name in ("", ":memory:") or "mode=memory" in name else _lock_for(name)
        self._holding = False

    def before_statement(self, statement: str) -> None:
        """Take the lock if `statement` opens a write transaction on this connection."""
        if (
            self._write_lock is None
            or self._holding
            or self.in_transaction
            or self.isolation_level is None
            or not statement.lstrip()[:7].upper().startswith(_WRITES)
        ):
            return
        self._holding = self._write_lock.acquire(timeout=LOCK_WAIT)

    def _release(self) -> None:
        if self._holding and not self.in_transaction and self._write_lock is not None:
            self._holding = False  # _holding is only ever set with a lock
            self._write_lock.release()

    def commit(self) -> None:
        try:
            super().commit()
        finally:
            self._release()

    def rollback(self) -> None:
        try:
            super().rollback()
        finally:
            self._release()

    def close(self) -> None:
        try:
            super().close()
        finally:
            if self._holding and self._write_lock is not None:
                self._holding = False
                self._write_lock.release()
