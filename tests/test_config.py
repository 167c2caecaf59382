"""Configuration: defaults, and one clear line naming the setting when a value is bad."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from config import ConfigError, DevelopmentConfig, ProductionConfig, TestingConfig, load_config

ROOT = Path(__file__).resolve().parent.parent


def test_defaults(tmp_path):
    config = DevelopmentConfig({}, instance_path=tmp_path)
    assert f"sqlite:///{tmp_path / 'followup.db'}" == config.SQLALCHEMY_DATABASE_URI
    assert config.STUDY_TIMEZONE == "Asia/Shanghai"
    assert config.DEFAULT_PHONE_REGION == "CN"
    assert config.SMS_SEND_WINDOW == "09:00-20:00"
    assert config.SMS_BACKEND == "console"
    assert (config.STUDY_SHORT_NAME, config.STUDY_SHORT_NAME_ZH) == ("GZ Follow-up", "随访中心")
    assert config.SMS_RATE_PER_SECOND == 1.0
    assert config.REDCAP_BATCH_SIZE == 250


def test_twilio_is_the_default_backend_when_credentials_exist(tmp_path):
    config = DevelopmentConfig(
        {"TWILIO_ACCOUNT_SID": "AC" + "0" * 32, "TWILIO_AUTH_TOKEN": "x", "TWILIO_FROM_NUMBER": "+15550100"},
        instance_path=tmp_path,
    )
    assert config.SMS_BACKEND == "twilio"


def test_postgres_urls_use_psycopg(tmp_path):
    config = DevelopmentConfig({"DATABASE_URL": "postgres://u@h/db"}, instance_path=tmp_path)
    assert config.SQLALCHEMY_DATABASE_URI == "postgresql+psycopg://u@h/db"


@pytest.mark.parametrize(
    ("env", "setting"),
    [
        ({"STUDY_TIMEZONE": "Mars/Base"}, "STUDY_TIMEZONE"),
        ({"SMS_SEND_WINDOW": "22:00-06:00"}, "SMS_SEND_WINDOW"),
        ({"VISIT_PLAN": "not json"}, "VISIT_PLAN"),
        ({"VISIT_PLAN": '[{"key": "a", "event": "e", "target_day": 5, "window": [9, 3]}]'}, "VISIT_PLAN"),
        ({"DEFAULT_PHONE_REGION": "XX"}, "DEFAULT_PHONE_REGION"),
        ({"DATABASE_URL": "mysql://x"}, "DATABASE_URL"),
        ({"PUBLIC_BASE_URL": "example.org"}, "PUBLIC_BASE_URL"),
        ({"SMS_BACKEND": "pigeon"}, "SMS_BACKEND"),
        ({"SMS_BACKEND": "twilio"}, "TWILIO_ACCOUNT_SID"),
        ({"SMS_RATE_PER_SECOND": "fast"}, "SMS_RATE_PER_SECOND"),
        ({"REDCAP_BATCH_SIZE": "0"}, "REDCAP_BATCH_SIZE"),
        ({"STUDY_SHORT_NAME": "MSC-COVID"}, "STUDY_SHORT_NAME"),
    ],
)
def test_bad_settings_name_the_setting(env, setting, tmp_path):
    with pytest.raises(ConfigError, match=f"^{setting}: "):
        DevelopmentConfig(env, instance_path=tmp_path)


def test_production_requires_secrets(tmp_path):
    with pytest.raises(ConfigError, match="^SECRET_KEY: required"):
        ProductionConfig({}, instance_path=tmp_path)
    with pytest.raises(ConfigError, match="^REDCAP_API_TOKEN: required"):
        ProductionConfig(
            {"SECRET_KEY": "k" * 40, "PUBLIC_BASE_URL": "https://x.example", "SMS_BACKEND": "console"},
            instance_path=tmp_path,
        )
    with pytest.raises(ConfigError, match="^PUBLIC_BASE_URL: must be https"):
        ProductionConfig(
            {"SECRET_KEY": "k" * 40, "REDCAP_API_TOKEN": "t", "SMS_BACKEND": "console"},
            instance_path=tmp_path,
        )
    config = ProductionConfig(
        {
            "SECRET_KEY": "k" * 40,
            "REDCAP_API_TOKEN": "t",
            "PUBLIC_BASE_URL": "https://x.example",
            "SMS_BACKEND": "console",
        },
        instance_path=tmp_path,
    )
    assert config.SESSION_COOKIE_SECURE is True


PRODUCTION = {"SECRET_KEY": "k" * 40, "REDCAP_API_TOKEN": "t", "PUBLIC_BASE_URL": "https://x.example"}
TWILIO = {"TWILIO_ACCOUNT_SID": "AC" + "0" * 32, "TWILIO_AUTH_TOKEN": "x", "TWILIO_FROM_NUMBER": "+15550100"}


def test_production_never_falls_back_to_the_console_backend(tmp_path):
    with pytest.raises(ConfigError, match="^SMS_BACKEND: required in production without Twilio credentials"):
        ProductionConfig(PRODUCTION, instance_path=tmp_path)
    with pytest.raises(ConfigError, match="^SMS_BACKEND: required in production"):
        load_config(None, {**PRODUCTION, "FOLLOWUP_ENV": "production", "INSTANCE_PATH": str(tmp_path)})
    chosen = ProductionConfig({**PRODUCTION, "SMS_BACKEND": "console"}, instance_path=tmp_path)
    assert chosen.SMS_BACKEND == "console"
    assert ProductionConfig({**PRODUCTION, **TWILIO}, instance_path=tmp_path).SMS_BACKEND == "twilio"
    # Development and tests keep the convenient fallback.
    assert DevelopmentConfig({}, instance_path=tmp_path).SMS_BACKEND == "console"
    assert TestingConfig({}, instance_path=tmp_path).SMS_BACKEND == "console"


def test_development_generates_and_keeps_a_secret_key(tmp_path):
    first = DevelopmentConfig({}, instance_path=tmp_path)
    first.ensure_secret_key()
    second = DevelopmentConfig({}, instance_path=tmp_path)
    second.ensure_secret_key()
    assert first.SECRET_KEY and first.SECRET_KEY == second.SECRET_KEY


def test_unknown_environment_name():
    with pytest.raises(ConfigError, match="^FOLLOWUP_ENV"):
        load_config("staging", {})


def test_testing_config_defaults(tmp_path):
    assert TestingConfig({}, instance_path=tmp_path).TESTING is True


def test_bad_setting_stops_the_cli_with_one_line(tmp_path):
    env = {
        "PATH": "/usr/bin:/bin",
        "INSTANCE_PATH": str(tmp_path),
        "STUDY_TIMEZONE": "Nowhere/Land",
        "HOME": str(tmp_path),
    }
    result = subprocess.run(
        [sys.executable, "-m", "flask", "--app", "wsgi", "users", "--help"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    lines = [line for line in result.stderr.strip().splitlines() if line.strip()]
    assert lines == ["configuration error: STUDY_TIMEZONE: unknown time zone 'Nowhere/Land'"]
