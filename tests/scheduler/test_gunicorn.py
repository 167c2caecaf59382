"""gunicorn runs the web app with an access log free of query strings and personal link tokens."""

from __future__ import annotations

import json
import os
import runpy
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "Zq3xT9vK2mW8pL4nR7sY1uE6"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _load_conf(monkeypatch, **env: str) -> dict:
    for name in ("GUNICORN_BIND", "GUNICORN_HOST", "PORT", "WEB_CONCURRENCY", "FORWARDED_ALLOW_IPS"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return runpy.run_path(str(ROOT / "gunicorn.conf.py"))


def test_workers_from_cpu_count_and_bind_from_env(monkeypatch):
    conf = _load_conf(monkeypatch)
    assert conf["workers"] == min(2 * os.cpu_count() + 1, 12)
    assert conf["bind"] == "127.0.0.1:8000"
    assert conf["forwarded_allow_ips"] == "127.0.0.1,::1"
    assert conf["preload_app"] is False
    conf = _load_conf(
        monkeypatch, GUNICORN_BIND="10.0.0.5:8080", WEB_CONCURRENCY="3", FORWARDED_ALLOW_IPS="10.0.0.1"
    )
    assert (conf["bind"], conf["workers"], conf["forwarded_allow_ips"]) == ("10.0.0.5:8080", 3, "10.0.0.1")
    # PORT alone keeps gunicorn on loopback: only the proxy on this host should reach it.
    assert _load_conf(monkeypatch, PORT="9000")["bind"] == "127.0.0.1:9000"
    all_interfaces = "0.0.0.0"  # noqa: S104 - only read back from the settings, never bound here
    assert _load_conf(monkeypatch, PORT="9000", GUNICORN_HOST=all_interfaces)["bind"] == "0.0.0.0:9000"
    assert _load_conf(monkeypatch, GUNICORN_HOST="::1")["bind"] == "[::1]:8000"


def test_safe_path_masks_tokens_and_drops_queries(monkeypatch):
    safe_path = _load_conf(monkeypatch)["safe_path"]
    assert safe_path(f"/s/{TOKEN}") == "/s/[token]"
    assert safe_path(f"/s/{TOKEN}/page/2?lang=zh") == "/s/[token]/page/2"
    assert safe_path("/healthz?token=abc") == "/healthz"
    assert safe_path(None) == "-"


def _get(request: urllib.request.Request | str) -> int:
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        exc.close()
        return exc.code


def _serve_and_log(tmp_path: Path, **env: str) -> str:
    port = _free_port()
    log_file = tmp_path / "access.log"
    environ = dict(os.environ)
    environ.update(
        {
            "FOLLOWUP_ENV": "development",
            "SECRET_KEY": "gunicorn-test-secret",
            "INSTANCE_PATH": str(tmp_path / "instance"),
            "DATABASE_URL": f"sqlite:///{tmp_path / 'web.db'}",
            "GUNICORN_BIND": f"127.0.0.1:{port}",
            "WEB_CONCURRENCY": "1",
            "GUNICORN_ACCESS_LOG": str(log_file),
            "PROXY_FIX_HOPS": "1",
        }
    )
    environ.update(env)
    err = (tmp_path / "gunicorn.err").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", "wsgi:app"],
        cwd=ROOT,
        env=environ,
        stdout=subprocess.DEVNULL,
        stderr=err,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 20
        while True:
            try:
                _get(f"{base}/healthz")  # any answer (503 without a heartbeat is fine here)
                break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    pytest.fail(f"gunicorn did not start: {(tmp_path / 'gunicorn.err').read_text()[-2000:]}")
                time.sleep(0.1)
        for path in (f"/s/{TOKEN}?lang=zh", f"/s/{TOKEN}/submit", "/healthz?token=SECRETQUERY"):
            request = urllib.request.Request(
                base + path,
                headers={"Referer": f"https://study.example.org/s/{TOKEN}", "X-Forwarded-For": "203.0.113.9"},
            )
            _get(request)
        deadline = time.monotonic() + 5
        while log_file.read_text().count("\n") < 4 and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        proc.terminate()
        proc.wait(timeout=15)
        err.close()
    return log_file.read_text()


@pytest.mark.slow
def test_access_log_has_no_tokens_or_query_strings(tmp_path):
    text = _serve_and_log(tmp_path)
    assert "/s/[token]" in text
    assert TOKEN not in text and "SECRETQUERY" not in text and "lang=zh" not in text
    assert "study.example.org" not in text  # referrers are dropped
    assert '"GET /healthz"' in text
    # One trusted proxy (loopback here): the client address comes from its X-Forwarded-For.
    assert "203.0.113.9" in text


@pytest.mark.slow
def test_access_log_is_json_in_production_format(tmp_path):
    text = _serve_and_log(tmp_path, LOG_FORMAT="json")
    lines = [json.loads(line) for line in text.splitlines() if line.strip()]
    assert {line["path"] for line in lines} >= {"/s/[token]", "/s/[token]/submit", "/healthz"}
    assert all(
        set(line) == {"ts", "level", "logger", "remote", "method", "path", "status", "bytes", "duration_ms"}
        for line in lines
    )
    assert TOKEN not in text and "SECRETQUERY" not in text
