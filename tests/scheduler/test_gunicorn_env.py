"""gunicorn says at start-up, in one log line, when FOLLOWUP_ENV is missing (the app then runs as development)."""

from __future__ import annotations

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
from dotenv import dotenv_values

ROOT = Path(__file__).resolve().parents[2]
WARNING = "FOLLOWUP_ENV is not set: running with development settings"


def _conf() -> dict:
    return runpy.run_path(str(ROOT / "gunicorn.conf.py"))


def test_missing_env_warning_names_the_setting(tmp_path):
    warning = _conf()["missing_env_warning"]
    no_dotenv = tmp_path / "absent.env"
    assert warning({}, no_dotenv).startswith(WARNING)
    assert warning({"FOLLOWUP_ENV": "  "}, no_dotenv).startswith(WARNING)
    assert warning({"FOLLOWUP_ENV": "production"}, no_dotenv) is None
    assert warning({"FOLLOWUP_ENV": "development"}, no_dotenv) is None  # chosen explicitly: no warning
    dotenv = tmp_path / ".env"
    dotenv.write_text("FOLLOWUP_ENV=production\n")
    assert warning({}, dotenv) is None  # config.load_config reads .env too


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _start_log(tmp_path: Path, **env: str) -> str:
    """Start gunicorn with gunicorn.conf.py, wait until it answers, stop it; its error log."""
    port = _free_port()
    environ = {k: v for k, v in os.environ.items() if k != "FOLLOWUP_ENV"}
    environ.update(
        {
            "SECRET_KEY": "gunicorn-test-secret",
            "INSTANCE_PATH": str(tmp_path / "instance"),
            "DATABASE_URL": f"sqlite:///{tmp_path / 'web.db'}",
            "GUNICORN_BIND": f"127.0.0.1:{port}",
            "WEB_CONCURRENCY": "1",
            "GUNICORN_ACCESS_LOG": str(tmp_path / "access.log"),
            **env,
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
        try:
            deadline = time.monotonic() + 20
            while True:
                try:
                    urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2).close()
                    break
                except urllib.error.HTTPError as exc:  # any answer means a worker serves
                    exc.close()
                    break
                except OSError:
                    if time.monotonic() > deadline or proc.poll() is not None:
                        pytest.fail(f"gunicorn did not start: {err_path.read_text()[-2000:]}")
                    time.sleep(0.1)
        finally:
            proc.terminate()
            proc.wait(timeout=15)
    return err_path.read_text()


@pytest.mark.slow
def test_gunicorn_without_followup_env_logs_one_warning_naming_it(tmp_path):
    if (dotenv_values(ROOT / ".env").get("FOLLOWUP_ENV") or "").strip():
        pytest.skip("this checkout's .env sets FOLLOWUP_ENV")
    log = _start_log(tmp_path)
    lines = [line for line in log.splitlines() if "FOLLOWUP_ENV" in line]
    assert len(lines) == 1 and WARNING in lines[0] and "[WARNING]" in lines[0], log[-2000:]
    assert "FOLLOWUP_ENV" not in _start_log(tmp_path, FOLLOWUP_ENV="development")
