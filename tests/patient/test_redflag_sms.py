"""End to end over real HTTP: a red-flag answer reaches the on-call phones in one send pass, through the
SMS engine and the real twilio client against the local Twilio-compatible server, with the record id only."""

from __future__ import annotations

import re
import socket

import requests
from sqlalchemy import select

from app.extensions import db
from app.models import OutboundMessage, utcnow
from app.questionnaire.store import save_metadata
from app.tick import run_step
from devservers.runner import serve_in_thread
from devservers.twilio_api import TwilioState, create_twilio_app
from tests.factories import GOOD_ANSWERS as GOOD
from tests.patient.conftest import TRIAL, invite, load_metadata

SID = "AC0123456789abcdef0123456789abcdef"  # fictitious
AUTH = "fedcba9876543210fedcba9876543210"  # fictitious
ONCALL = ["+8613800138011", "+8613800138012"]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_red_flag_alert_reaches_oncall_phones_in_one_send_pass(app_factory):
    state = TwilioState({SID: AUTH})
    api = serve_in_thread(create_twilio_app(state=state))
    port = _free_port()
    app = app_factory(
        SMS_BACKEND="twilio",
        TWILIO_ACCOUNT_SID=SID,
        TWILIO_AUTH_TOKEN=AUTH,
        TWILIO_FROM_NUMBER="+15550100",
        TWILIO_API_URL=api.url,
        TWILIO_TIMEOUT="2",
        PUBLIC_BASE_URL=f"http://127.0.0.1:{port}",
        SMS_RATE_PER_SECOND="100",
        ONCALL_PHONES=",".join(ONCALL),
        SMS_SEND_WINDOW="00:00-23:59",
    )
    web = serve_in_thread(app, port=port)
    try:
        with app.app_context():
            save_metadata(load_metadata("trial_project"), TRIAL, utcnow())
            inv = invite()
            inv.participant.record_id = record_id = "FLAG-A1"
            db.session.commit()
            with requests.Session() as browser:
                page = browser.get(f"{web.url}{inv.url}", timeout=10)
                assert page.status_code == 200
                answers = dict(GOOD, fu_spo2="90", fu_comments="private words")
                done = browser.post(f"{web.url}{inv.url}", data=answers, timeout=10)
            assert done.status_code == 200 and "Please get help now" in done.text
            assert re.search(r"tel:120", done.text)
            run_step("send", utcnow())
            db.session.expire_all()
            statuses = db.session.scalars(
                select(OutboundMessage.status).where(OutboundMessage.kind == "redflag_alert")
            ).all()
            assert len(statuses) == 2 and all(s in ("queued", "sent", "delivered") for s in statuses), (
                statuses
            )
        sent = [m for m in state.messages if m.to in ONCALL]
        assert sorted(m.to for m in sent) == ONCALL
        for message in sent:
            assert record_id in message.body
            assert "90" not in message.body and "private" not in message.body and "SpO2" not in message.body
    finally:
        web.stop()
        api.stop()
        state.close()
