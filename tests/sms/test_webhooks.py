"""Twilio's webhooks over real HTTP: signatures, delivery statuses and error codes, inbound keywords."""

from __future__ import annotations

from datetime import timedelta

import pytest
import requests
from sqlalchemy import func, select

from app.extensions import db
from app.models import AuditEntry, InboundMessage, OutboundMessage, Participant, SmsStatusEvent, utcnow
from app.sms.planner import plan_due
from app.sms.reconcile import reconcile_stuck
from app.sms.sender import send_due
from devservers.twilio_api import twilio_signature
from tests.sms.conftest import ACCOUNT_SID, AUTH_TOKEN, FROM_NUMBER, NOW, open_visit

TABLES = (InboundMessage, OutboundMessage, SmsStatusEvent, AuditEntry, Participant)


def _counts() -> dict[str, int]:
    db.session.expire_all()
    counts = {t.__tablename__: db.session.scalar(select(func.count()).select_from(t)) for t in TABLES}
    counts["opted_out"] = db.session.scalar(
        select(func.count()).select_from(Participant).where(Participant.opted_out)
    )
    return counts


def _inbound_params(sid: str, from_: str, body: str) -> dict[str, str]:
    return {
        "MessageSid": sid,
        "SmsSid": sid,
        "AccountSid": ACCOUNT_SID,
        "From": from_,
        "To": FROM_NUMBER,
        "Body": body,
    }


@pytest.mark.parametrize("path", ["/sms/twilio/status", "/sms/twilio/inbound"])
def test_unsigned_and_forged_webhooks_get_403_and_change_nothing(twilio_server, path):
    participant, _ = open_visit()
    before = _counts()
    url = twilio_server.web.url + path
    params = _inbound_params("SM" + "a" * 32, participant.phone_e164, "STOP")
    params.update({"MessageStatus": "delivered"})
    good = twilio_signature(AUTH_TOKEN, url, params)
    attempts = [
        {},  # unsigned
        {"X-Twilio-Signature": "bm90IGEgc2lnbmF0dXJl"},
        {"X-Twilio-Signature": twilio_signature("0" * 32, url, params)},  # another account's token
        {"X-Twilio-Signature": twilio_signature(AUTH_TOKEN, "https://evil.example" + path, params)},
    ]
    for headers in attempts:
        assert requests.post(url, data=params, headers=headers, timeout=5).status_code == 403
    tampered = dict(params, Body="START", MessageStatus="failed")
    assert (
        requests.post(url, data=tampered, headers={"X-Twilio-Signature": good}, timeout=5).status_code == 403
    )
    assert _counts() == before
    # The same request, correctly signed, is accepted: the 403s were about the signature.
    assert requests.post(url, data=params, headers={"X-Twilio-Signature": good}, timeout=5).status_code in (
        200,
        204,
    )


def test_signature_uses_the_public_url_not_the_one_flask_sees(twilio_env_factory):
    env = twilio_env_factory()
    public = "https://followup.example-hospital.org.cn"
    env.app.config["PUBLIC_BASE_URL"] = public  # behind the hospital's proxy
    params = {"MessageSid": "SM" + "b" * 32, "MessageStatus": "sent", "AccountSid": ACCOUNT_SID}
    local = env.web.url + "/sms/twilio/status?x=1"
    signed_local = twilio_signature(AUTH_TOKEN, local, params)
    signed_public = twilio_signature(AUTH_TOKEN, public + "/sms/twilio/status?x=1", params)
    assert (
        requests.post(local, data=params, headers={"X-Twilio-Signature": signed_local}, timeout=5).status_code
        == 403
    )
    assert (
        requests.post(
            local, data=params, headers={"X-Twilio-Signature": signed_public}, timeout=5
        ).status_code
        == 204
    )


