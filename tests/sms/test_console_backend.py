"""The console backend never prints a personal link outside development, and production must choose it."""

from __future__ import annotations

import pytest

from app import create_app
from app.sms.providers import get_provider
from app.sms.providers.console import ConsoleProvider
from config import ProductionConfig

TOKEN = "Ab3_-Zx9Ab3_-Zx9Qw7_-P"  # the shape of a personal token, not a real one
BODY = f"GZ Follow-up study: your week-4 follow-up questionnaire is open. Please answer here: https://followup.example.org/s/{TOKEN} Reply STOP to opt out."
PHONE = "+8613800138321"  # fictitious


@pytest.mark.parametrize(
    ("env", "shows_link"), [("development", True), ("testing", False), ("production", False)]
)
def test_the_link_is_printed_only_in_development(env, shows_link, tmp_path, capsys):
    provider = ConsoleProvider.from_config({"INSTANCE_PATH": str(tmp_path), "FOLLOWUP_ENV": env})
    provider.send(PHONE, BODY, ref="1", status_callback=None)
    out = capsys.readouterr().out
    assert (TOKEN in out) is shows_link
    assert ("/s/[token]" in out) is not shows_link
    assert "questionnaire is open" in out and PHONE not in out
    assert TOKEN not in (tmp_path / "console_sms.jsonl").read_text()


def test_production_console_backend_prints_a_redacted_link(tmp_path, capsys):
    config = ProductionConfig(
        {
            "SECRET_KEY": "k" * 40,
            "REDCAP_API_TOKEN": "0" * 32,
            "PUBLIC_BASE_URL": "https://followup.example.org",
            "DATABASE_URL": f"sqlite:///{tmp_path / 'p.db'}",
            "SMS_BACKEND": "console",
        },
        instance_path=tmp_path / "instance",
    )
    app = create_app(config)
    with app.app_context():
        provider = get_provider()
        assert isinstance(provider, ConsoleProvider)
        provider.send(PHONE, BODY, ref="1", status_callback=None)
    out = capsys.readouterr().out
    assert "/s/[token]" in out and TOKEN not in out
