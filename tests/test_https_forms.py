"""Forms over HTTPS behind the proxy, CSRF on: the questionnaire and the console sign-in both go through.

Production terminates TLS at the reverse proxy, which talks plain HTTP to gunicorn with
`X-Forwarded-Proto: https`; ProxyFix makes the request secure, and Flask-WTF's strict HTTPS check then
wants a same-origin Referer on every POST. The tests send the Referer a browser would send under the
referrer policy the page itself declares, so a policy that makes browsers send none fails here.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

import pytest
from sqlalchemy import func, select

from app.extensions import db
from app.models import Submission, utcnow
from app.questionnaire.store import save_metadata
from tests.factories import GOOD_ANSWERS as GOOD
from tests.factories import make_user
from tests.patient.conftest import TRIAL, invite, load_metadata

SITE = "https://followup.example.org"
PROXIED = {"X-Forwarded-Proto": "https", "X-Forwarded-For": "203.0.113.7"}
PASSWORD = "correct horse battery"


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def referer_under(policy: str, page_url: str, target_url: str) -> str | None:
    """The Referer a browser sends from `page_url` to `target_url` under `policy` (W3C Referrer Policy)."""
    same = _origin(page_url) == _origin(target_url)
    downgrade = page_url.startswith("https:") and target_url.startswith("http:")
    origin = _origin(page_url) + "/"
    rules = {
        "no-referrer": None,
        "same-origin": page_url if same else None,
        "origin": origin,
        "strict-origin": None if downgrade else origin,
        "origin-when-cross-origin": page_url if same else origin,
        "strict-origin-when-cross-origin": page_url if same else (None if downgrade else origin),
        "no-referrer-when-downgrade": None if downgrade else page_url,
        "unsafe-url": page_url,
    }
    return rules[policy]


def declared_policy(response) -> str:
    """The page's referrer policy: the header and the meta tag must say the same thing."""
    header = response.headers["Referrer-Policy"]
    meta = re.search(r'<meta name="referrer" content="([^"]+)">', response.get_data(as_text=True))
    assert meta is not None and meta.group(1) == header
    return header


def browser_headers(page, page_url: str, target_url: str) -> dict[str, str]:
    """What a browser adds to a form POST from `page` (the response showing `page_url`)."""
    headers = dict(PROXIED, Origin=_origin(page_url))
    referer = referer_under(declared_policy(page), page_url, target_url)
    if referer is not None:
        headers["Referer"] = referer
    return headers


@pytest.fixture
def https_app(app_factory):
    """Production-like web settings: one proxy hop, secure cookies, CSRF on with its strict HTTPS check."""
    app = app_factory(
        WTF_CSRF_ENABLED="true",
        PROXY_FIX_HOPS="1",
        SESSION_COOKIE_SECURE="true",
        PUBLIC_BASE_URL=SITE,
    )
    assert app.config.get("WTF_CSRF_SSL_STRICT", True) is True
    with app.app_context():
        yield app


def submissions() -> int:
    return db.session.scalar(select(func.count()).select_from(Submission))


def test_questionnaire_is_accepted_over_https(https_app):
    save_metadata(load_metadata("trial_project"), TRIAL, utcnow())
    inv = invite()
    page_url = SITE + inv.url
    client = https_app.test_client()
    page = client.get(inv.url, base_url="http://followup.example.org", headers=PROXIED)
    assert page.status_code == 200
    assert "Strict-Transport-Security" in page.headers
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.get_data(as_text=True)).group(1)
    form = dict(GOOD, csrf_token=token)

    # the strict check is still on: a Referer from another site is refused, nothing is stored
    foreign = dict(PROXIED, Referer="https://evil.example/", Origin="https://evil.example")
    refused = client.post(inv.url, data=form, base_url="http://followup.example.org", headers=foreign)
    assert refused.status_code == 400 and submissions() == 0

    sent = client.post(
        inv.url,
        data=form,
        base_url="http://followup.example.org",
        headers=browser_headers(page, page_url, page_url),
    )
    assert sent.status_code == 200, sent.get_data(as_text=True)[:400]
    assert "Thank you" in sent.get_data(as_text=True)
    assert submissions() == 1


def test_console_sign_in_works_over_https(https_app):
    user = make_user("coordinator@example.org", password=PASSWORD)
    client = https_app.test_client()
    page_url = SITE + "/console/login"
    page = client.get("/console/login", base_url="http://followup.example.org", headers=PROXIED)
    assert page.status_code == 200
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page.get_data(as_text=True)).group(
        1
    )
    response = client.post(
        "/console/login",
        data={"email": user.email, "password": PASSWORD, "csrf_token": token},
        base_url="http://followup.example.org",
        headers=browser_headers(page, page_url, page_url),
    )
    assert response.status_code == 302, response.get_data(as_text=True)[:400]
    assert "Secure" in response.headers["Set-Cookie"]
    worklist = client.get(
        response.headers["Location"], base_url="http://followup.example.org", headers=PROXIED
    )
    assert worklist.status_code == 200


def test_no_page_sends_its_address_to_another_site(https_app):
    """The personal link never leaves the site in a Referer: not to another origin, not over plain HTTP."""
    save_metadata(load_metadata("trial_project"), TRIAL, utcnow())
    inv = invite()
    client = https_app.test_client()
    for path in (inv.url, "/s/never-issued-0000000000", "/console/login"):
        page = client.get(path, base_url="http://followup.example.org", headers=PROXIED)
        policy = declared_policy(page)
        for elsewhere in (
            "https://cdn.example.net/x.js",
            "http://followup.example.org/",
            "https://evil.example/",
        ):
            assert referer_under(policy, SITE + path, elsewhere) is None, (path, elsewhere)
