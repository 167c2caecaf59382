"""A slider without JavaScript: a plain whole-number box with the field's bounds, answerable and stored.

The browser's part (the script making it a slider, and a no-JS phone sending every field type) is in
test_browser.py; here the server's markup and what a posted number becomes.
"""

from __future__ import annotations

import re

from sqlalchemy import func, select

from app.extensions import db
from app.models import Submission
from tests.factories import GOOD_ANSWERS as GOOD
from tests.patient.conftest import invite


def slider_markup(html: str, name: str) -> str:
    (tag,) = re.findall(rf'<input[^>]*\bname="{name}"[^>]*>', html)
    return tag


def stored() -> int:
    return db.session.scalar(select(func.count()).select_from(Submission))


def test_a_slider_is_a_number_box_from_its_min_to_its_max(trial, client):
    html = client.get(invite().url).get_data(as_text=True)
    tag = slider_markup(html, "fu_health_today")  # REDCap's 0–100 when the field sets no bounds
    assert re.fullmatch(r'<input [^>]*type="number"[^>]*>', tag), tag
    assert 'min="0"' in tag and 'max="100"' in tag and 'step="1"' in tag and 'value=""' in tag
    assert 'type="range"' not in html
    assert "Enter a whole number from 0 (Worst) to 100 (Best)." in html
    # the script's "no answer" box is inert markup until the script adds it
    before, _, after = html.partition('name="_unanswered"')
    assert after and before.rfind("<template") > before.rfind("</template>")


def test_a_slider_with_its_own_bounds_keeps_them(wellbeing):
    html = wellbeing.test_client().get(invite().url).get_data(as_text=True)
    tag = slider_markup(html, "wb_pain_score")
    assert 'type="number"' in tag and 'min="0"' in tag and 'max="10"' in tag


def test_a_typed_number_is_stored_as_the_slider_answer(trial, client):
    inv = invite()
    response = client.post(inv.url, data={**GOOD, "fu_health_today": "35"})  # no "_unanswered" without JS
    assert response.status_code == 200 and "Thank you" in response.get_data(as_text=True)
    assert db.session.scalar(select(Submission.answers))["fu_health_today"] == "35"


def test_a_blank_or_out_of_range_box_is_asked_again_with_nothing_stored(trial, client):
    inv = invite()
    for value, message in (("", "Please answer this question"), ("101", "between 0 and 100")):
        response = client.post(inv.url, data={**GOOD, "fu_health_today": value})
        html = response.get_data(as_text=True)
        assert response.status_code == 200 and "Thank you" not in html
        assert message in html and 'id="err-fu_health_today"' in html
        assert 'type="number"' in slider_markup(html, "fu_health_today")
    assert stored() == 0


def test_the_scripts_no_answer_box_still_means_no_answer(trial, client):
    inv = invite()
    data = {**GOOD, "fu_health_today": "50", "_unanswered": "fu_health_today"}
    html = client.post(inv.url, data=data).get_data(as_text=True)
    assert "Please answer this question" in html and stored() == 0
    assert 'value=""' in slider_markup(html, "fu_health_today")  # shown blank: the script restarts it mid-way
