"""Test databases: a fresh SQLite file per test, and one PostgreSQL database per test run.

PostgreSQL is used when TEST_POSTGRES_URL is set or the local server answers on
127.0.0.1:5432; otherwise the PostgreSQL variants skip with the reason.
"""

from __future__ import annotations

import os
import uuid
from functools import cache

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

DEFAULT_POSTGRES = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def _admin_url() -> str:
    url = os.environ.get("TEST_POSTGRES_URL", DEFAULT_POSTGRES)
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://") :]
    return url


@cache
def postgres_unavailable_reason() -> str | None:
    """None when PostgreSQL answers; otherwise why the PostgreSQL tests are skipped."""
    try:
        engine = create_engine(_admin_url(), connect_args={"connect_timeout": 3})
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        engine.dispose()
        return None
    except Exception as exc:  # any failure means "not here"
        return f"PostgreSQL not reachable at {make_url(_admin_url()).render_as_string(hide_password=True)}: {exc.__class__.__name__}"


@cache
def postgres_test_database() -> str:
    """Create a database just for this test process (so parallel runs never collide) and return its URL."""
    admin = make_url(_admin_url())
    name = f"followup_test_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    engine = create_engine(admin, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    engine.dispose()
    import atexit

    def _drop() -> None:
        engine = create_engine(admin, isolation_level="AUTOCOMMIT")
        with engine.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        engine.dispose()

    atexit.register(_drop)
    return admin.set(database=name).render_as_string(hide_password=False)
