"""A real phone-sized Chromium answers the questionnaire: live branching, one failed validation, the
thank-you page, an axe-core scan with no serious or critical violation, and a screenshot artifact; and
with JavaScript off, every field type the form builder supports, a required slider among them."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from app.extensions import db
from app.models import Submission, utcnow
from app.questionnaire.store import save_metadata
from devservers.runner import serve_in_thread
from tests.browser_support import ARTIFACTS
from tests.conftest import build_app
from tests.patient.conftest import TRIAL, WELLBEING, invite, load_metadata

pytestmark = pytest.mark.browser

TAP_TARGETS = (
    "() => Array.from(document.querySelectorAll("
    "'label.opt, input[type=number], input[type=text], textarea, select, button, .lang a'))"
    ".filter(el => el.offsetParent !== null)"
    ".map(el => [el.id || el.className || el.tagName, el.getBoundingClientRect().height])"
    ".filter(([, h]) => h < 44)"
)


def _serve(tmp_path, project: str, instrument: str) -> Iterator[tuple[str, object]]:
    app = build_app("sqlite", tmp_path, REDCAP_QUESTIONNAIRE_INSTRUMENT=instrument)
    with app.app_context():
        save_metadata(load_metadata(project), instrument, utcnow())
        inv = invite()
    handle = serve_in_thread(app)
    try:
        yield f"{handle.url}/s/{inv.token}", app
    finally:
        handle.stop()
        with app.app_context():
            db.session.remove()
            db.engine.dispose()


@pytest.fixture
def served(tmp_path) -> Iterator[tuple[str, object]]:
    """The app on a free loopback port, with the trial's questionnaire and one invited participant."""
    yield from _serve(tmp_path, "trial_project", TRIAL)


@pytest.fixture
def served_wellbeing(tmp_path) -> Iterator[tuple[str, object]]:
    """The same with the other project's wellbeing_check, which has every field type."""
    yield from _serve(tmp_path, "wellbeing_project", WELLBEING)


def serious(page) -> list[str]:
    from axe_playwright_python.sync_playwright import Axe

    results = Axe().run(page)
    return [
        f"{v['id']}: {v['help']} ({len(v['nodes'])} nodes)"
        for v in results.response["violations"]
        if v.get("impact") in ("serious", "critical")
    ]


