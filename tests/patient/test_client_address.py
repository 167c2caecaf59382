"""Over real HTTP through gunicorn: X-Forwarded-For counts only from a peer in FORWARDED_ALLOW_IPS.

A client that reaches gunicorn directly must not escape the link-guess limit by naming a new address
in every request; the trusted proxy's header must still decide the client address; with Redis as the
limiter's storage, every worker counts against the same allowance.
"""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from app import create_app
from app.extensions import db
from config import TestingConfig

ROOT = Path(__file__).resolve().parents[2]
LIMIT = 3


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _status(url: str, forwarded_for: str) -> int:
    request = urllib.request.Request(url, headers={"X-Forwarded-For": forwarded_for})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        exc.close()
        return exc.code


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Callable[..., str]]:
    """`serve(FORWARDED_ALLOW_IPS=...)` -> the base URL of gunicorn on a fresh schema, one worker."""
    database = f"sqlite:///{tmp_path / 'web.db'}"
    schema_app = create_app(TestingConfig({"DATABASE_URL": database}, instance_path=tmp_path / "schema"))
    with schema_app.app_context():
        db.create_all()
        db.engine.dispose()
    procs: list[tuple[subprocess.Popen, object]] = []

    def start(**env: str) -> str:
        port = _free_port()
        environ = {k: v for k, v in os.environ.items() if k not in {"FORWARDED_ALLOW_IPS", "GUNICORN_BIND"}}
        environ.update(
            {
                "FOLLOWUP_ENV": "development",
                "SECRET_KEY": "gunicorn-test-secret",
                "INSTANCE_PATH": str(tmp_path / "instance"),
                "DATABASE_URL": database,
                "PORT": str(port),  # no GUNICORN_BIND: the default host is loopback
                "WEB_CONCURRENCY": "1",
                "GUNICORN_ACCESS_LOG": str(tmp_path / f"access-{port}.log"),
                "PROXY_FIX_HOPS": "1",
                "RATELIMIT_ENABLED": "true",
                "RATELIMIT_STORAGE_URI": "memory://",
                "TOKEN_GUESS_LIMIT": f"{LIMIT} per minute",
            }
        )
        environ.update(env)
        err = (tmp_path / f"gunicorn-{port}.err").open("wb")
        proc = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", "wsgi:app"],
            cwd=ROOT,
            env=environ,
            stdout=subprocess.DEVNULL,
            stderr=err,
        )
        procs.append((proc, err))
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    pytest.fail(
                        f"gunicorn did not start: {(tmp_path / f'gunicorn-{port}.err').read_text()[-2000:]}"
                    )
                time.sleep(0.1)
        return base

    yield start
    for proc, err in procs:
        proc.terminate()
        proc.wait(timeout=15)
        err.close()  # type: ignore[attr-defined]


def _guesses(base: str, addresses: list[str]) -> list[int]:
    return [_status(f"{base}/s/guess-{i:020d}", address) for i, address in enumerate(addresses)]


@pytest.mark.slow
def test_untrusted_peer_rotating_x_forwarded_for_is_still_limited(serve):
    # gunicorn's peer here is 127.0.0.1, which is not the configured proxy.
    base = serve(FORWARDED_ALLOW_IPS="192.0.2.1")
    codes = _guesses(base, [f"203.0.113.{i}" for i in range(1, LIMIT + 4)])
    assert codes == [404] * LIMIT + [429] * 3


@pytest.mark.slow
@pytest.mark.parametrize("allowed", [None, "192.0.2.1,127.0.0.1"], ids=["default-loopback", "listed"])
def test_trusted_proxy_x_forwarded_for_names_the_client(serve, allowed):
    base = serve(**({"FORWARDED_ALLOW_IPS": allowed} if allowed else {}))
    assert _guesses(base, ["203.0.113.9"] * (LIMIT + 1)) == [404] * LIMIT + [429]
    # Another client behind the same proxy has its own allowance.
    assert _guesses(base, ["203.0.113.10"]) == [404]


def _redis_reason() -> str | None:
    try:
        with socket.create_connection(("127.0.0.1", 6379), timeout=1):
            return None
    except OSError as exc:
        return f"Redis not reachable at 127.0.0.1:6379: {exc}"


@pytest.mark.slow
def test_two_workers_share_one_count_through_redis(serve):
    reason = _redis_reason()
    if reason:
        pytest.skip(reason)
    # Database 15, and a client address no other run uses: nothing else on this Redis is touched.
    base = serve(WEB_CONCURRENCY="2", RATELIMIT_STORAGE_URI="redis://127.0.0.1:6379/15")
    client = f"2001:db8::{secrets.token_hex(2)}:{secrets.token_hex(2)}"
    assert _guesses(base, [client] * (LIMIT + 2)) == [404] * LIMIT + [429] * 2
