"""Aliyun and Tencent Cloud callbacks over real HTTP: the secret, bad input, early and repeated receipts."""

from __future__ import annotations

import json

import pytest
import requests
from sqlalchemy import func, select

from app.extensions import db
from app.models import InboundMessage, OutboundMessage, Participant, SmsStatusEvent
from app.sms.inbound import classify
from app.sms.planner import plan_due
from app.sms.sender import send_due
from tests.sms.conftest import NOW, open_visit

ALIYUN_PATHS = ("/sms/aliyun/report", "/sms/aliyun/up")
TENCENT_PATHS = ("/sms/tencent/status", "/sms/tencent/reply")


def _counts() -> dict[str, int]:
    db.session.expire_all()
    tables = (InboundMessage, OutboundMessage, SmsStatusEvent, Participant)
    counts = {t.__tablename__: db.session.scalar(select(func.count()).select_from(t)) for t in tables}
    counts["opted_out"] = db.session.scalar(
        select(func.count()).select_from(Participant).where(Participant.opted_out)
    )
    return counts


def _report(biz_id: str, out_id: str, success: bool = True, err_code: str = "DELIVERED") -> dict:
    return {
        "phone_number": "13800138123",
        "send_time": "2026-11-20 12:00:00",
        "report_time": "2026-11-20 12:00:05",
        "success": success,
        "err_code": err_code,
        "err_msg": "用户接收成功",
        "sms_size": "1",
        "biz_id": biz_id,
        "out_id": out_id,
    }


@pytest.mark.parametrize("path", ALIYUN_PATHS)
def test_aliyun_wrong_or_missing_secret_is_403_and_touches_nothing(aliyun_env, path):
    participant, _ = open_visit()
    before = _counts()
    up = [{"phone_number": participant.phone_e164[3:], "content": "TD", "sequence_id": 1, "send_time": "x"}]
    body = json.dumps(up if path.endswith("up") else [_report("1^0", "1")])
    for secret in (None, "", "wrong", "cb-secret-012345678"):
        assert requests.post(aliyun_env.url(path, secret), data=body, timeout=5).status_code == 403
    assert _counts() == before


@pytest.mark.parametrize("path", TENCENT_PATHS)
def test_tencent_wrong_secret_is_403(tencent_env, path):
    before = _counts()
    assert requests.post(tencent_env.url(path, "nope"), data="[]", timeout=5).status_code == 403
    assert _counts() == before


@pytest.mark.parametrize("body", ["", "not json", "{", "[1, 2", '"a string"', "42"])
def test_malformed_pushes_get_a_clear_400(aliyun_env, body):
    for path in ALIYUN_PATHS:
        answer = requests.post(aliyun_env.url(path), data=body, timeout=5)
        assert answer.status_code == 400
        assert answer.json()["code"] == 1


def test_tencent_malformed_push_answers_in_its_shape(tencent_env):
    answer = requests.post(tencent_env.url("/sms/tencent/status"), data="{{", timeout=5)
    assert answer.status_code == 400 and answer.json()["result"] == 1


def test_unknown_ids_and_junk_items_are_answered_ok_and_stored_once(aliyun_env):
    items = [_report("999^0", "424242"), {"biz_id": ["x"]}, "junk", _report("bad id!", "1"), None]
    for _ in range(2):
        answer = requests.post(aliyun_env.url("/sms/aliyun/report"), json=items, timeout=5)
        assert answer.status_code == 200 and answer.json() == {"code": 0, "msg": "成功"}
    assert _counts()["sms_status_events"] == 1  # the well-formed unknown receipt, kept once for later


def test_a_receipt_before_the_send_returns_is_applied_once_the_sid_is_known(tencent_env):
    _, visit = open_visit(language="zh", days_since_discharge=25)
    status = [{"sid": "early-serial-1", "report_status": "SUCCESS", "errmsg": "DELIVRD", "mobile": "x"}]
    assert requests.post(tencent_env.url("/sms/tencent/status"), json=status, timeout=5).json() == {
        "result": 0,
        "errmsg": "OK",
    }
    plan_due(NOW)
    send_due(NOW)
    row = db.session.scalar(select(OutboundMessage).where(OutboundMessage.visit_id == visit.id))
    from app.sms.delivery import apply_orphan_events

    row.provider_sid = "early-serial-1"  # as if SendSms had answered with this SerialNo
    row.status = "queued"
    db.session.commit()
    apply_orphan_events(NOW)
    db.session.expire_all()
    assert db.session.get(OutboundMessage, row.id).status == "delivered"


def test_ten_thousand_receipts_in_one_push(aliyun_env):
    _, visit = open_visit(language="zh", days_since_discharge=25)
    plan_due(NOW)
    send_due(NOW)
    row = db.session.scalar(select(OutboundMessage).where(OutboundMessage.visit_id == visit.id))
    items = [_report(f"{n}^0", str(n)) for n in range(10_000)]
    items.append(_report(row.provider_sid, str(row.id), success=False, err_code="MK:0001"))
    answer = requests.post(aliyun_env.url("/sms/aliyun/report"), json=items, timeout=120)
    assert answer.status_code == 200 and answer.json()["code"] == 0
    stored = _counts()["sms_status_events"]
    assert stored >= 10_001  # nothing lost
    again = requests.post(aliyun_env.url("/sms/aliyun/report"), json=items, timeout=120)
    assert again.status_code == 200
    assert _counts()["sms_status_events"] == stored  # nothing stored or applied twice


@pytest.mark.parametrize(
    ("text", "keyword"),
    [("TD", "stop"), ("td", "stop"), ("ＴＤ", "stop"), (" 退订 ", "stop"), ("t", "stop"), ("N", "stop"),
     ("ｓｔｏｐ", "stop"), ("Stop.", "stop"), ("START", "start"), ("ＳＴＡＲＴ", "start"), ("你好", None)],
)  # fmt: skip
def test_keywords_in_any_case_and_width(text, keyword):
    assert classify(text) == keyword


def test_aliyun_reply_from_an_unknown_number_is_kept_and_start_opts_back_in(aliyun_env):
    participant, _ = open_visit(language="zh")
    unknown = [{"phone_number": "13800138999", "content": "TD", "sequence_id": 7, "send_time": "x"}]
    assert requests.post(aliyun_env.url("/sms/aliyun/up"), json=unknown, timeout=5).status_code == 200
    assert _counts()["opted_out"] == 0
    local = participant.phone_e164[3:]
    for seq, word in ((8, "退订"), (8, "退订"), (9, "START")):
        item = [{"phone_number": local, "content": word, "sequence_id": seq, "send_time": "x"}]
        assert requests.post(aliyun_env.url("/sms/aliyun/up"), json=item, timeout=5).status_code == 200
    db.session.expire_all()
    assert not db.session.get(Participant, participant.id).opted_out
    assert _counts()["inbound_messages"] == 3  # the repeat of sequence 8 was handled once
