"""A chunked questionnaire POST (no Content-Length) over the limit is refused whole with 413, never cut and
stored; one under the limit still goes through. Over real HTTP: gunicorn with gunicorn.conf.py, and
Werkzeug's server."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlencode

import pytest
import requests
from sqlalchemy import func, select

from app.extensions import db
from app.models import Submission, utcnow
from app.questionnaire.store import save_metadata
from devservers.runner import serve_in_thread
from tests.conftest import build_app
from tests.factories import GOOD_ANSWERS as GOOD
from tests.patient.conftest import TRIAL, invite, load_metadata

ROOT = Path(__file__).resolve().parents[2]
LIMIT = 64 * 1024  # MAX_CONTENT_LENGTH's default


def chunks(body: bytes, size: int = 8192) -> Iterator[bytes]:
    """A generator body: `requests` sends it with Transfer-Encoding: chunked and no Content-Length."""
    for start in range(0, len(body), size):
        yield body[start : start + size]


def form_body(csrf_token: str | None, padding: int) -> bytes:
    """Valid answers first, then `padding` bytes in a field the questionnaire ignores: cut anywhere past
    the answers, the body still parses as a complete, valid questionnaire."""
    fields = dict(GOOD)
    if csrf_token:
        fields["csrf_token"] = csrf_token
    return (urlencode(fields) + "&pad=" + "x" * padding).encode()


def post_chunked(session: requests.Session, url: str, body: bytes) -> requests.Response:
    return session.post(
        url,
        data=chunks(body),
        headers={"Content-Type": "application/x-www-form-urlencoded", "Accept-Language": "en"},
        timeout=20,
    )


def csrf_token_of(session: requests.Session, url: str) -> str | None:
    page = session.get(url, timeout=10)
    assert page.status_code == 200
    found = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    return found.group(1) if found else None


def stored(app) -> int:
    with app.app_context():
        count = db.session.scalar(select(func.count()).select_from(Submission))
        db.session.remove()
        return count


def seeded(tmp_path: Path):
    """An app on a fresh SQLite file with the trial's questionnaire and two invited participants."""
    app = build_app("sqlite", tmp_path)
    with app.app_context():
        save_metadata(load_metadata("trial_project"), TRIAL, utcnow())
        tokens = (invite().token, invite().token)
        db.session.remove()
    return app, tokens


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def gunicorn_site(tmp_path) -> Iterator[tuple[str, object, tuple[str, str]]]:
    """gunicorn with gunicorn.conf.py on the seeded database (development settings: CSRF on)."""
    app, tokens = seeded(tmp_path)
    port = _free_port()
    environ = dict(os.environ)
    environ.update(
        {
            "FOLLOWUP_ENV": "development",
            "SECRET_KEY": "chunked-test-secret",
            "INSTANCE_PATH": str(tmp_path / "instance"),
            "DATABASE_URL": app.config["SQLALCHEMY_DATABASE_URI"],
            "GUNICORN_BIND": f"127.0.0.1:{port}",
            "WEB_CONCURRENCY": "1",
            "GUNICORN_ACCESS_LOG": str(tmp_path / "access.log"),
            "REDCAP_DET_WORKER": "false",
        }
    )
    err_path = tmp_path / "gunicorn.err"
    with err_path.open("wb") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", "wsgi:app"],
            cwd=ROOT,
            env=environ,
            stdout=subprocess.DEVNULL,
            stderr=err,
        )
        base = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 20
            while True:
                try:
                    requests.get(f"{base}/healthz", timeout=2)
                    break
                except requests.ConnectionError:
                    if time.monotonic() > deadline or proc.poll() is not None:
                        pytest.fail(f"gunicorn did not start: {err_path.read_text()[-2000:]}")
                    time.sleep(0.1)
            yield base, app, tokens
        finally:
            proc.terminate()
            proc.wait(timeout=15)
            with app.app_context():
                db.engine.dispose()


@pytest.fixture
def werkzeug_site(tmp_path) -> Iterator[tuple[str, object, tuple[str, str]]]:
    """Werkzeug's threaded server (make run, the browser tests) on the seeded database, CSRF off."""
    app, tokens = seeded(tmp_path)
    handle = serve_in_thread(app)
    try:
        yield handle.url, app, tokens
    finally:
        handle.stop()
        with app.app_context():
            db.engine.dispose()


def refuses_big_and_keeps_small(base: str, app, tokens: tuple[str, str]) -> None:
    big_url, small_url = (f"{base}/s/{token}" for token in tokens)
    with requests.Session() as session:
        body = form_body(csrf_token_of(session, big_url), 100 * 1024)
        assert len(body) > LIMIT
        refused = post_chunked(session, big_url, body)
        assert refused.status_code == 413, refused.text[:300]
        assert stored(app) == 0

        small = post_chunked(session, small_url, form_body(csrf_token_of(session, small_url), 2 * 1024))
        assert small.status_code == 200 and "Thank you" in small.text
        assert stored(app) == 1


@pytest.mark.slow
def test_gunicorn_refuses_a_chunked_body_over_the_limit(gunicorn_site):
    refuses_big_and_keeps_small(*gunicorn_site)


def test_werkzeug_server_refuses_a_chunked_body_over_the_limit(werkzeug_site):
    refuses_big_and_keeps_small(*werkzeug_site)
