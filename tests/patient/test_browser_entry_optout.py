"""A real phone-sized Chromium (390 px) types an entry code, reaches the questionnaire, stops text reminders
behind the one confirmation and restarts them; axe-core finds nothing serious or critical on any page."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from app.extensions import db
from app.models import Participant, utcnow
from app.participants.entry_codes import issue_code
from app.questionnaire.store import save_metadata
from devservers.runner import serve_in_thread
from tests.browser_support import ARTIFACTS
from tests.conftest import build_app
from tests.patient.conftest import TRIAL, invite, load_metadata
from tests.patient.test_browser import serious

pytestmark = pytest.mark.browser


@pytest.fixture
def served_entry(tmp_path) -> Iterator[tuple[str, str, int, object]]:
    """The app in entry mode on a free loopback port, one invited participant and their code."""
    app = build_app("sqlite", tmp_path, SMS_LINK_MODE="entry")
    with app.app_context():
        save_metadata(load_metadata("trial_project"), TRIAL, utcnow())
        inv = invite()
        code = issue_code(inv.visit, utcnow())
        db.session.commit()
        participant_id = inv.participant.id
    handle = serve_in_thread(app)
    try:
        yield handle.url, code, participant_id, app
    finally:
        handle.stop()
        with app.app_context():
            db.session.remove()
            db.engine.dispose()


def _via(app, participant_id: int) -> str | None:
    with app.app_context():
        participant = db.session.get(Participant, participant_id)
        return participant.opted_out_via if participant.opted_out else None


def test_phone_types_a_code_and_stops_then_restarts_reminders(browser, served_entry):
    origin, code, participant_id, app = served_entry
    context = browser.new_context(
        viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True, device_scale_factor=3
    )
    page = context.new_page()
    try:
        page.goto(f"{origin}/c")
        assert page.locator("h1").inner_text() == "Enter your follow-up code"
        assert serious(page) == []
        page.locator("#code").fill("wrong-code")
        page.locator("button[type=submit]").click()
        page.wait_for_load_state()
        assert "This code cannot be used" in page.locator("#errors").inner_text()
        assert serious(page) == []

        page.locator("#code").fill(f"{code[:4].lower()} {code[4:]}")  # as people type it
        page.locator("button[type=submit]").click()
        page.wait_for_load_state()
        assert "/s/" in page.url and code not in page.url
        assert page.locator("#qform").is_visible()
        assert page.evaluate("document.documentElement.scrollWidth") <= 390
        assert serious(page) == []

        page.locator("#stop-texts").click()
        page.wait_for_load_state()
        assert page.locator("h1").inner_text() == "Stop text reminders?"
        assert _via(app, participant_id) is None  # the confirmation alone changes nothing
        assert serious(page) == []
        page.locator("#confirm-stop").click()
        page.wait_for_load_state()
        assert page.locator("#texts-stopped").is_visible()
        assert _via(app, participant_id) == "web"
        assert serious(page) == []
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "texts-stopped-phone.png"), full_page=True)

        page.locator("#back-to-questionnaire").click()
        page.wait_for_load_state()
        assert page.locator("#start-texts").is_visible()
        page.locator("#start-texts").click()
        page.wait_for_load_state()
        assert page.locator("#texts-started").is_visible()
        assert _via(app, participant_id) is None
        assert serious(page) == []
    finally:
        context.close()
