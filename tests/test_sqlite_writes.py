"""SQLite write transactions of one process queue on a lock per database file (app.sqlite_writes)."""

from __future__ import annotations

import sqlite3

from app.sqlite_writes import SerializedWritesConnection, _lock_for


def connect(path) -> SerializedWritesConnection:
    conn = sqlite3.connect(str(path), factory=SerializedWritesConnection, check_same_thread=False)
    assert isinstance(conn, SerializedWritesConnection)
    return conn


def execute(conn: SerializedWritesConnection, sql: str) -> None:
    conn.before_statement(sql)  # what the engine's before_cursor_execute hook does
    conn.execute(sql)


def test_a_write_transaction_holds_the_lock_until_commit_or_rollback(tmp_path):
    path = tmp_path / "w.db"
    conn = connect(path)
    execute(conn, "CREATE TABLE t (x INTEGER)")  # DDL opens no transaction in pysqlite
    lock = _lock_for(str(path))
    assert not lock.locked()
    execute(conn, "SELECT * FROM t")
    assert not lock.locked()  # reads never queue
    execute(conn, "INSERT INTO t VALUES (1)")
    assert lock.locked() and conn.in_transaction
    execute(conn, "UPDATE t SET x = 2")  # the same transaction: taken once
    conn.commit()
    assert not lock.locked()
    execute(conn, "  delete from t")
    assert lock.locked()
    conn.rollback()
    assert not lock.locked()
    execute(conn, "INSERT INTO t VALUES (3)")
    conn.close()  # a connection closed mid-transaction gives the lock back
    assert not lock.locked()


def test_another_connection_waits_for_the_holder_and_then_writes(tmp_path):
    import threading

    path = tmp_path / "w.db"
    first, second = connect(path), connect(path)
    execute(first, "CREATE TABLE t (x INTEGER)")
    execute(first, "INSERT INTO t VALUES (1)")
    done = threading.Event()

    def write() -> None:
        execute(second, "INSERT INTO t VALUES (2)")
        second.commit()
        done.set()

    thread = threading.Thread(target=write)
    thread.start()
    assert not done.is_set()  # it cannot get past the lock the first connection holds
    first.commit()
    thread.join(30)
    assert done.is_set()
    assert sorted(r[0] for r in first.execute("SELECT x FROM t")) == [1, 2]
    assert not _lock_for(str(path)).locked()


def test_autocommit_and_in_memory_connections_never_take_it(tmp_path):
    path = tmp_path / "w.db"
    auto = connect(path)
    auto.isolation_level = None
    execute(auto, "CREATE TABLE t (x INTEGER)")
    execute(auto, "INSERT INTO t VALUES (1)")  # committed by itself: nothing would give it back
    assert not _lock_for(str(path)).locked()
    memory = sqlite3.connect(":memory:", factory=SerializedWritesConnection)
    assert isinstance(memory, SerializedWritesConnection)
    execute(memory, "CREATE TABLE t (x INTEGER)")
    execute(memory, "INSERT INTO t VALUES (1)")
    assert memory.in_transaction and not _lock_for(":memory:").locked()
