"""Apps wired to the local Aliyun and Tencent Cloud servers, with the callbacks pointed back at the app."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from flask import Flask

from devservers.runner import ServerHandle, serve_in_thread
from tests.sms.conftest import free_port

CALLBACK_SECRET = "cb-secret-0123456789"  # fictitious
ALIYUN_TEMPLATES = {
    "invite": {"zh": "SMS_470001", "en": "SMS_470002"},
    "reminder": {"zh": "SMS_470003", "en": "SMS_470004"},
    "redflag_alert": {"zh": "SMS_470005"},
}
TENCENT_TEMPLATES = {
    "invite": {"zh": "2000001"},
    "reminder": {"zh": "2000002"},
    "redflag_alert": {"zh": "2000003"},
}


@dataclass
class ProviderEnv:
    """The app (context pushed by the caller), the provider's state and both servers."""

    app: Flask
    state: Any
    api: ServerHandle
    web: ServerHandle

    def url(self, path: str, secret: str | None = CALLBACK_SECRET) -> str:
        return f"{self.web.url}{path}" + (f"?secret={secret}" if secret is not None else "")


def serve_app(
    app_factory, handles: list, api: ServerHandle, settings: dict[str, str]
) -> tuple[Flask, ServerHandle]:
    port = free_port()
    app = app_factory(
        PUBLIC_BASE_URL=f"http://127.0.0.1:{port}",
        SMS_CALLBACK_SECRET=CALLBACK_SECRET,
        SMS_RATE_PER_SECOND="200",
        SMS_MAX_IN_FLIGHT="2",
        **settings,
    )
    web = serve_in_thread(app, port=port)
    handles.append(web)
    return app, web


def templates_json(templates: dict) -> str:
    return json.dumps(templates)