def test_statuses_follow_the_provider_through_callbacks(twilio_server):
    _participant, _ = open_visit()
    plan_due(NOW)
    send_due(NOW)
    (message,) = twilio_server.state.messages
    twilio_server.state.wait_for_status(message.sid, "delivered")
    twilio_server.state.wait_idle()
    reconcile_stuck(NOW)
    db.session.expire_all()
    row = db.session.scalar(select(OutboundMessage))
    assert row.status == "delivered" and row.error_code is None
    assert all(w.status_code == 204 for w in twilio_server.state.webhooks)


def test_statuses_never_go_backwards(twilio_server):
    open_visit()
    plan_due(NOW)
    twilio_server.state.auto_advance = False
    send_due(NOW)
    (message,) = twilio_server.state.messages
    sid = message.sid
    url = twilio_server.status_url
    for status in ("delivered", "sent", "queued"):
        params = {"MessageSid": sid, "MessageStatus": status, "AccountSid": ACCOUNT_SID}
        requests.post(
            url,
            data=params,
            headers={"X-Twilio-Signature": twilio_signature(AUTH_TOKEN, url, params)},
            timeout=5,
        )
    db.session.expire_all()
    assert db.session.scalar(select(OutboundMessage.status)) == "delivered"


def _send_one_to(env, participant_phone_outcome: dict, **visit_kw):
    participant, visit = open_visit(**visit_kw)
    env.state.set_outcome(participant.phone_e164, **participant_phone_outcome)
    plan_due(NOW)
    send_due(NOW)
    env.state.wait_idle()
    reconcile_stuck(NOW)
    db.session.expire_all()
    return db.session.get(Participant, participant.id), visit


def test_21610_at_send_opts_the_participant_out(twilio_server):
    participant, visit = _send_one_to(twilio_server, {"create_error": 21610})
    row = db.session.scalar(select(OutboundMessage).where(OutboundMessage.visit_id == visit.id))
    assert row.status == "failed" and row.error_code == "21610"
    assert participant.opted_out
    assert db.session.scalar(select(AuditEntry).where(AuditEntry.action == "sms.opted_out")) is not None


def test_21211_invalid_number_stops_further_sends(twilio_server):
    participant, _visit = _send_one_to(twilio_server, {"create_error": 21211})
    assert participant.phone_status == "invalid" and "21211" in participant.phone_error
    later = NOW + timedelta(days=3)  # r1 is due: nothing goes to that number again
    plan_due(later)
    send_due(later)
    assert len(twilio_server.state.messages) == 0
    assert len(twilio_server.state.create_timestamps) == 1


def test_30006_landline_marks_the_number_unusable(twilio_server):
    participant, _ = _send_one_to(twilio_server, {"error_code": 30006})
    row = db.session.scalar(select(OutboundMessage))
    assert row.status == "undelivered" and row.error_code == "30006"
    assert participant.phone_status == "unusable"


def test_30003_is_retried_once_at_the_next_slot_then_flagged(twilio_server):
    participant, _visit = _send_one_to(twilio_server, {"error_code": 30003})
    assert participant.phone_status == "ok"  # once: the next reminder slot tries again
    assert db.session.scalar(select(AuditEntry).where(AuditEntry.action == "sms.unreachable")) is not None
    later = NOW + timedelta(days=3)
    plan_due(later)
    send_due(later)
    twilio_server.state.wait_idle()
    reconcile_stuck(later)  # the next pass applies a callback that raced its SID's commit
    db.session.expire_all()
    assert len(twilio_server.state.messages) == 2
    participant = db.session.get(Participant, participant.id)
    assert participant.phone_status == "unusable" and "two texts" in participant.phone_error
    assert db.session.scalar(select(AuditEntry).where(AuditEntry.action == "sms.phone_flagged")) is not None


def _text_in(env, phone: str, body: str, sid: str | None = None):
    return env.state.simulate_inbound(env.inbound_url, phone, FROM_NUMBER, body, message_sid=sid)


