"""The whole flow once in a real Chromium against an HTTPS origin, with CSRF and its strict HTTPS check
on: a participant answers and sees the thank-you page, then a coordinator signs in to the console.

Over HTTPS, Flask-WTF refuses a POST without a same-origin Referer, so this is what proves that the
pages' referrer policy lets the browser send one (and only to this site)."""

from __future__ import annotations

import shutil
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from sqlalchemy import func, select
from werkzeug.serving import make_server

from app.extensions import db
from app.models import Submission, utcnow
from app.questionnaire.store import save_metadata
from tests.conftest import build_app
from tests.factories import make_user
from tests.patient.conftest import TRIAL, invite, load_metadata

pytestmark = pytest.mark.browser

PASSWORD = "correct horse battery"
EMAIL = "coordinator@example.org"


def self_signed_certificate(directory: Path) -> tuple[str, str]:
    """A throwaway certificate and key for 127.0.0.1, valid for a day (made with the openssl CLI)."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("openssl is missing: cannot make a test certificate")
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        [
            openssl,
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
        timeout=30,
    )
    return str(cert), str(key)


@pytest.fixture
def https_site(tmp_path) -> Iterator[tuple[str, str, object]]:
    """The app over TLS on a free loopback port, with production-like web security settings."""
    certificate = self_signed_certificate(tmp_path)
    app = build_app(
        "sqlite",
        tmp_path,
        WTF_CSRF_ENABLED="true",
        SESSION_COOKIE_SECURE="true",
        PROXY_FIX_HOPS="1",
        RATELIMIT_ENABLED="true",
    )
    assert app.config.get("WTF_CSRF_SSL_STRICT", True) is True
    with app.app_context():
        save_metadata(load_metadata("trial_project"), TRIAL, utcnow())
        token = invite().token
        make_user(EMAIL, role="coordinator", password=PASSWORD)
    server = make_server("127.0.0.1", 0, app, threaded=True, ssl_context=certificate)
    thread = threading.Thread(target=lambda: server.serve_forever(poll_interval=0.05), daemon=True)
    thread.start()
    try:
        yield f"https://127.0.0.1:{server.server_port}", token, app
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
        with app.app_context():
            db.session.remove()
            db.engine.dispose()


def test_questionnaire_and_console_sign_in_over_https(browser, https_site):
    origin, token, app = https_site
    context = browser.new_context(ignore_https_errors=True, locale="en-US")
    page = context.new_page()
    posts: list[tuple[str, str | None]] = []
    elsewhere: list[str] = []

    def seen(request) -> None:
        if not request.url.startswith(origin + "/"):
            elsewhere.append(request.url)
        if request.method == "POST":
            posts.append((urlsplit(request.url).path, request.headers.get("referer")))

    page.on("request", seen)
    try:
        page.goto(f"{origin}/s/{token}")
        assert page.locator("h1").inner_text() == "Follow-up questionnaire"
        for radio in (
            "#fu_fever-1",
            "#fu_mmrc-0",
            "#fu_cough-1",
            "#fu_sneezing-1",
            "#fu_diarrhea-1",
            "#fu_readmitted-1",
        ):
            page.locator(radio).check()
        page.locator("#fu_spo2").fill("97")
        page.locator("#fu_health_today").focus()  # the health slider is answered by moving it
        for _ in range(5):
            page.keyboard.press("ArrowRight")
        page.locator("button[type=submit]").click()
        page.wait_for_load_state()
        assert "Thank you" in page.locator("h1").inner_text(), page.content()[:1500]

        page.goto(f"{origin}/console/login")
        page.fill("input[name=email]", EMAIL)
        page.fill("input[name=password]", PASSWORD)
        page.click("button[type=submit].primary")
        page.wait_for_url(f"{origin}/console/")
        assert page.locator("li.work-item, .console-nav").count() > 0
        cookies = {c["name"]: c for c in context.cookies(origin)}
        assert cookies["session"]["secure"] and cookies["session"]["httpOnly"]
    finally:
        context.close()

    # Both POSTs carried a Referer, and only back to this site; nothing was fetched from anywhere else.
    assert [path for path, _ in posts] == [f"/s/{token}", "/console/login"]
    assert all(referer and referer.startswith(origin + "/") for _, referer in posts), posts
    assert elsewhere == []
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Submission)) == 1
