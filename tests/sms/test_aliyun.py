"""SMS_BACKEND=aliyun end to end: the real dysmsapi SDK against the local Aliyun server, receipts and replies pushed back."""

from __future__ import annotations

import json

from sqlalchemy import select

from app.extensions import db
from app.models import OutboundMessage, Participant, SystemState
from app.participants.links import find_link
from app.sms import carriers
from app.sms.planner import plan_due
from app.sms.reconcile import reconcile_stuck
from app.sms.sender import send_due
from tests.sms.conftest import NOW, open_visit


def _row(visit_id: int) -> OutboundMessage:
    db.session.expire_all()
    return db.session.scalar(select(OutboundMessage).where(OutboundMessage.visit_id == visit_id))


def test_invite_goes_through_the_registered_template_with_the_documented_parameters(aliyun_env):
    _participant, visit = open_visit(language="zh", days_since_discharge=25)
    plan_due(NOW)
    assert send_due(NOW)["sent"] == 1
    [sms] = aliyun_env.state.messages
    assert sms.template_code == "SMS_470001"
    assert sms.sign_name == "随访研究中心"
    assert set(sms.params) == {"visit", "deadline", "code"}
    assert sms.params["visit"] == "第4周"
    assert sms.params["deadline"].endswith("日") and "月" in sms.params["deadline"]
    link = find_link(sms.params["code"])
    assert link is not None and link.visit_id == visit.id
    assert sms.content.startswith("【随访研究中心】")
    assert sms.out_id == str(_row(visit.id).id)
    row = _row(visit.id)
    assert row.provider_sid == sms.biz_id
    # The local server pushes the receipt at once, often before SendSms has even answered: it is kept and
    # applied whichever comes first (its push thread may still be running when send_due returns).
    aliyun_env.state.wait_idle()
    assert _row(visit.id).status == "delivered"
    # The personal code is never kept on the row, only its hash in survey_links.
    assert row.params["code"] == "[redacted]" and row.params["visit"] == "第4周"


def test_english_has_its_own_template_and_a_later_receipt_is_recorded(aliyun_env):
    _, visit = open_visit(language="en", days_since_discharge=25)
    aliyun_env.state.configure({"report_delay": 30})
    plan_due(NOW)
    send_due(NOW)
    [sms] = aliyun_env.state.messages
    assert sms.template_code == "SMS_470002"
    assert sms.params["visit"] == "week-4"
    aliyun_env.state.report_now(sms.biz_id)
    assert _row(visit.id).status == "delivered"
    # The same receipt pushed again changes nothing.
    aliyun_env.state.report_now(sms.biz_id)
    assert _row(visit.id).status == "delivered"


def test_a_td_reply_stops_every_further_text(aliyun_env):
    participant, _visit = open_visit(language="zh", days_since_discharge=25)
    attempts = aliyun_env.state.simulate_reply(participant.phone_e164, "ＴＤ")
    assert attempts[-1].accepted
    db.session.expire_all()
    assert db.session.get(Participant, participant.id).opted_out
    plan_due(NOW)
    assert send_due(NOW)["sent"] == 0
    assert aliyun_env.state.messages == []


def test_no_duplicate_after_an_ambiguous_failure_the_lookup_finds_the_text(aliyun_env):
    _, visit = open_visit(language="zh", days_since_discharge=25)
    aliyun_env.state.fail_next("accepted-timeout")
    plan_due(NOW)
    assert send_due(NOW)["sent"] == 1
    assert len(aliyun_env.state.messages) == 1  # QuerySendDetails found it by OutId: no second send
    row = _row(visit.id)
    assert row.status in ("sent", "queued", "delivered")
    assert reconcile_stuck(NOW)["released"] == 0


def test_a_500_that_was_taken_is_adopted_not_resent(aliyun_env):
    _, visit = open_visit(language="zh", days_since_discharge=25)
    aliyun_env.state.fail_next("accepted-500")
    plan_due(NOW)
    send_due(NOW)
    assert len(aliyun_env.state.messages) == 1
    assert _row(visit.id).provider_sid is not None


def test_a_bad_template_stops_sending_with_one_alert(aliyun_env, caplog):
    aliyun_env.app.config["SMS_TEMPLATES"] = {
        **aliyun_env.app.config["SMS_TEMPLATES"],
        "invite": {"zh": "SMS_999999"},
    }
    open_visit(language="zh", days_since_discharge=25)
    open_visit(language="zh", days_since_discharge=25)
    plan_due(NOW)
    summary = send_due(NOW)
    assert summary["sent"] == 0 and summary["halted"] >= 1
    assert carriers.halted()
    assert "isv.SMS_TEMPLATE_ILLEGAL" in carriers.halt_reason()
    assert len([r for r in caplog.records if "SMS sending stopped" in r.getMessage()]) == 1
    pending = db.session.scalars(select(OutboundMessage).where(OutboundMessage.kind == "reminder")).all()
    assert {row.status for row in pending} == {"pending"}  # held, never dropped
    # Fixing the setting lifts the halt: the texts go.
    aliyun_env.app.config["SMS_TEMPLATES"] = {
        **aliyun_env.app.config["SMS_TEMPLATES"],
        "invite": {"zh": "SMS_470001"},
    }
    assert not carriers.halted()
    assert send_due(NOW)["sent"] == 2
    assert db.session.get(SystemState, carriers.HALT_KEY) is not None


def test_a_frequency_limit_defers_the_text(aliyun_env):
    participant, visit = open_visit(language="zh", days_since_discharge=25)
    aliyun_env.state.configure(
        {"outcomes": {participant.phone_e164: {"send_error": "isv.BUSINESS_LIMIT_CONTROL"}}}
    )
    plan_due(NOW)
    summary = send_due(NOW)
    assert summary["deferred"] == 1
    row = _row(visit.id)
    assert row.status == "pending" and row.due_at > NOW
    assert row.error_code == "isv.BUSINESS_LIMIT_CONTROL"


def test_a_bad_number_marks_it_invalid(aliyun_env):
    participant, _visit = open_visit(language="zh", days_since_discharge=25)
    aliyun_env.state.configure(
        {"outcomes": {participant.phone_e164: {"send_error": "isv.MOBILE_NUMBER_ILLEGAL"}}}
    )
    plan_due(NOW)
    assert send_due(NOW)["failed"] == 1
    db.session.expire_all()
    assert db.session.get(Participant, participant.id).phone_status == "invalid"


def test_template_param_is_json_of_the_kinds_parameters(aliyun_env):
    from app.sms.message import Message
    from app.sms.providers.aliyun import AliyunProvider

    provider = AliyunProvider.from_config(aliyun_env.app.config)
    message = Message("invite", "zh", {"visit": "第4周", "deadline": "12月5日", "code": "abc", "x": "y"}, "")
    assert json.loads(provider.template_param(message)) == {
        "visit": "第4周",
        "deadline": "12月5日",
        "code": "abc",
    }