@pytest.mark.parametrize(
    ("language", "word", "reply_part"),
    [
        ("en", "STOP", "no more texts"),
        ("en", " stop ", "no more texts"),
        ("en", "Unsubscribe", "no more texts"),
        ("en", "QUIT", "no more texts"),
        ("zh", "退订", "不再收到"),
        ("zh", "TD", "不再收到"),
        ("zh", "STOP", "不再收到"),
    ],
)
def test_stop_opts_out_in_both_languages(twilio_server, language, word, reply_part):
    participant, _visit = open_visit(language=language)
    plan_due(NOW)  # a reminder is pending when STOP arrives
    result = _text_in(twilio_server, participant.phone_e164, word)
    assert result.status_code == 200 and "xml" in result.content_type
    assert reply_part in result.response_body
    db.session.expire_all()
    assert db.session.get(Participant, participant.id).opted_out
    assert db.session.scalar(select(OutboundMessage.status)) == "cancelled"
    assert db.session.scalar(select(AuditEntry).where(AuditEntry.action == "sms.opted_out")) is not None
    send_due(NOW)
    assert twilio_server.state.messages == []


@pytest.mark.parametrize(("language", "reply_part"), [("en", "on again"), ("zh", "已恢复")])
def test_start_opts_back_in(twilio_server, language, reply_part):
    participant, _ = open_visit(language=language)
    _text_in(twilio_server, participant.phone_e164, "STOP")
    result = _text_in(twilio_server, participant.phone_e164, "start")
    assert reply_part in result.response_body
    db.session.expire_all()
    assert not db.session.get(Participant, participant.id).opted_out
    assert db.session.scalar(select(AuditEntry).where(AuditEntry.action == "sms.opted_in")) is not None


@pytest.mark.parametrize(
    ("language", "reply_part"), [("en", "Call the study team on"), ("zh", "请致电研究团队")]
)
def test_help_replies_with_the_study_contact(twilio_server, language, reply_part):
    participant, _ = open_visit(language=language)
    result = _text_in(twilio_server, participant.phone_e164, "HELP")
    assert reply_part in result.response_body
    assert twilio_server.app.config["STUDY_PHONE"] in result.response_body


def test_duplicate_delivery_is_processed_once(twilio_server):
    participant, _ = open_visit()
    first = _text_in(twilio_server, participant.phone_e164, "STOP", sid="SM" + "c" * 32)
    second = _text_in(twilio_server, participant.phone_e164, "STOP", sid="SM" + "c" * 32)
    assert first.status_code == second.status_code == 200
    assert "<Message>" in first.response_body and "<Message>" not in second.response_body
    assert db.session.scalar(select(func.count()).select_from(InboundMessage)) == 1
    assert (
        db.session.scalar(
            select(func.count()).select_from(AuditEntry).where(AuditEntry.action == "sms.opted_out")
        )
        == 1
    )


def test_other_texts_are_kept_and_answered_once_per_visit(twilio_server):
    participant, visit = open_visit(language="zh")
    first = _text_in(twilio_server, participant.phone_e164, "我今天可以填吗？")
    assert f"{twilio_server.web.url}/s/" in first.response_body and "随访问卷" in first.response_body
    second = _text_in(twilio_server, participant.phone_e164, "好的，谢谢")
    assert "<Message>" not in second.response_body
    stored = db.session.scalars(select(InboundMessage.body).order_by(InboundMessage.id)).all()
    assert stored == ["我今天可以填吗？", "好的，谢谢"]
    # The link in the reply works: it opens this visit's questionnaire.
    link = first.response_body.split("/s/")[1].split()[0].split("<")[0]
    from app.participants.links import usable_link

    found = usable_link(link, utcnow() if visit.is_open_at(utcnow()) else visit.opens_at)
    assert found is not None and found.visit_id == visit.id


def test_unknown_sender_gets_a_help_line_once_a_day(twilio_server):
    first = _text_in(twilio_server, "+8613800138999", "hello?")
    second = _text_in(twilio_server, "+8613800138999", "hello again")
    assert "does not read replies" in first.response_body
    assert "<Message>" not in second.response_body
    assert db.session.scalar(select(func.count()).select_from(InboundMessage)) == 2
