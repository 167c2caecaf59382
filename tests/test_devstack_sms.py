"""`SMS_BACKEND=aliyun|tencent make run`: the local provider gets the study's templates, the app the settings."""

from __future__ import annotations

import json

import pytest

from app import create_app
from config import TestingConfig
from scripts.devstack_sms import provider_stack


@pytest.mark.parametrize("backend", ["aliyun", "tencent"])
def test_the_demo_settings_start_the_app_and_name_registered_templates(backend, tmp_path):
    env = {"PUBLIC_BASE_URL": "http://127.0.0.1:5000", "SMS_BACKEND": backend}
    argv, settings = provider_stack(backend, env)
    pairs = [argv[i + 1].split("=", 1) for i, arg in enumerate(argv) if arg == "--template"]
    registered = {template_id for template_id, _ in pairs}
    templates = json.loads(settings["SMS_TEMPLATES"])
    for kind in ("invite", "reminder", "redflag_alert"):
        assert templates[kind]["zh"] in registered
    texts = [text for _, text in pairs]
    assert all("{PUBLIC_BASE_URL}" not in t and "【" not in t and "问卷调查" not in t for t in texts)
    app = create_app(
        TestingConfig(
            {"DATABASE_URL": f"sqlite:///{tmp_path / 'd.db'}", "SMS_BACKEND": backend, **env, **settings},
            instance_path=tmp_path / "instance",
        )
    )
    assert app.config["SMS_BACKEND"] == backend