def test_phone_answers_with_branching_fails_once_then_submits(browser, served):
    url, app = served
    origin = url.split("/s/")[0]
    context = browser.new_context(
        viewport={"width": 360, "height": 740},
        is_mobile=True,
        has_touch=True,
        device_scale_factor=2,
        locale="en-US",
    )
    page = context.new_page()
    requests: list[str] = []
    csp_problems: list[str] = []
    page.on("request", lambda r: requests.append(r.url))
    page.on("console", lambda m: csp_problems.append(m.text) if "Content Security Policy" in m.text else None)
    try:
        page.goto(url)
        assert page.locator("h1").inner_text() == "Follow-up questionnaire"
        days = page.locator("#q-fu_fever_days")
        other = page.locator("#q-fu_ae_other")
        assert days.is_hidden() and other.is_hidden()
        assert page.locator("#if-fu_fever_days").is_hidden()  # the no-JS hint is not needed
        assert page.locator("#fu_fever_days").is_disabled()

        # the follow-up appears when its trigger is answered, and goes again when it is not
        page.locator("#fu_fever-0").check()  # Yes
        assert days.is_visible() and page.locator("#fu_fever_days").is_enabled()
        page.locator("#fu_fever-1").check()  # No
        assert days.is_hidden()
        page.locator("#fu_fever-0").check()
        page.locator("#fu_ae___5").check()  # "Other" shows its description field
        assert other.is_visible()
        page.locator("#fu_ae_other").fill("Headache")

        violations = serious(page)
        assert violations == [], violations

        # answer the rest except the fever days, then send: one validation failure
        for radio in ("#fu_mmrc-1", "#fu_cough-1", "#fu_sneezing-1", "#fu_diarrhea-1", "#fu_readmitted-1"):
            page.locator(radio).check()
        page.locator("#fu_spo2").fill("97")
        slider = page.locator("#fu_health_today")
        assert slider.get_attribute("type") == "range"  # the script made the number box a slider
        assert page.locator("#range-fu_health_today").count() == 0  # and dropped its no-JS hint
        assert page.locator("#na-fu_health_today").is_checked()  # untouched: no answer yet
        slider.focus()
        for _ in range(20):
            page.keyboard.press("ArrowRight")
        assert page.locator("#out-fu_health_today").inner_text() == "70"
        assert not page.locator("#na-fu_health_today").is_checked()
        page.locator("#fu_comments").fill("Feeling <b>better</b>")
        page.locator("button[type=submit]").click()
        page.wait_for_load_state()

        summary = page.locator("#errors")
        assert summary.is_visible() and "Please check 1 answer" in summary.inner_text()
        assert page.locator("#err-fu_fever_days").is_visible()
        assert (
            page.locator("#fu_fever-0").is_checked() and days.is_visible()
        )  # answers kept, logic re-applied
        assert page.locator("#fu_comments").input_value() == "Feeling <b>better</b>"
        assert page.locator("#fu_ae_other").input_value() == "Headache"
        assert page.locator("#fu_health_today").input_value() == "70"
        violations = serious(page)
        assert violations == [], violations
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "questionnaire-phone-errors.png"), full_page=True)

        # fix it and send again
        page.locator("#fu_fever_days").fill("3")
        page.locator("button[type=submit]").click()
        page.wait_for_load_state()
        assert "Thank you" in page.locator("h1").inner_text()
        violations = serious(page)
        assert violations == [], violations
        page.screenshot(path=str(ARTIFACTS / "questionnaire-phone-thanks.png"), full_page=True)

        # the page is usable at 320 px: nothing wider than the screen
        page.set_viewport_size({"width": 320, "height": 640})
        page.goto(url + "?lang=zh")
        assert page.evaluate("document.documentElement.scrollWidth") <= 320
    finally:
        context.close()

    assert all(r.startswith(origin) for r in requests), [r for r in requests if not r.startswith(origin)]
    assert csp_problems == []
    with app.app_context():
        answers = db.session.scalar(select(Submission.answers))
    assert answers["fu_fever"] == "1" and answers["fu_fever_days"] == "3" and answers["fu_ae___5"] == "1"
    assert answers["fu_ae_other"] == "Headache" and answers["fu_health_today"] == "70"
    assert answers["fu_comments"] == "Feeling <b>better</b>"


def test_controls_are_large_enough_to_tap(browser, served):
    url, _app = served
    context = browser.new_context(viewport={"width": 320, "height": 640}, is_mobile=True, has_touch=True)
    page = context.new_page()
    try:
        page.goto(url)
        small = page.evaluate(TAP_TARGETS)
        assert small == []
        assert page.evaluate("parseFloat(getComputedStyle(document.body).fontSize)") >= 18
        assert page.evaluate("document.documentElement.scrollWidth") <= 320
    finally:
        context.close()


def test_browser_script_replays_the_shared_branching_cases(browser, served):
    """The page's script and the server's evaluator agree on every case in branching_cases.json."""
    import json

    url, _app = served
    cases = json.loads(
        (Path(__file__).resolve().parents[1] / "questionnaire" / "branching_cases.json").read_text()
    )
    context = browser.new_context()
    page = context.new_page()
    try:
        page.goto(url)
        got = page.evaluate(
            "cases => cases.map(c => window.followupBranching.evaluate(c.ast, c.answers))", cases
        )
    finally:
        context.close()
    wrong = [
        (c["logic"], c["answers"], c["expected"])
        for c, g in zip(cases, got, strict=True)
        if g != c["expected"]
    ]
    assert wrong == []


