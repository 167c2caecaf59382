"""Fixtures shared by the scheduler's fault tests."""

from __future__ import annotations

import pytest

from devservers.runner import serve_in_thread
from devservers.twilio_api import TwilioState, create_twilio_app
from tests.scheduler.harness import ACCOUNT_SID, AUTH_TOKEN


@pytest.fixture
def twilio():
    """A local Twilio-compatible server without callbacks; yields (state, base URL)."""
    state = TwilioState({ACCOUNT_SID: AUTH_TOKEN}, callbacks_enabled=False, hang_seconds=1.0)
    handle = serve_in_thread(create_twilio_app(state=state))
    yield state, handle.url
    state.close()
    handle.stop()
