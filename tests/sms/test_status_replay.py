"""A replayed or repeated signed status callback is stored once, over real HTTP against the served app."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import requests
from sqlalchemy import select

from app.extensions import db
from app.models import OutboundMessage, SmsStatusEvent
from app.sms.planner import plan_due
from app.sms.sender import send_due
from devservers.twilio_api import twilio_signature
from tests.sms.conftest import ACCOUNT_SID, AUTH_TOKEN, NOW, open_visit


def _post_status(env, sid: str, status: str, error_code: str | None = None) -> int:
    """POST one correctly signed status callback, as Twilio sends it; the response's status code."""
    params = {"MessageSid": sid, "MessageStatus": status, "AccountSid": ACCOUNT_SID}
    if error_code:
        params["ErrorCode"] = error_code
    url = env.status_url
    response = requests.post(
        url,
        data=params,
        headers={"X-Twilio-Signature": twilio_signature(AUTH_TOKEN, url, params)},
        timeout=10,
    )
    return response.status_code


def _events(sid: str) -> list[tuple[str, str, bool]]:
    db.session.expire_all()
    rows = db.session.execute(
        select(SmsStatusEvent.status, SmsStatusEvent.error_code, SmsStatusEvent.applied)
        .where(SmsStatusEvent.provider_sid == sid)
        .order_by(SmsStatusEvent.id)
    ).all()
    return [tuple(row) for row in rows]


def _sent_sid(env) -> str:
    """Send one text to a fresh participant; the fake Twilio leaves its status alone."""
    open_visit()
    plan_due(NOW)
    env.state.auto_advance = False
    send_due(NOW)
    (message,) = env.state.messages
    return message.sid


def test_a_replayed_signed_status_callback_stores_one_event(twilio_server):
    sid = _sent_sid(twilio_server)
    assert [_post_status(twilio_server, sid, "delivered") for _ in range(2)] == [204, 204]
    assert _events(sid) == [("delivered", "", True)]
    assert db.session.scalar(select(OutboundMessage.status)) == "delivered"


def test_same_status_with_another_error_code_is_a_new_event(twilio_server):
    sid = _sent_sid(twilio_server)
    for code in ("30003", "30003", "30005", None, None):
        assert _post_status(twilio_server, sid, "undelivered", code) == 204
    assert _events(sid) == [
        ("undelivered", "30003", True),
        ("undelivered", "30005", True),
        ("undelivered", "", True),
    ]
    row = db.session.scalar(select(OutboundMessage))
    assert (row.status, row.error_code) == ("undelivered", "30003")


def test_a_replayed_callback_for_an_unknown_sid_is_kept_once_unapplied(twilio_server):
    sid = "SM" + "d" * 32
    assert [_post_status(twilio_server, sid, "sent") for _ in range(2)] == [204, 204]
    assert _events(sid) == [("sent", "", False)]


def test_concurrent_identical_callbacks_store_one_event(twilio_server):
    sid = _sent_sid(twilio_server)
    with ThreadPoolExecutor(max_workers=6) as pool:
        codes = list(pool.map(lambda _: _post_status(twilio_server, sid, "failed", "21211"), range(6)))
    assert codes == [204] * 6
    assert _events(sid) == [("failed", "21211", True)]
