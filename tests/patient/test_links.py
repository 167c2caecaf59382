"""Personal links from outside: unusable tokens all look alike, guessing is limited, headers, body size."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest

from app.extensions import db
from app.models import utcnow
from tests.factories import GOOD_ANSWERS as GOOD
from tests.patient.conftest import invite


def _normalized(html: str) -> str:
    """The page without its per-session CSRF token (there is none on these pages anyway)."""
    return re.sub(r'value="[^"]{20,}"', 'value=""', html)


def _unusable_tokens(client) -> dict[str, str]:
    expired = invite()
    expired.visit.opens_at = utcnow() - timedelta(days=20)
    expired.visit.closes_at = utcnow() - timedelta(days=5)
    from app.models import SurveyLink

    for link in db.session.query(SurveyLink).filter_by(visit_id=expired.visit.id):
        link.valid_from, link.valid_until = expired.visit.opens_at, expired.visit.closes_at
    revoked = invite()
    from app.participants.links import revoke_links

    revoke_links(revoked.visit, utcnow())
    not_yet = invite(opened_days_ago=-3, closes_in_days=10)
    from app.models import SurveyLink as SL

    for link in db.session.query(SL).filter_by(visit_id=not_yet.visit.id):
        link.valid_from = utcnow() + timedelta(days=3)
    cancelled = invite()
    cancelled.visit.status = "cancelled"
    db.session.commit()
    used = invite()
    assert "Thank you" in client.post(used.url, data=GOOD).get_data(as_text=True)
    return {
        "unknown": "A" * 22,
        "malformed": "not-a-token!",
        "too long": "x" * 300,
        "expired": expired.token,
        "revoked": revoked.token,
        "not yet open": not_yet.token,
        "visit cancelled": cancelled.token,
        "used": used.token,
    }


def test_unusable_tokens_are_indistinguishable(trial, client):
    tokens = _unusable_tokens(client)
    pages = {}
    for reason, token in tokens.items():
        response = client.get(f"/s/{token}", headers={"Accept-Language": "en"})
        assert response.status_code == 404, reason
        pages[reason] = (_normalized(response.get_data(as_text=True)), sorted(response.headers.keys()))
    first = pages["unknown"]
    for reason, page in pages.items():
        assert page == first, f"{reason} differs from an unknown token"
    html = first[0]
    assert "This link cannot be used" in html and "+86 20 8306 2000" in html


def test_unusable_tokens_cost_the_same_work(trial, client):
    """Same timing by construction: every unusable token costs the same single query and the same page
    (counted, not timed: timed assertions flake on busy machines)."""
    from sqlalchemy import event

    tokens = _unusable_tokens(client)
    engine = db.engine
    counts: dict[str, list[str]] = {}
    current: list[str] = []

    def count(conn, cursor, statement, *args):
        current.append(statement.split()[0])

    event.listen(engine, "before_cursor_execute", count)
    try:
        for reason, token in tokens.items():
            current.clear()
            client.get(f"/s/{token}")
            counts[reason] = list(current)
    finally:
        event.remove(engine, "before_cursor_execute", count)
    assert counts["unknown"] == ["SELECT"]
    assert all(c == counts["unknown"] for c in counts.values()), counts


def test_unknown_token_page_follows_the_browser_language(trial, client):
    html = client.get("/s/" + "B" * 22, headers={"Accept-Language": "zh-CN,zh;q=0.9"}).get_data(as_text=True)
    assert "此链接无法使用" in html and "+86 20 8306 2000" in html
    html = client.get("/s/" + "B" * 22 + "?lang=en").get_data(as_text=True)
    assert "This link cannot be used" in html


def test_wrong_methods_are_refused(trial, client):
    inv = invite()
    for method in ("put", "delete", "patch"):
        assert getattr(client, method)(inv.url).status_code == 405


def test_guessing_is_rate_limited_per_client(app_factory):
    from app.questionnaire.store import save_metadata
    from tests.patient.conftest import TRIAL, load_metadata

    app = app_factory(RATELIMIT_ENABLED="true", TOKEN_GUESS_LIMIT="5 per minute")
    with app.app_context():
        save_metadata(load_metadata("trial_project"), TRIAL, utcnow())
        inv = invite()
        client = app.test_client()
        # a participant's own link does not use up the allowance
        for _ in range(8):
            assert client.get(inv.url).status_code == 200
        codes = [client.get(f"/s/guess{i:017d}").status_code for i in range(5)]
        assert codes == [404] * 5
        blocked = client.get("/s/guess-six-000000000000")
        assert blocked.status_code == 429
        assert 1 <= int(blocked.headers["Retry-After"]) <= 60
        assert "Too many attempts" in blocked.get_data(as_text=True)
        # A real link still opens from a blocked address (one carrier address, many phones).
        assert client.get(inv.url).status_code == 200
        assert client.get("/s/guess-seven-00000000000").status_code == 429
        other = app.test_client()
        other_response = other.get("/s/another-guess-00000000", environ_base={"REMOTE_ADDR": "127.0.0.9"})
        assert other_response.status_code == 404  # another client is not


def test_oversized_body_is_refused_with_413(trial, client):
    inv = invite()
    response = client.post(inv.url, data={"fu_comments": "x" * (70 * 1024)})
    assert response.status_code == 413
    from sqlalchemy import func, select

    from app.models import Submission

    assert db.session.scalar(select(func.count()).select_from(Submission)) == 0


@pytest.mark.parametrize(
    "path", ["/s/{token}", "/s/unknown-token-000000000", "/healthz", "/console/", "/nowhere"]
)
def test_security_headers_on_every_page(trial, client, path):
    inv = invite()
    response = client.get(path.format(token=inv.token))
    csp = response.headers["Content-Security-Policy"]
    assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp and "unsafe-inline" not in csp
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["Referrer-Policy"] == "same-origin"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert "camera=()" in response.headers["Permissions-Policy"]
    assert response.headers["Cache-Control"] == "no-store"


def test_security_headers_on_posts_and_static_files(trial, client):
    inv = invite()
    for response in (client.post(inv.url, data=GOOD), client.get("/static/questionnaire.js")):
        assert response.headers["Referrer-Policy"] == "same-origin"
        assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]
        response.close()


def test_production_cookies_are_secure_and_httponly(tmp_path):
    from app import create_app
    from config import ProductionConfig

    config = ProductionConfig(
        {
            "SECRET_KEY": "x" * 40,
            "REDCAP_API_TOKEN": "0" * 32,
            "PUBLIC_BASE_URL": "https://followup.example.org",
            "DATABASE_URL": f"sqlite:///{tmp_path / 'p.db'}",
            "SMS_BACKEND": "console",
        },
        instance_path=tmp_path / "instance",
    )
    app = create_app(config)
    assert app.config["SESSION_COOKIE_SECURE"] and app.config["SESSION_COOKIE_HTTPONLY"]
    with app.test_request_context("/s/x?lang=zh"):
        from flask import session

        session["lang"] = "zh"
        response = app.make_response("ok")
        app.session_interface.save_session(app, session, response)
        cookie = response.headers["Set-Cookie"]
    assert "Secure" in cookie and "HttpOnly" in cookie
