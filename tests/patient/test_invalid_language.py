"""A bad link's page speaks the browser's language, never the language of the participant it once belonged to."""

from __future__ import annotations

from datetime import timedelta

import pytest
from flask import Flask

from app.extensions import db
from app.models import SurveyLink, utcnow
from tests.patient.conftest import invite

NEVER_ISSUED = "N" * 22


def expired_zh_token() -> str:
    """The token of a Chinese-speaking participant whose visit and link closed five days ago."""
    inv = invite(language="zh")
    inv.visit.opens_at = utcnow() - timedelta(days=20)
    inv.visit.closes_at = utcnow() - timedelta(days=5)
    for link in db.session.query(SurveyLink).filter_by(visit_id=inv.visit.id):
        link.valid_from, link.valid_until = inv.visit.opens_at, inv.visit.closes_at
    db.session.commit()
    return inv.token


def session_of(app: Flask, response) -> dict:
    """The session a response sets, decoded (Flask's cookie is signed, not encrypted: anyone can read it)."""
    cookies = [c for c in response.headers.getlist("Set-Cookie") if c.startswith("session=")]
    if not cookies:
        return {}
    value = cookies[0].split(";", 1)[0].removeprefix("session=")
    return dict(app.session_interface.get_signing_serializer(app).loads(value))


@pytest.mark.parametrize(
    ("accept", "heading"),
    [("en-US,en;q=0.9", "This link cannot be used"), ("zh-CN,zh;q=0.9", "此链接无法使用")],
)
def test_expired_link_and_never_issued_token_give_identical_pages(trial, accept, heading):
    expired = expired_zh_token()
    pages = {}
    for name, token in (("expired", expired), ("never issued", NEVER_ISSUED)):
        response = trial.test_client().get(f"/s/{token}", headers={"Accept-Language": accept})
        assert response.status_code == 404, name
        pages[name] = response.get_data()
    assert pages["expired"] == pages["never issued"]
    assert heading in pages["expired"].decode()


def test_choosing_a_language_on_a_bad_link_remembers_no_link(trial):
    expired = expired_zh_token()
    sessions = {}
    for name, token in (("expired", expired), ("never issued", NEVER_ISSUED)):
        response = trial.test_client().get(f"/s/{token}?lang=en", headers={"Accept-Language": "zh-CN"})
        assert response.status_code == 404 and "This link cannot be used" in response.get_data(as_text=True)
        sessions[name] = session_of(trial, response)
    assert sessions["expired"] == sessions["never issued"] == {"lang": "en", "lang_link": None}
