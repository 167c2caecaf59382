"""Fixtures for the REDCap-as-source-of-truth tests: a local REDCap per test and an app pointed at it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import pytest
from flask import Flask

from devservers.redcap_api import DEV_TOKEN, create_redcap_app
from devservers.redcap_project import ProjectDefinition
from devservers.redcap_state import RedcapState
from devservers.runner import ServerHandle, serve_in_thread

STUDY = Path(__file__).resolve().parents[3] / "study"
DET_SECRET = "det-secret-for-tests-0123456789"
PROJECT_ID = "4242"


@dataclass
class LocalRedcap:
    """A running local REDCap project: its API URL and its state (records, call log, faults)."""

    handle: ServerHandle
    state: RedcapState

    @property
    def api_url(self) -> str:
        return f"{self.handle.url}/api/"

    def calls(self, content: str = "record", action: str = "export") -> list[dict]:
        """Logged calls of one kind (names and counts only)."""
        return [c for c in self.state.calls if c.get("content") == content and c.get("action") == action]


@pytest.fixture(autouse=True)
def _no_failure_pause() -> Iterator[None]:
    """The send-time check pauses re-reads for 60 s after a failure, process-wide: start each test clean."""
    from app.redcap.failure_pause import reset_failure_pause

    reset_failure_pause()
    yield
    reset_failure_pause()


@pytest.fixture
def redcap() -> Iterator[LocalRedcap]:
    """The trial's project, empty, on a free loopback port; stopped after the test."""
    state = RedcapState(ProjectDefinition.load(STUDY), DEV_TOKEN)
    server = LocalRedcap(serve_in_thread(create_redcap_app(state.project, state=state)), state)
    yield server
    state.close()
    server.handle.stop()


@pytest.fixture
def truth_app(app_factory, redcap) -> Callable[..., Flask]:
    """Build the service pointed at the local REDCap, console SMS, DET secret and project id set."""

    def make(**env: str) -> Flask:
        settings = {
            "REDCAP_API_URL": redcap.api_url,
            "REDCAP_API_TOKEN": DEV_TOKEN,
            "REDCAP_DET_SECRET": DET_SECRET,
            "REDCAP_PROJECT_ID": PROJECT_ID,
            "REDCAP_MAX_CALLS_PER_SECOND": "1000",
            "REDCAP_TIMEOUT": "10",  # generous: a loaded 2-core CI box must not fake an outage
            "SMS_BACKEND": "console",
            "REDCAP_DET_WORKER": "false",
        }
        settings.update(env)
        return app_factory(**settings)

    return make


def baseline_row(record: str, discharge: date, *, status: str = "1", phone: str = "13800138001") -> dict:
    """An enrollment row as coordinators enter it (fictitious phone, blinded group present in REDCap)."""
    return {
        "record_id": record,
        "redcap_event_name": "baseline_arm_1",
        "enrol_date": discharge.isoformat(),
        "discharge_date": discharge.isoformat(),
        "mobile_phone": phone,
        "sms_consent": "1",
        "preferred_language": "1",
        "study_status": status,
        "randomization_group": "1",
        "enrollment_complete": "2",
    }


def staff_questionnaire(record: str, event: str = "week_4_arm_1", **values: str) -> dict:
    """A follow-up questionnaire as staff would enter it in REDCap, marked complete."""
    row = {
        "record_id": record,
        "redcap_event_name": event,
        "fu_fever": "0",
        "fu_mmrc": "1",
        "fu_cough": "1",
        "followup_questionnaire_complete": "2",
    }
    row.update(values)
    return row
