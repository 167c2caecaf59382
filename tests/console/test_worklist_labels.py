"""What the console says to people: visits as "Week 4" (not the plan key week_4), in English and
Chinese, and a no-consent row that offers what can help with consent."""

from __future__ import annotations

import re

import pytest

from app.console.labels import visit_label
from app.extensions import db
from tests.console.conftest import NOW, add_submission, add_visit
from tests.factories import make_participant

RAW_KEY = re.compile(r"\b(week_4|month_6)\b")  # a plan key on its own; REDCap's week_4_arm_1 may show


@pytest.fixture(autouse=True)
def _frozen(time_machine):
    time_machine.move_to(NOW, tick=False)


def text(html: bytes) -> str:
    """The page's words as a reader sees them (attribute values such as URLs left out)."""
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html.decode()))


def work_row(html: bytes, record_id: str) -> str:
    rows = re.findall(r'<li class="work-item.*?</li>', html.decode(), re.S)
    (row,) = [r for r in rows if f">{record_id}</a>" in r]
    return row


def test_visit_labels_in_both_languages(app):
    with app.test_request_context(headers={"Accept-Language": "en"}):
        assert [visit_label(k) for k in ("week_4", "month_6", "day_3")] == ["Week 4", "Month 6", "Day 3"]
        assert visit_label("baseline_call") == "Baseline call" and visit_label(None) == "—"
    from flask_babel import force_locale

    with app.test_request_context(), force_locale("zh"):
        assert [visit_label(k) for k in ("week_4", "month_6", "day_3")] == ["第4周", "第6个月", "第3天"]


def test_console_pages_show_week_4_not_the_plan_key(as_role, study):
    conflict_participant = make_participant("CF-020", commit=False)
    visit = add_visit(
        conflict_participant, status="completed", completed_at=NOW, completed_via="questionnaire"
    )
    conflict = add_submission(visit, sync_status="conflict", redcap_snapshot={"fu_spo2": "97"})
    db.session.commit()
    client = as_role("coordinator")
    pages = {
        "work list": client.get("/console/").data,
        "participant": client.get(f"/console/participants/{study.closing_participant}").data,
        "visits": client.get("/console/visits").data,
        "overview": client.get("/console/overview").data,
        "conflicts": client.get("/console/conflicts").data,
        "conflict": client.get(f"/console/conflicts/{conflict.id}").data,
    }
    for name, html in pages.items():
        words = text(html)
        assert "Week 4" in words, name
        assert not RAW_KEY.search(words), (name, RAW_KEY.findall(words))
    assert "Month 6" in text(pages["participant"]) and "Month 6" in text(pages["overview"])
    assert '<option value="week_4">Week 4</option>' in pages["visits"].decode()  # the filter keeps the key

    client.post("/console/language", data={"lang": "zh", "next": "/console/"})
    for url in ("/console/", f"/console/participants/{study.closing_participant}", "/console/overview"):
        words = text(client.get(url).data)
        assert "第4周" in words and not RAW_KEY.search(words), url


def test_no_consent_row_offers_consent_not_a_new_number(as_role, study):
    participant = make_participant("NC-030", consent=False, commit=False)
    add_visit(participant, status="scheduled")
    db.session.commit()
    html = as_role("coordinator").get("/console/").data
    row = work_row(html, "NC-030")
    assert "No SMS consent" in row
    assert "Record SMS consent in REDCap, or contact by phone" in row
    assert "Fix the number" not in row
    # a missing number still asks for the number
    assert "Fix the number in REDCap, then resend the link" in work_row(html, "NP-006")

    client = as_role("coordinator")
    client.post("/console/language", data={"lang": "zh", "next": "/console/"})
    assert "在 REDCap 中登记短信同意，或电话联系" in work_row(client.get("/console/").data, "NC-030")
