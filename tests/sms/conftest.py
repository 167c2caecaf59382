"""SMS fixtures: an app wired to a local Twilio-compatible server on a free port, and open visits to text."""

from __future__ import annotations

import itertools
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from flask import Flask

from app.extensions import db
from app.models import Participant, Visit
from app.participants.visits import schedule_participant, sweep_visits
from app.schedule import SendWindow, parse_visit_plan
from devservers.runner import ServerHandle, serve_in_thread
from devservers.twilio_api import TwilioState, create_twilio_app

ACCOUNT_SID = "AC0123456789abcdef0123456789abcdef"  # fictitious
AUTH_TOKEN = "fedcba9876543210fedcba9876543210"  # fictitious
FROM_NUMBER = "+15550100"  # fictitious +1 555 01xx
# 12:00 in Shanghai: inside the default 09:00-20:00 send window.
NOW = datetime(2026, 11, 20, 4, 0, tzinfo=UTC)
_numbers = itertools.count(100)


def fake_phone() -> str:
    """A fresh fictitious +86 138 0013 8xxx number."""
    return f"+861380013{8000 + next(_numbers) % 1000}"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class TwilioEnv:
    """The app (context pushed, served on `web`) and the Twilio-compatible server it sends to."""

    app: Flask
    state: TwilioState
    api: ServerHandle
    web: ServerHandle

    @property
    def inbound_url(self) -> str:
        return f"{self.web.url}/sms/twilio/inbound"

    @property
    def status_url(self) -> str:
        return f"{self.web.url}/sms/twilio/status"


def twilio_settings(api_url: str, public_url: str, **extra: str) -> dict[str, str]:
    settings = {
        "SMS_BACKEND": "twilio",
        "TWILIO_ACCOUNT_SID": ACCOUNT_SID,
        "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
        "TWILIO_FROM_NUMBER": FROM_NUMBER,
        "TWILIO_API_URL": api_url,
        "TWILIO_TIMEOUT": "1",
        "PUBLIC_BASE_URL": public_url,
        "SMS_RATE_PER_SECOND": "200",
        "SMS_MAX_IN_FLIGHT": "4",
    }
    settings.update(extra)
    return settings


@pytest.fixture(autouse=True)
def _clock_at_now(time_machine) -> None:
    """Every SMS test runs at NOW: the visits are built open at NOW, and the webhooks, the local Twilio
    server and the CLI read the clock, so both must agree on any day the suite runs (ticking, so
    sleeps and timeouts still pass)."""
    time_machine.move_to(NOW, tick=True)


@pytest.fixture
def twilio_state() -> Iterator[TwilioState]:
    state = TwilioState({ACCOUNT_SID: AUTH_TOKEN}, hang_seconds=1.5, callback_timeout=3.0)
    yield state
    state.close()


@pytest.fixture
def twilio_env_factory(app_factory, twilio_state: TwilioState) -> Iterator:
    """Build a TwilioEnv with extra settings (the app's context is pushed by the caller's `with`)."""
    handles: list[ServerHandle] = []
    api = serve_in_thread(create_twilio_app(state=twilio_state))
    handles.append(api)

    def make(**extra: str) -> TwilioEnv:
        port = free_port()
        app = app_factory(**twilio_settings(api.url, f"http://127.0.0.1:{port}", **extra))
        web = serve_in_thread(app, port=port)
        handles.append(web)
        return TwilioEnv(app=app, state=twilio_state, api=api, web=web)

    yield make
    twilio_state.close()
    for handle in reversed(handles):
        handle.stop()


@pytest.fixture
def twilio_server(twilio_env_factory) -> Iterator[TwilioEnv]:
    """An app with SMS_BACKEND=twilio pointed at a local Twilio server; app context pushed."""
    env = twilio_env_factory()
    with env.app.app_context():
        yield env
        db.session.remove()


def open_visit(
    now: datetime = NOW,
    *,
    language: str = "en",
    timezone: str = "Asia/Shanghai",
    days_since_discharge: int = 26,
    phone: str | None = None,
    record_id: str | None = None,
) -> tuple[Participant, Visit]:
    """A consenting participant whose week-4 visit is open at `now` (committed)."""
    from flask import current_app

    zone = ZoneInfo(timezone)
    participant = Participant(
        record_id=record_id or f"S{next(_numbers):05d}",
        phone_e164=phone or fake_phone(),
        phone_status="ok",
        language=language,
        timezone=timezone,
        sms_consent=True,
        status="active",
        anchor_date=now.astimezone(zone).date() - timedelta(days=days_since_discharge),
        roster_synced_at=now,
    )
    db.session.add(participant)
    db.session.flush()
    plan = parse_visit_plan(current_app.config["VISIT_PLAN"])
    window = SendWindow.parse(current_app.config["SMS_SEND_WINDOW"])
    schedule_participant(participant, plan, window, now)
    db.session.commit()
    sweep_visits(now)
    db.session.commit()
    visit = next(v for v in participant.visits if v.visit_key == "week_4")
    return participant, visit