def test_without_javascript_every_question_shows_and_the_form_still_works(browser, served):
    url, app = served
    context = browser.new_context(
        viewport={"width": 360, "height": 740}, is_mobile=True, has_touch=True, java_script_enabled=False
    )
    page = context.new_page()
    try:
        page.goto(url)
        assert page.locator("#q-fu_fever_days").is_visible() and page.locator("#q-fu_ae_other").is_visible()
        assert "Answer only if" in page.locator("#if-fu_fever_days").inner_text()
        for radio in (
            "#fu_fever-1",
            "#fu_mmrc-0",
            "#fu_cough-0",
            "#fu_sneezing-1",
            "#fu_diarrhea-1",
            "#fu_readmitted-1",
        ):
            page.locator(radio).check()
        page.locator("#fu_fever_days").fill("9")  # answered although "no fever": the server drops it
        slider = page.locator("#fu_health_today")  # a required slider: a number box without JS
        assert slider.get_attribute("type") == "number" and page.locator("#na-fu_health_today").count() == 0
        assert "from 0 (Worst) to 100 (Best)" in page.locator("#range-fu_health_today").inner_text()
        page.locator("button[type=submit]").click()
        page.wait_for_load_state()
        assert "Please check 1 answer" in page.locator("#errors").inner_text()  # the blank slider
        assert "Please answer this question" in page.locator("#err-fu_health_today").inner_text()
        page.locator("#fu_health_today").fill("64")
        page.locator("button[type=submit]").click()
        page.wait_for_load_state()
        assert "Thank you" in page.locator("h1").inner_text()
    finally:
        context.close()
    with app.app_context():
        answers = db.session.scalar(select(Submission.answers))
    assert "fu_fever_days" not in answers and answers["fu_health_today"] == "64"


def test_without_javascript_every_field_type_is_answered_and_stored(browser, served_wellbeing):
    """Date, dropdown, radio, true/false, yes/no, a required slider, checkboxes, text, notes, decimal and
    whole numbers, e-mail and phone: all answered with JavaScript off, one submission, all stored."""
    url, app = served_wellbeing
    context = browser.new_context(
        viewport={"width": 360, "height": 740}, is_mobile=True, has_touch=True, java_script_enabled=False
    )
    page = context.new_page()
    try:
        page.goto(url)
        assert page.locator("#q-wb_pain_score").is_visible()  # branching questions all show
        assert page.locator("#wb_pain_score").get_attribute("type") == "number"
        assert page.locator("#na-wb_pain_score").count() == 0
        page.locator("#wb_visit_date").fill("2024-05-01")
        page.locator("#wb_mobility").select_option("3")
        for name, value in (
            ("wb_mobility_aid", "cane"),
            ("wb_pain", "1"),
            ("wb_phq1", "1"),
            ("wb_phq2", "0"),
            ("wb_contact_ok", "1"),
        ):
            page.locator(f"input[name={name}][value='{value}']").check()
        page.locator("#wb_pain_score").fill("8")  # required once in pain
        page.locator("#wb_support___1").check()
        page.locator("#wb_support___other_x").check()
        page.locator("#wb_support_other").fill("Neighbour")
        page.locator("#wb_weight").fill("72.5")
        page.locator("#wb_temp").fill("36.8")
        page.locator("#wb_steps").fill("4000")
        page.locator("#wb_email").fill("participant@example.org")
        page.locator("#wb_phone").fill("(212) 555-0100")  # the form's own example, a fictitious 555-01xx
        page.locator("#wb_complex").fill("Stairs are hard")
        page.locator("button[type=submit]").click()
        page.wait_for_load_state()
        assert "Thank you" in page.locator("h1").inner_text(), page.locator("#errors").all_inner_texts()
    finally:
        context.close()
    with app.app_context():
        answers = db.session.scalar(select(Submission.answers))
    assert answers == {
        "wb_visit_date": "2024-05-01",
        "wb_mobility": "3",
        "wb_mobility_aid": "cane",
        "wb_pain": "1",
        "wb_pain_score": "8",
        "wb_phq1": "1",
        "wb_phq2": "0",
        "wb_support___1": "1",
        "wb_support___2": "0",
        "wb_support___3": "0",
        "wb_support___other_x": "1",
        "wb_support____99": "0",
        "wb_support_other": "Neighbour",
        "wb_weight": "72.5",
        "wb_temp": "36.8",
        "wb_steps": "4000",
        "wb_contact_ok": "1",
        "wb_email": "participant@example.org",
        "wb_phone": "(212) 555-0100",
        "wb_complex": "Stairs are hard",
    }
