"""Apps wired to the local Aliyun and Tencent Cloud servers, with the callbacks pointed back at the app."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from flask import Flask

from devservers import aliyun_protocol, tencent_state
from devservers.runner import ServerHandle, serve_in_thread
from tests.sms.conftest import free_port

CALLBACK_SECRET = "cb-secret-0123456789"  # fictitious
# SMS_TEMPLATES for the local servers' demo templates
ALIYUN_TEMPLATES = aliyun_protocol.DEMO_SMS_TEMPLATES
TENCENT_TEMPLATES = tencent_state.DEMO_SMS_TEMPLATES


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
