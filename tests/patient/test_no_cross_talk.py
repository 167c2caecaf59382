"""The page caches never carry one participant's state to another: token, language, CSRF, answers, errors."""

from __future__ import annotations

import re

import pytest

from app.extensions import db
from app.models import utcnow
from app.questionnaire.store import save_metadata
from tests.patient.conftest import TRIAL, invite, load_metadata

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
DRAFT = {"fu_fever": "1", "fu_comments": "only-in-b-s-draft"}  # incomplete: comes back with errors


@pytest.fixture
def csrf_app(app_factory):
    """The trial questionnaire on an app with CSRF on, as in production. No app context stays pushed:
    each request gets its own, as under gunicorn (a shared one would share `g` and its CSRF token)."""
    app = app_factory(WTF_CSRF_ENABLED="true", SESSION_COOKIE_SECURE="false")  # plain-http test client
    with app.app_context():
        save_metadata(load_metadata("trial_project"), TRIAL, utcnow())
    return app


def page(client, url: str) -> str:
    response = client.get(url)
    assert response.status_code == 200
    return response.get_data(as_text=True)


def test_two_participants_never_see_each_others_state(csrf_app):
    with csrf_app.app_context():
        a = invite("en")
        b = invite("zh")
        b.participant.opted_out = True  # b's page offers to restart texts, behind a CSRF-protected form
        db.session.commit()
    browser_a, browser_b = csrf_app.test_client(), csrf_app.test_client()

    page(browser_a, a.url)  # warm every cache with a's page first
    draft = browser_b.post(b.url, data=dict(DRAFT, csrf_token=CSRF.findall(page(browser_b, b.url))[0]))
    assert draft.status_code == 200 and "only-in-b-s-draft" in draft.get_data(as_text=True)

    for _ in range(2):  # and again with every cache warm
        html_a, html_b = page(browser_a, a.url), page(browser_b, b.url)
        fresh_b = page(csrf_app.test_client(), b.url)
        assert '<html lang="en">' in html_a and '<html lang="zh-CN">' in html_b
        assert a.token in html_a and b.token not in html_a
        assert b.token in html_b and a.token not in html_b
        assert f"/s/{a.token}/stop" in html_a and f"/s/{b.token}/start" in html_b
        for html in (html_a, html_b, fresh_b):
            assert "only-in-b-s-draft" not in html  # a saved draft is never in a blank page
            assert "\x00" not in html and "tokenslot" not in html  # every stand-in was filled
        tokens_a, tokens_b = set(CSRF.findall(html_a)), set(CSRF.findall(html_b))
        assert len(tokens_a) == 1 and len(tokens_b) == 1  # b's restart form carries b's own token
        assert tokens_a != tokens_b and tokens_b != set(CSRF.findall(fresh_b))

    # Each browser's CSRF token works for its own session only.
    (token_a,) = CSRF.findall(page(browser_a, a.url))
    refused = browser_b.post(b.url, data=dict(DRAFT, csrf_token=token_a))
    assert refused.status_code == 400
    restart = browser_b.post(
        f"/s/{b.token}/start", data={"csrf_token": CSRF.findall(page(browser_b, b.url))[-1]}
    )
    assert restart.status_code in (200, 302, 303)
