"""Fixtures shared by the scheduler's fault tests."""

from __future__ import annotations

import pytest

from app.extensions import db
from devservers.runner import serve_in_thread
from devservers.twilio_api import TwilioState, create_twilio_app
from tests.conftest import build_app
from tests.scheduler.harness import ACCOUNT_SID, AUTH_TOKEN, SchedulerProcesses, twilio_settings


@pytest.fixture
def schedulers(tmp_path):
    """Start `flask --app wsgi scheduler` subprocesses (`schedulers.start(env)`); all killed at teardown."""
    processes = SchedulerProcesses(tmp_path)
    yield processes
    processes.stop_all()


@pytest.fixture
def twilio():
    """A local Twilio-compatible server without callbacks; yields (state, base URL)."""
    state = TwilioState({ACCOUNT_SID: AUTH_TOKEN}, callbacks_enabled=False, hang_seconds=1.0)
    handle = serve_in_thread(create_twilio_app(state=state))
    yield state, handle.url
    state.close()
    handle.stop()


@pytest.fixture
def pg_app(tmp_path, twilio):
    """An app on this run's PostgreSQL test database (skips without PostgreSQL), emptied afterwards."""
    settings = {**twilio_settings(twilio[1]), "SMS_RATE_PER_SECOND": "60"}
    app = build_app("postgres", tmp_path, **settings)
    app.config["FAULT_SETTINGS"] = settings
    yield app
    with app.app_context():
        db.session.remove()
        db.drop_all()
        db.engine.dispose()
