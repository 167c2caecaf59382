"""The deployment examples stay in step with the code: every setting documented, commands that exist."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from dotenv import dotenv_values

import config as config_module
from config import ProductionConfig

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"


def _settings_read_by_production() -> list[str]:
    seen: list[str] = []
    original = config_module._Reader.raw

    def recording(self, name: str):
        if name not in seen:
            seen.append(name)
        return original(self, name)

    config_module._Reader.raw = recording
    try:
        ProductionConfig(
            {
                "SECRET_KEY": "s",
                "REDCAP_API_TOKEN": "t",
                "PUBLIC_BASE_URL": "https://x.example",
                "SMS_BACKEND": "console",
            }
        )
    finally:
        config_module._Reader.raw = original
    return seen


def test_env_example_lists_every_setting():
    text = (DEPLOY / "followup.env.example").read_text()
    documented = set(re.findall(r"^#?\s*([A-Z][A-Z0-9_]+)=", text, flags=re.MULTILINE))
    missing = [name for name in _settings_read_by_production() if name not in documented]
    assert missing == [], f"add these settings to deploy/followup.env.example: {missing}"
    assert "FOLLOWUP_ENV" in documented


def test_env_example_builds_a_production_config():
    values = {k: v for k, v in dotenv_values(DEPLOY / "followup.env.example").items() if v is not None}
    config = ProductionConfig(values)
    assert config.SQLALCHEMY_DATABASE_URI.startswith("postgresql+psycopg://")
    assert config.SQLALCHEMY_ENGINE_OPTIONS["pool_pre_ping"] is True
    assert config.LOG_FORMAT == "json" and config.PROXY_FIX_HOPS == 1
    assert config.SCHEDULER_LEASE_SECONDS > config.SCHEDULER_HEARTBEAT_SECONDS


def test_env_example_holds_no_real_secret():
    values = dotenv_values(DEPLOY / "followup.env.example")
    for name in ("SECRET_KEY", "REDCAP_API_TOKEN", "TWILIO_AUTH_TOKEN", "REDCAP_DET_SECRET"):
        assert values[name].startswith("<") and values[name].endswith(">"), name


@pytest.mark.parametrize("path", ["Procfile", "followup-web.service", "followup-scheduler.service"])
def test_process_examples_never_migrate_in_workers(path):
    text = (DEPLOY / path).read_text()
    commands = [line for line in text.splitlines() if line.startswith(("web:", "scheduler:", "ExecStart="))]
    assert commands
    assert not any("db upgrade" in line for line in commands)


def test_examples_start_web_and_scheduler_as_separate_processes():
    procfile = (DEPLOY / "Procfile").read_text()
    assert re.search(r"^web: gunicorn -c gunicorn.conf.py wsgi:app$", procfile, re.MULTILINE)
    assert re.search(r"^scheduler: flask --app wsgi scheduler$", procfile, re.MULTILINE)
    assert re.search(r"^release: flask --app wsgi db upgrade$", procfile, re.MULTILINE)
    assert "flask --app wsgi scheduler" in (DEPLOY / "followup-scheduler.service").read_text()
    assert "gunicorn -c gunicorn.conf.py wsgi:app" in (DEPLOY / "followup-web.service").read_text()
    assert "flask --app wsgi db upgrade" in (DEPLOY / "followup-migrate.service").read_text()
