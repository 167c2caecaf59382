"""Fixtures for the REDCap bridge: a local REDCap server per test and the service pointed at it.

`redcap_server` starts the trial's project (empty) on a free loopback port, builds the app with
`app_factory(REDCAP_API_URL=…, REDCAP_API_TOKEN=…)` and pushes its context; the real PyCap client talks to
the server over HTTP. Everything stops at the end of the test, even when an assert fails.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from devservers.redcap_api import DEV_TOKEN, create_redcap_app
from devservers.redcap_project import ProjectDefinition
from devservers.redcap_state import RedcapState
from devservers.runner import ServerHandle, serve_in_thread

STUDY = Path(__file__).resolve().parents[2] / "study"

# Fast defaults for tests; the rate test sets its own ceiling.
BASE_SETTINGS = {
    "REDCAP_MAX_CALLS_PER_SECOND": "200",
    "REDCAP_TIMEOUT": "3",
    "SMS_BACKEND": "console",
    "REDCAP_DET_WORKER": "false",
}


@dataclass
class RedcapEnv:
    """A running local REDCap project and the service app pointed at it (context pushed)."""

    handle: ServerHandle
    state: RedcapState
    app: Flask | None = None
    _contexts: list[Any] = field(default_factory=list)
    _factory: Callable[..., Flask] | None = None

    @property
    def api_url(self) -> str:
        return f"{self.handle.url}/api/"

    def calls(self, content: str = "record", action: str | None = None) -> list[dict]:
        """Logged API calls of one content (and action): names and counts only, never values."""
        return [
            c
            for c in self.state.calls
            if c.get("content") == content and (action is None or c.get("action") == action)
        ]

    def rebuild(self, **env: str) -> Flask:
        """Replace the app with one built with extra settings (on a fresh database, its context pushed)."""
        assert self._factory is not None
        if self.app is not None:  # let go of the old app's connections, or PostgreSQL's DROP waits on them
            from app.extensions import db

            db.session.remove()
            db.engine.dispose()
        settings = {**BASE_SETTINGS, "REDCAP_API_URL": self.api_url, "REDCAP_API_TOKEN": DEV_TOKEN, **env}
        app = self._factory(**settings)
        ctx = app.app_context()
        ctx.push()
        self._contexts.append(ctx)
        self.app = app
        return app

    def cli(self, *args: str):
        """Run `flask --app wsgi <args>` against the current app; returns click's Result."""
        assert self.app is not None
        return self.app.test_cli_runner().invoke(args=list(args))


def start_server(project: Path | str = STUDY, **state_kwargs: Any) -> tuple[ServerHandle, RedcapState]:
    """A local REDCap serving `project` (a directory with data_dictionary.csv …) on a free port."""
    definition = ProjectDefinition.load(project)
    state = RedcapState(definition, DEV_TOKEN, **state_kwargs)
    return serve_in_thread(create_redcap_app(definition, state=state)), state


@pytest.fixture
def redcap_env_factory(app_factory) -> Iterator[Callable[..., RedcapEnv]]:
    """`redcap_env_factory(project_dir=STUDY, **settings)`: a server for that project and an app on it."""
    started: list[RedcapEnv] = []

    def make(project: Path | str = STUDY, *, state_kwargs: dict | None = None, **env: str) -> RedcapEnv:
        handle, state = start_server(project, **(state_kwargs or {}))
        server = RedcapEnv(handle, state, _factory=app_factory)
        started.append(server)
        server.rebuild(**env)
        return server

    yield make
    for server in started:
        for ctx in reversed(server._contexts):
            ctx.pop()
        server.state.close()
        server.handle.stop()


@pytest.fixture
def redcap_server(redcap_env_factory) -> RedcapEnv:
    """The trial's project, empty, and the service app pointed at it with its context pushed."""
    return redcap_env_factory()


def baseline_row(
    record: str,
    discharge: date | str,
    *,
    phone: str = "13800138001",
    consent: str = "1",
    language: str = "2",
    status: str = "1",
    group: str = "1",
) -> dict[str, str]:
    """An enrollment row as a coordinator enters it (fictitious phone; the blinded arm is there in REDCap)."""
    return {
        "record_id": record,
        "redcap_event_name": "baseline_arm_1",
        "enrol_date": str(discharge),
        "discharge_date": str(discharge),
        "mobile_phone": phone,
        "sms_consent": consent,
        "preferred_language": language,
        "study_status": status,
        "randomization_group": group,
        "enrollment_complete": "2",
    }
