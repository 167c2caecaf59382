"""A real Chromium on a 390 px phone screen: the call list, one outcome, the phone questionnaire; axe clean."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from app.extensions import db
from app.models import CallAttempt, Submission, utcnow
from app.questionnaire.store import save_metadata
from devservers.runner import serve_in_thread
from tests.browser_support import ARTIFACTS
from tests.conftest import build_app
from tests.console.conftest import PASSWORD, add_visit
from tests.console.test_browser import serious
from tests.factories import make_participant, make_user
from tests.questionnaire.helpers import trial_rows

pytestmark = pytest.mark.browser
DOCS_IMG = Path(__file__).resolve().parents[2] / "docs" / "img"
PHONE = {"width": 390, "height": 844}


@pytest.fixture
def served(tmp_path) -> Iterator[tuple[str, object, dict]]:
    """The app on a loopback port: a coordinator and four participants to call, relative to now."""
    app = build_app("sqlite", tmp_path)
    now = utcnow()
    ids = {}
    with app.app_context():
        save_metadata(trial_rows(), "followup_questionnaire", now)
        make_user("coordinator@example.org", role="coordinator")
        for record, closes, consent, lang in (
            ("GZ-1042", timedelta(days=6), False, "zh"),
            ("GZ-1007", timedelta(hours=20), True, "zh"),
            ("GZ-1019", timedelta(days=2), False, "en"),
            ("GZ-1023", timedelta(days=4), True, "zh"),
        ):
            p = make_participant(record, consent=consent, language=lang, commit=False)
            if record == "GZ-1023":
                p.opted_out, p.opted_out_at, p.opted_out_via = True, now - timedelta(days=1), "reply"
            ids[record] = add_visit(p, opens=now - timedelta(days=3), closes=now + closes).id
        db.session.commit()
    handle = serve_in_thread(app)
    try:
        yield handle.url, app, ids
    finally:
        handle.stop()
        with app.app_context():
            db.session.remove()
            db.engine.dispose()


def test_call_list_and_phone_questionnaire_on_a_phone(browser, served):
    base, app, ids = served
    ARTIFACTS.mkdir(exist_ok=True)
    context = browser.new_context(viewport=PHONE)
    page = context.new_page()
    page.goto(f"{base}/console/login")
    page.fill("input[name=email]", "coordinator@example.org")
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit].primary")
    page.wait_for_url(f"{base}/console/")

    page.goto(f"{base}/console/calls")
    rows = page.locator("li.call")
    assert rows.first.get_attribute("data-record") == "GZ-1007"  # closes within a day
    assert [r.get_attribute("data-record") for r in rows.all()][-1] == "GZ-1042"
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"] + 1
    for element in page.locator("li.call button, li.call a.button, .call-filter a").all():
        box = element.bounding_box() if element.is_visible() else None
        if box:
            assert box["height"] >= 43, box
    assert serious(page) == []
    page.screenshot(path=str(ARTIFACTS / "console-calls-phone.png"), full_page=True)
    if os.environ.get("UPDATE_DOCS_SCREENSHOTS"):  # the suite never writes into the work tree otherwise
        DOCS_IMG.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(ARTIFACTS / "console-calls-phone.png", DOCS_IMG / "calls.png")

    # One tap: no answer.
    page.locator(f"#call-{ids['GZ-1019']} button[value=no_answer]").click()
    page.wait_for_load_state()
    assert "Call recorded" in page.locator(".flashes").inner_text()
    assert "1 attempt" in page.locator(f"#call-{ids['GZ-1019']}").inner_text()

    # Reached: the questionnaire by phone, in the participant's language (Chinese), switched to English.
    page.locator(f"#call-{ids['GZ-1007']} a", has_text="Reached").click()
    page.wait_for_url(f"**/calls/{ids['GZ-1007']}/questionnaire")
    assert page.locator("#qform").get_attribute("lang") == "zh-CN"
    page.goto(f"{base}/console/calls/{ids['GZ-1007']}/questionnaire?lang=en")
    assert serious(page) == []
    page.locator("label[for=fu_fever-1], #q-fu_fever label").first.click()
    page.locator("#q-fu_fever_days input").fill("2")
    for name, value in (
        ("fu_mmrc", "1"),
        ("fu_cough", "0"),
        ("fu_sneezing", "0"),
        ("fu_diarrhea", "0"),
        ("fu_readmitted", "0"),
    ):
        page.locator(f"#q-{name} input[value='{value}']").check()
    page.locator("#q-fu_health_today input[type=range], #q-fu_health_today input").first.fill("80")
    page.screenshot(path=str(ARTIFACTS / "console-phone-form.png"), full_page=True)
    page.click("#qform button[type=submit]")
    page.wait_for_url(f"{base}/console/calls")
    assert "taken by phone" in page.locator(".flashes").inner_text()
    assert serious(page) == []
    context.close()
    with app.app_context():
        submission = db.session.scalar(select(Submission).where(Submission.visit_id == ids["GZ-1007"]))
        assert submission.source == "interviewer" and submission.answers["fu_fever_days"] == "2"
        outcomes = db.session.scalars(select(CallAttempt.outcome).order_by(CallAttempt.id)).all()
        assert outcomes == ["no_answer", "reached_done"]
