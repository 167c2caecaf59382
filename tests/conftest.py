"""Shared fixtures: an app per test on a fresh database (SQLite, and PostgreSQL when it answers)."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from flask import Flask

from app import create_app
from app.extensions import db
from config import TestingConfig
from tests import network_guard
from tests.dbs import postgres_test_database, postgres_unavailable_reason

BACKENDS = ["sqlite", "postgres"]
TIMESHIFT_SITE = Path(__file__).resolve().parent / "timeshift_site"

# The `browser` fixture (Debian's Chromium through Playwright) for every real-browser test.
pytest_plugins = ["tests.browser_support"]


def pytest_configure(config) -> None:
    """Fail any outbound call to a non-loopback address (tests/network_guard.py), then apply TIMESHIFT.

    Under `TIMESHIFT` (make test-timeshift), make sure this process and its subprocesses run shifted.

    The Makefile puts tests/timeshift_site on PYTHONPATH so the shift starts at interpreter start;
    a bare `TIMESHIFT=+400d pytest` gets the same here, for this process and every child.
    """
    network_guard.install()
    if not os.environ.get("TIMESHIFT"):
        return
    if str(TIMESHIFT_SITE) not in sys.path:
        sys.path.insert(0, str(TIMESHIFT_SITE))
    paths = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    if str(TIMESHIFT_SITE) not in paths:
        os.environ["PYTHONPATH"] = os.pathsep.join([str(TIMESHIFT_SITE), *paths])
    import followup_timeshift

    followup_timeshift.start()


def pytest_report_header(config) -> str | None:
    if not os.environ.get("TIMESHIFT"):
        return None
    return f"timeshift: TIMESHIFT={os.environ['TIMESHIFT']}, the clock reads {datetime.now(UTC):%Y-%m-%d %H:%M} UTC"


def build_app(backend: str, tmp_path: Path, **env: str) -> Flask:
    """An app on a fresh database of `backend`, with `env` as its settings."""
    if backend == "postgres":
        reason = postgres_unavailable_reason()
        if reason:
            pytest.skip(reason)
        url = postgres_test_database()
    else:
        url = f"sqlite:///{tmp_path / 'test.db'}"
    settings = {"DATABASE_URL": url, "WTF_CSRF_ENABLED": "false"}
    settings.update(env)
    app = create_app(TestingConfig(settings, instance_path=tmp_path / "instance"))
    with app.app_context():
        db.drop_all()
        db.create_all()
    return app


@pytest.fixture(params=BACKENDS)
def backend(request) -> str:
    """The database backend under test; tests using it run once per backend."""
    return request.param


@pytest.fixture
def app_factory(backend: str, tmp_path: Path) -> Iterator:
    """Build apps with extra settings: `app_factory(SMS_BACKEND="console")`."""
    built: list[Flask] = []

    def make(**env: str) -> Flask:
        app = build_app(backend, tmp_path, **env)
        built.append(app)
        return app

    yield make
    for app in built:
        with app.app_context():
            db.session.remove()
            if backend == "postgres":
                db.drop_all()
            db.engine.dispose()


@pytest.fixture
def app(app_factory) -> Iterator[Flask]:
    """The app with an application context pushed, on a fresh database."""
    app = app_factory()
    with app.app_context():
        yield app


@pytest.fixture
def client(app: Flask):
    return app.test_client()


@pytest.fixture
def runner(app: Flask):
    return app.test_cli_runner()