@pytest.fixture
def aliyun_env(app_factory) -> Iterator:
    """An app with SMS_BACKEND=aliyun on the local Aliyun server, receipts and replies pushed back; context pushed."""
    from devservers.aliyun_sms import (
        DEFAULT_ACCESS_KEY_ID,
        DEFAULT_ACCESS_KEY_SECRET,
        DEFAULT_SIGN_NAME,
        AliyunState,
        create_aliyun_app,
    )
    from tests.sms.cn_fixtures import (
        ALIYUN_TEMPLATES,
        CALLBACK_SECRET,
        ProviderEnv,
        serve_app,
        templates_json,
    )

    state = AliyunState(hang_seconds=2.0, callback_retry_delay=0.1, callback_timeout=5.0)
    api = serve_in_thread(create_aliyun_app(state=state))
    handles: list[ServerHandle] = [api]
    app, web = serve_app(
        app_factory,
        handles,
        api,
        {
            "SMS_BACKEND": "aliyun",
            "ALIYUN_ACCESS_KEY_ID": DEFAULT_ACCESS_KEY_ID,
            "ALIYUN_ACCESS_KEY_SECRET": DEFAULT_ACCESS_KEY_SECRET,
            "ALIYUN_SMS_SIGN_NAME": DEFAULT_SIGN_NAME,
            "ALIYUN_SMS_ENDPOINT": api.url,
            "ALIYUN_SMS_TIMEOUT": "1",
            "SMS_TEMPLATES": templates_json(ALIYUN_TEMPLATES),
        },
    )
    state.configure(
        {
            "report_url": f"{web.url}/sms/aliyun/report?secret={CALLBACK_SECRET}",
            "up_url": f"{web.url}/sms/aliyun/up?secret={CALLBACK_SECRET}",
        }
    )
    try:
        with app.app_context():
            yield ProviderEnv(app=app, state=state, api=api, web=web)
            db.session.remove()
    finally:
        state.close()
        for handle in reversed(handles):
            handle.stop()


@pytest.fixture
def tencent_env(app_factory) -> Iterator:
    """An app with SMS_BACKEND=tencent on the local Tencent Cloud server, reports pushed back; context pushed."""
    from devservers.tencent_sms import (
        DEFAULT_APP_ID,
        DEFAULT_SECRET_ID,
        DEFAULT_SECRET_KEY,
        DEFAULT_SIGN,
        TencentState,
        create_tencent_app,
    )
    from tests.sms.cn_fixtures import (
        CALLBACK_SECRET,
        TENCENT_TEMPLATES,
        ProviderEnv,
        serve_app,
        templates_json,
    )

    state = TencentState(hang_seconds=2.0, retry_delay=0.1)
    api = serve_in_thread(create_tencent_app(state=state))
    handles: list[ServerHandle] = [api]
    app, web = serve_app(
        app_factory,
        handles,
        api,
        {
            "SMS_BACKEND": "tencent",
            "TENCENT_SECRET_ID": DEFAULT_SECRET_ID,
            "TENCENT_SECRET_KEY": DEFAULT_SECRET_KEY,
            "TENCENT_SMS_SDK_APP_ID": DEFAULT_APP_ID,
            "TENCENT_SMS_SIGN_NAME": DEFAULT_SIGN,
            "TENCENT_SMS_ENDPOINT": api.url,
            "TENCENT_SMS_TIMEOUT": "1",
            "TENCENT_SMS_PARAM_MAX_CHARS": "30",
            "SMS_TEMPLATES": templates_json(TENCENT_TEMPLATES),
        },
    )
    state.configure(
        {
            "status_url": f"{web.url}/sms/tencent/status?secret={CALLBACK_SECRET}",
            "reply_url": f"{web.url}/sms/tencent/reply?secret={CALLBACK_SECRET}",
        }
    )
    try:
        with app.app_context():
            yield ProviderEnv(app=app, state=state, api=api, web=web)
            db.session.remove()
    finally:
        state.close()
        for handle in reversed(handles):
            handle.stop()
