"""A real Chromium signs in through the form, works one red flag off the list, and saves screenshots."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from app.extensions import db
from app.models import Submission, User
from app.questionnaire.store import save_metadata
from devservers.runner import serve_in_thread
from tests.browser_support import ARTIFACTS
from tests.conftest import build_app
from tests.console.conftest import NOW, PASSWORD, seed_study
from tests.factories import make_user
from tests.questionnaire.helpers import trial_rows

pytestmark = pytest.mark.browser


@pytest.fixture
def served(tmp_path) -> Iterator[tuple[str, object, object]]:
    """The app on a free loopback port with a coordinator and the seeded study."""
    app = build_app("sqlite", tmp_path)
    with app.app_context():
        save_metadata(trial_rows(), "followup_questionnaire", NOW)
        user = make_user("coordinator@example.org", role="coordinator")
        study = seed_study()
        user_email = user.email
    handle = serve_in_thread(app)
    try:
        yield handle.url, app, (user_email, study)
    finally:
        handle.stop()
        with app.app_context():
            db.session.remove()
            db.engine.dispose()


def serious(page) -> list[str]:
    """axe-core's serious and critical accessibility violations on the current page."""
    from axe_playwright_python.sync_playwright import Axe

    results = Axe().run(page)
    return [
        f"{v['id']}: {v['help']} ({len(v['nodes'])} nodes)"
        for v in results.response["violations"]
        if v.get("impact") in ("serious", "critical")
    ]


@pytest.mark.parametrize("viewport", [{"width": 390, "height": 844}, {"width": 1280, "height": 900}])
def test_sign_in_and_acknowledge_a_red_flag(browser, served, viewport):
    base, app, (email, study) = served
    ARTIFACTS.mkdir(exist_ok=True)
    tag = "phone" if viewport["width"] < 600 else "desk"
    context = browser.new_context(viewport=viewport)
    page = context.new_page()
    problems: list[str] = []
    # Content-Security-Policy violations and failed requests show up here (the favicon is not ours).
    page.on(
        "console", lambda m: problems.append(m.text) if m.type == "error" and "404" not in m.text else None
    )
    page.on("requestfailed", lambda r: problems.append(f"failed {r.url}"))
    page.on(
        "response",
        lambda r: (
            problems.append(f"{r.status} {r.url}")
            if r.status >= 400 and not r.url.endswith("/favicon.ico")
            else None
        ),
    )

    page.goto(f"{base}/console/")
    assert "/console/login" in page.url  # no page without an account
    assert serious(page) == []
    page.fill("input[name=email]", email)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit].primary")
    page.wait_for_url(f"{base}/console/")
    items = page.locator("li.work-item")
    assert items.first.get_attribute("data-kind") == "red_flag"
    assert "RF-001" in items.first.inner_text()
    page.screenshot(path=str(ARTIFACTS / f"console-worklist-{tag}.png"), full_page=True)
    assert serious(page) == []

    first = items.first
    first.locator("textarea[name=note]").fill("Phoned the participant; advised to go to the emergency room.")
    first.locator("button", has_text="Acknowledge red flag").click()
    page.wait_for_load_state()
    assert "Red flag acknowledged." in page.locator(".flashes").inner_text()
    assert page.locator("li.work-red_flag").count() == 0
    with app.app_context():
        submission = db.session.get(Submission, study.red_flag_submission)
        assert submission.red_flag_acknowledged_at is not None
        user = db.session.query(User).filter_by(email=email).one()
        assert submission.red_flag_acknowledged_by == f"user:{user.id}"

    page.goto(f"{base}/console/participants/{study.red_flag_participant}")
    assert "Oxygen saturation (SpO2)" in page.content()
    assert page.locator(".redflag.acknowledged").count() == 1
    page.screenshot(path=str(ARTIFACTS / f"console-participant-{tag}.png"), full_page=True)
    assert serious(page) == []

    # phone layout: one column, large targets
    if tag == "phone":
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= viewport["width"] + 1, "the page scrolls sideways on a phone"
        for selector in ("nav.console-nav a", "details > summary", "button"):
            for element in page.locator(selector).all():
                box = element.bounding_box() if element.is_visible() else None
                if box:  # controls inside closed <details> are not shown
                    assert box["height"] >= 43, (selector, box)
    assert not problems, problems
    context.close()
