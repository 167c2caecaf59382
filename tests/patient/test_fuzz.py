"""Fuzz the submit endpoint: never a 500, never a stored value outside the metadata, free text escaped."""

from __future__ import annotations

import re

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select
from werkzeug.datastructures import MultiDict

from app.extensions import db
from app.models import Submission, utcnow
from app.questionnaire.answers import validate_stored
from app.questionnaire.store import current_definition, save_metadata
from tests.factories import GOOD_ANSWERS as GOOD
from tests.patient.conftest import TRIAL, invite, load_metadata

COLUMNS = [
    "fu_fever",
    "fu_fever_days",
    "fu_mmrc",
    "fu_cough",
    "fu_sneezing",
    "fu_diarrhea",
    "fu_spo2",
    "fu_readmitted",
    "fu_hosp_days",
    "fu_ae___1",
    "fu_ae___3",
    "fu_ae___5",
    "fu_ae",
    "fu_ae_other",
    "fu_health_today",
    "fu_comments",
    "_unanswered",
    "csrf_token",
    "record_id",
    "randomization_group",
    "followup_questionnaire_complete",
    "fu_red_flag",
]
NASTY = [
    "<script>alert(1)</script>",
    '"><img src=x onerror=alert(1)>',
    "</textarea><b>x</b>",
    "1; DROP TABLE x",
    "0",
    "1",
    "4",
    "-1",
    "1e3",
    "93.5",
    "NaN",
    "９３",
    "2024-02-30",
    "\x00",
    "\u202e",
    "'",
    "%s%s",
    "{{7*7}}",
]
values = st.one_of(
    st.sampled_from(NASTY),
    st.text(max_size=40),
    st.integers(-(10**12), 10**12).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(str),
    st.text(min_size=3000, max_size=6000, alphabet="ab<>&\"' \n"),
)
names = st.one_of(st.sampled_from(COLUMNS), st.text(min_size=1, max_size=30))
forms = st.lists(st.tuples(names, values), max_size=25)
FREE_TEXT = ("fu_comments", "fu_ae_other")


def _check_stored() -> None:
    definition = current_definition(TRIAL)
    allowed = set(definition.columns())
    for answers in db.session.scalars(select(Submission.answers)):
        assert set(answers) <= allowed, set(answers) - allowed
        assert validate_stored(definition, answers, today=utcnow().date()) == []


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    pairs=forms,
    from_good=st.booleans(),
    method=st.sampled_from(["POST", "POST", "POST", "POST", "GET", "PUT", "DELETE", "PATCH"]),
)
def test_submit_never_fails_and_stores_only_metadata_values(trial, pairs, from_good, method):
    """Random forms, and valid forms with random changes (so some are accepted and stored)."""
    client = trial.test_client()
    inv = invite()
    if from_good:
        overlay = dict(GOOD)
        overlay.update(dict(pairs))
        pairs = list(overlay.items())
    response = client.open(inv.url, method=method, data=MultiDict(pairs))
    assert response.status_code in (200, 400, 404, 405, 413), response.status_code
    html = response.get_data(as_text=True)
    for name, value in pairs:
        if name in FREE_TEXT and re.search(r"<[A-Za-z/!]", value):
            assert value.strip() not in html, "free text shown unescaped"
    assert "<script>alert" not in html and "<img src=x" not in html
    _check_stored()


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(pairs=forms, token=st.one_of(st.none(), st.text(max_size=80)))
def test_csrf_enabled_submit_without_a_valid_token_changes_nothing(app_factory_csrf, pairs, token):
    app = app_factory_csrf
    client = app.test_client()
    inv = invite()
    data = [(n, v) for n, v in pairs if n != "csrf_token"]
    if token is not None:
        data.append(("csrf_token", token))
    response = client.post(inv.url, data=MultiDict(data))
    assert response.status_code == 400
    assert "<script>alert" not in response.get_data(as_text=True)
    assert db.session.scalars(select(Submission)).all() == []


def test_free_text_is_escaped_when_shown_again(trial, client):
    inv = invite()
    payload = "</textarea><script>alert('x')</script>"
    html = client.post(inv.url, data={"fu_comments": payload}).get_data(as_text=True)
    assert payload not in html
    assert re.search(
        r"&lt;/textarea&gt;&lt;script&gt;alert\((&#39;|&#x27;)x(&#39;|&#x27;)\)&lt;/script&gt;", html
    )


import pytest  # noqa: E402


@pytest.fixture
def app_factory_csrf(app_factory):
    app = app_factory(WTF_CSRF_ENABLED="true")
    with app.app_context():
        save_metadata(load_metadata("trial_project"), TRIAL, utcnow())
        yield app
