"""The local Aliyun SMS server, driven by the official `alibabacloud-dysmsapi20170525` client over loopback."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest
import requests
from alibabacloud_dysmsapi20170525 import models
from alibabacloud_dysmsapi20170525.client import Client
from alibabacloud_tea_openapi import utils as openapi_utils
from alibabacloud_tea_openapi.exceptions import ClientException, ServerException
from alibabacloud_tea_openapi.utils_models import Config
from darabonba.exceptions import UnretryableException
from flask import Flask, request

from devservers.aliyun_sms import AliyunState, create_aliyun_app
from devservers.runner import ServerHandle, serve_in_thread
from tests.devservers.helpers import free_port, start_cli, stop_quickly, wait_until_serving

KEY_ID = "LTAI5tTestKey000000000001"  # fictitious
KEY_SECRET = "TestSecret0123456789abcdefABCD"  # fictitious
SIGN = "随访研究中心"
INVITE = "SMS_900001"
INVITE_TEXT = "您好，您的${visit}随访已开放，请在${deadline}前填写：https://followup.example.cn/s/${code}"
PLAIN = "SMS_900002"
PATIENT = "13800138001"  # fictitious 138 0013 8xxx
PATIENT_2 = "13800138002"
PATIENT_3 = "13800138003"
PARAMS = {"visit": "第4周", "deadline": "12月5日", "code": "Ab3dEf7hJk9mNp2rSt5vWx"}


@dataclass
class Clock:
    now: datetime = datetime(2024, 3, 1, 9, 0, tzinfo=UTC)  # 17:00 in Beijing

    def __call__(self) -> datetime:
        return self.now


@dataclass
class Receiver:
    """A tiny callback endpoint: records each JSON body; refuses the first `refuse` pushes."""

    handle: ServerHandle
    got: list[tuple[str, list[dict]]] = field(default_factory=list)
    refuse: int = 0

    def url(self, name: str) -> str:
        return f"{self.handle.url}/sms/aliyun/{name}?secret=s3cr3t"

    def wait_for(self, count: int, timeout: float = 5.0) -> None:
        deadline = time.monotonic() + timeout
        while len(self.got) < count and time.monotonic() < deadline:
            time.sleep(0.01)
        assert len(self.got) >= count, self.got


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def state(clock: Clock) -> Iterator[AliyunState]:
    state = AliyunState(
        {KEY_ID: KEY_SECRET},
        sign_names=[SIGN, "另一个签名"],
        templates={INVITE: INVITE_TEXT, PLAIN: "您的随访提醒已更新，请留意。"},
        callback_retry_delay=0.05,
        callback_timeout=2.0,
        hang_seconds=2.0,
        clock=clock,
    )
    yield state
    state.close()


@pytest.fixture
def server(state: AliyunState) -> Iterator[ServerHandle]:
    handle = serve_in_thread(create_aliyun_app(state=state))
    yield handle
    state.close()  # wakes any request parked in a "timeout" fault
    stop_quickly(handle)


def _client(server: ServerHandle, secret: str = KEY_SECRET, key_id: str = KEY_ID, **config) -> Client:
    return Client(
        Config(
            access_key_id=key_id,
            access_key_secret=secret,
            endpoint=f"127.0.0.1:{server.server.server_port}",
            protocol="http",
            **config,
        )
    )


@pytest.fixture
def client(server: ServerHandle) -> Client:
    return _client(server)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    app = Flask("receiver")
    recorder = Receiver(handle=serve_in_thread(app))

    @app.post("/sms/aliyun/<name>")
    def hook(name: str):
        recorder.got.append((name, json.loads(request.get_data())))
        if recorder.refuse > 0:
            recorder.refuse -= 1
            return {"code": 1, "msg": "busy"}, 503
        return {"code": 0, "msg": "成功"}

    yield recorder
    stop_quickly(recorder.handle)


def send(client: Client, phone: str = PATIENT, *, sign: str = SIGN, template: str = INVITE, **extra):
    """SendSms with the fixture's defaults; `params` may be a dict (JSON-encoded) or a raw string."""
    params = extra.pop("params", PARAMS)
    request_ = models.SendSmsRequest(
        phone_numbers=phone,
        sign_name=sign,
        template_code=template,
        template_param=params if isinstance(params, str) or params is None else json.dumps(params),
        **extra,
    )
    return client.send_sms(request_).body


def query(client: Client, phone: str = PATIENT, day: str = "20240301", **extra):
    request_ = models.QuerySendDetailsRequest(
        phone_number=phone, send_date=day, page_size=extra.pop("page_size", 10), current_page=1, **extra
    )
    return client.query_send_details(request_).body


# ---- SendSms -----------------------------------------------------------------------------------


def test_send_ok_renders_signature_and_template(client: Client, state: AliyunState):
    body = send(client, "+86" + PATIENT, out_id="msg-41")

    assert (body.code, body.message) == ("OK", "OK")
    assert body.biz_id.endswith("^0") and body.biz_id[:-2].isdigit()
    assert len(body.request_id) == 36
    [text] = state.messages
    assert (text.phone, text.out_id, text.template_code, text.biz_id) == (
        PATIENT,
        "msg-41",
        INVITE,
        body.biz_id,
    )
    assert text.content == (
        "【随访研究中心】您好，您的第4周随访已开放，请在12月5日前填写：https://followup.example.cn/s/Ab3dEf7hJk9mNp2rSt5vWx"
    )
    assert text.sms_size == 2  # 81 characters: two parts of 67
    assert text.send_date == datetime(2024, 3, 1, 9, 0, tzinfo=UTC)


def test_old_rpc_signature_is_verified_too(server: ServerHandle, state: AliyunState):
    assert send(_client(server, signature_algorithm="v2")).code == "OK"
    with pytest.raises(ClientException) as err:
        send(_client(server, secret="wrong", signature_algorithm="v2"), PATIENT_2)
    assert (err.value.status_code, err.value.code) == (400, "SignatureDoesNotMatch")
    assert "server string to sign is:POST&%2F&AccessKeyId" in err.value.message
    assert len(state.messages) == 1


@pytest.mark.parametrize("number", ["13800138001", "8613800138001", "+8613800138001", "0086 138 0013 8001"])
def test_mainland_numbers_with_or_without_country_code(client: Client, state: AliyunState, number: str):
    assert send(client, number).code == "OK"
    assert state.messages[0].phone == PATIENT


@pytest.mark.parametrize(
    "number", ["1380013800", "138001380011", "23800138001", "12800138001", "+15550100", "x"]
)
def test_bad_number_is_mobile_number_illegal(client: Client, state: AliyunState, number: str):
    body = send(client, number)
    assert (body.code, body.message, body.biz_id) == ("isv.MOBILE_NUMBER_ILLEGAL", "非法手机号", None)
    assert state.messages == []


@pytest.mark.parametrize(
    ("change", "code", "message"),
    [
        ({"sign": "未登记的签名"}, "isv.SMS_SIGNATURE_ILLEGAL", "该账号下找不到对应签名"),
        ({"template": "SMS_000000"}, "isv.SMS_TEMPLATE_ILLEGAL", "该账号下找不到对应模板"),
        (
            {"params": {"visit": "第4周", "code": "x"}},
            "isv.TEMPLATE_MISSING_PARAMETERS",
            "模板变量缺少对应参数值",
        ),
        ({"params": None}, "isv.TEMPLATE_MISSING_PARAMETERS", "模板变量缺少对应参数值"),
        ({"params": "{visit: 第4周"}, "isv.INVALID_JSON_PARAM", "JSON参数不合法，只接受字符串值"),
        ({"params": '{"visit": 4, "deadline": "d", "code": "c"}'}, "isv.INVALID_JSON_PARAM", None),
        ({"params": '["第4周"]'}, "isv.INVALID_JSON_PARAM", None),
        ({"params": {**PARAMS, "visit": "问卷调查"}}, "isv.BLACK_KEY_CONTROL_LIMIT", "黑名单管控"),
        (
            {"params": {**PARAMS, "code": "evil.example.com/x"}},
            "isv.PARAM_NOT_SUPPORT_URL",
            "不支持url为变量",
        ),
        ({"params": {**PARAMS, "visit": "长" * 36}}, "isv.PARAM_LENGTH_LIMIT", "参数超出长度限制"),
    ],
)
def test_refusals_carry_aliyuns_codes_and_texts(client: Client, state: AliyunState, change, code, message):
    body = send(client, **change)
    assert body.code == code
    assert message is None or body.message == message
    assert body.biz_id is None and body.request_id
    assert state.messages == [] and state.counters()[f"refused_{code}"] == 1


def test_banned_word_in_the_fixed_text_is_refused_too(client: Client, state: AliyunState):
    with pytest.raises(ValueError, match="【】"):
        state.add_template("SMS_BAD", "【医院】您好")
    with pytest.raises(ValueError, match="only of variables"):
        state.add_template("SMS_BAD", "${visit}${code}")
    state.add_template("SMS_900009", "请完成本次问卷调查")
    assert send(client, template="SMS_900009", params=None).code == "isv.BLACK_KEY_CONTROL_LIMIT"
    state.configure({"banned_words": []})
    assert send(client, template="SMS_900009", params=None).code == "OK"


def test_frequency_limits_per_number_and_signature(client: Client, state: AliyunState, clock: Clock):
    assert send(client).code == "OK"
    second = send(client)
    assert (second.code, second.message) == ("isv.BUSINESS_LIMIT_CONTROL", "触发分钟级流控Permits:1")
    assert send(client, PATIENT_2).code == "OK"  # another number
    assert send(client, sign="另一个签名").code == "OK"  # another signature
    for _ in range(4):
        clock.now += timedelta(seconds=61)
        assert send(client).code == "OK"
    clock.now += timedelta(seconds=61)
    assert send(client).message == "触发小时级流控Permits:5"
    for _ in range(5):
        clock.now += timedelta(minutes=61)
        assert send(client).code == "OK"
    clock.now += timedelta(minutes=61)
    assert send(client).message == "触发天级流控Permits:10"
    clock.now += timedelta(hours=24)
    assert send(client).code == "OK"


def test_frequency_limits_are_configurable(client: Client, state: AliyunState):
    state.configure({"limits": {"minute": 0, "hour": 2}})
    assert [send(client).code for _ in range(3)] == ["OK", "OK", "isv.BUSINESS_LIMIT_CONTROL"]


def test_outcome_can_refuse_one_number(client: Client, state: AliyunState):
    state.set_outcome(PATIENT_3, send_error="isv.BUSINESS_LIMIT_CONTROL")
    body = send(client, PATIENT_3)
    assert (body.code, body.message) == ("isv.BUSINESS_LIMIT_CONTROL", "触发天级流控Permits:10")


def test_missing_parameter_is_a_gateway_error(client: Client):
    with pytest.raises(ClientException) as err:
        client.send_sms(models.SendSmsRequest(phone_numbers=PATIENT, template_code=INVITE))
    assert (err.value.status_code, err.value.code) == (400, "MissingParameter")
    assert "SignName is mandatory for this action." in err.value.message


# ---- the gateway ---------------------------------------------------------------------------------


def test_wrong_secret_is_signature_does_not_match(server: ServerHandle, state: AliyunState):
    with pytest.raises(ClientException) as err:
        send(_client(server, secret="not-the-secret"))
    assert (err.value.status_code, err.value.code) == (400, "SignatureDoesNotMatch")
    assert (
        "Specified signature does not match our calculation. server StringToSign is [ACS3-HMAC-SHA256 "
        in (err.value.message)
    )
    assert err.value.data["HostId"] == "dysmsapi.aliyuncs.com" and err.value.request_id
    assert state.messages == [] and state.counters()["signature_mismatches"] == 1


def test_unknown_access_key_is_not_found(server: ServerHandle, state: AliyunState):
    with pytest.raises(ClientException) as err:
        query(_client(server, key_id="LTAI5tUnknown000000000000"))
    assert (err.value.status_code, err.value.code) == (404, "InvalidAccessKeyId.NotFound")
    assert "Specified access key is not found." in err.value.message


def test_replayed_nonce_and_stale_date_are_refused(client: Client, state: AliyunState, monkeypatch):
    monkeypatch.setattr(openapi_utils.Utils, "get_nonce", staticmethod(lambda: "fixed-nonce"))
    assert send(client).code == "OK"
    with pytest.raises(ClientException) as err:
        send(client, PATIENT_2)
    assert err.value.code == "SignatureNonceUsed"
    monkeypatch.undo()
    state.gateway.wall_clock = lambda: datetime.now(UTC) + timedelta(minutes=16)
    with pytest.raises(ClientException) as err:
        send(client, PATIENT_2)
    assert (err.value.status_code, err.value.code) == (400, "InvalidTimeStamp.Expired")


def test_unsigned_and_unknown_requests(server: ServerHandle):
    anonymous = requests.post(f"{server.url}/?PhoneNumbers={PATIENT}", timeout=5)
    assert anonymous.status_code == 400 and anonymous.json()["Code"] == "MissingAccessKeyId"
    elsewhere = requests.get(f"{server.url}/v1/sms", timeout=5)
    assert elsewhere.status_code == 404 and elsewhere.json()["Code"] == "InvalidAction.NotFound"


# ---- QuerySendDetails ------------------------------------------------------------------------------


def test_query_finds_the_text_by_biz_id_and_out_id(client: Client, state: AliyunState, clock: Clock):
    state.configure({"limits": {"minute": 0}, "report_delay": 60})
    first = send(client, out_id="msg-1").biz_id
    clock.now += timedelta(minutes=5)
    second = send(client, out_id="msg-2").biz_id
    send(client, PATIENT_2, out_id="msg-3")

    found = query(client)
    assert found.code == "OK" and found.total_count == "2"
    details = found.sms_send_detail_dtos.sms_send_detail_dto
    assert [d.out_id for d in details] == ["msg-2", "msg-1"]  # newest first
    latest = details[0]
    assert (latest.phone_num, latest.send_status, latest.err_code, latest.template_code) == (
        PATIENT,
        1,
        "",
        INVITE,
    )
    assert (latest.send_date, latest.receive_date) == ("2024-03-01 17:05:00", "")
    assert latest.content.startswith("【随访研究中心】您好，您的第4周随访")

    only = query(client, biz_id=first).sms_send_detail_dtos.sms_send_detail_dto
    assert [d.out_id for d in only] == ["msg-1"]
    page_2 = client.query_send_details(
        models.QuerySendDetailsRequest(
            phone_number=PATIENT, send_date="20240301", page_size=1, current_page=2
        )
    ).body
    assert page_2.total_count == "2" and [
        d.out_id for d in page_2.sms_send_detail_dtos.sms_send_detail_dto
    ] == ["msg-1"]
    assert query(client, day="20240302").total_count == "0"

    state.report_now(second)
    delivered = query(client, biz_id=second).sms_send_detail_dtos.sms_send_detail_dto[0]
    assert (delivered.send_status, delivered.err_code, delivered.receive_date) == (
        3,
        "DELIVERED",
        "2024-03-01 17:05:00",
    )


def test_query_day_is_beijing_time(client: Client, clock: Clock):
    clock.now = datetime(2024, 3, 1, 16, 30, tzinfo=UTC)  # 00:30 on 2 March in Beijing
    send(client)
    assert query(client, day="20240301").total_count == "0"
    assert query(client, day="20240302").total_count == "1"


def test_query_with_bad_arguments(client: Client):
    assert query(client, phone="12345").code == "isv.MOBILE_NUMBER_ILLEGAL"
    assert query(client, day="2024-03-01").code == "isv.INVALID_PARAMETERS"
    assert query(client, page_size=51).code == "isv.INVALID_PARAMETERS"


# ---- receipts and replies --------------------------------------------------------------------------


def test_receipts_pushed_for_delivered_and_failed(
    client: Client, state: AliyunState, receiver: Receiver, clock: Clock
):
    state.configure(
        {"report_url": receiver.url("report"), "outcomes": {PATIENT_2: {"err_code": "MOBILE_NOT_ON_SERVICE"}}}
    )
    ok = send(client, out_id="msg-1").biz_id
    failed = send(client, PATIENT_2, out_id="msg-2").biz_id
    state.wait_idle()

    reports = {r["biz_id"]: r for _, batch in receiver.got for r in batch}
    assert {name for name, _ in receiver.got} == {"report"}
    assert reports[ok] == {
        "phone_number": PATIENT,
        "send_time": "2024-03-01 17:00:00",
        "report_time": "2024-03-01 17:00:00",
        "success": True,
        "err_code": "DELIVERED",
        "err_msg": "用户接收成功",
        "sms_size": "2",
        "biz_id": ok,
        "out_id": "msg-1",
    }
    assert (reports[failed]["success"], reports[failed]["err_code"], reports[failed]["err_msg"]) == (
        False,
        "MOBILE_NOT_ON_SERVICE",
        "停机",
    )
    assert query(client, PATIENT_2).sms_send_detail_dtos.sms_send_detail_dto[0].send_status == 2
    assert all(c.accepted for c in state.callbacks)


def test_pending_outcome_never_reports(client: Client, state: AliyunState, receiver: Receiver):
    state.configure({"report_url": receiver.url("report"), "outcomes": {PATIENT: {"status": "pending"}}})
    send(client)
    state.wait_idle()
    assert receiver.got == [] and query(client).sms_send_detail_dtos.sms_send_detail_dto[0].send_status == 1


def test_refused_receipt_is_retried_a_bounded_number_of_times(
    client: Client, state: AliyunState, receiver: Receiver
):
    state.configure({"report_url": receiver.url("report")})
    receiver.refuse = 2
    send(client)
    receiver.wait_for(3)
    state.wait_idle()
    assert [c.accepted for c in state.callbacks] == [False, False, True]
    assert [c.attempt for c in state.callbacks] == [1, 2, 3]

    receiver.refuse = 99
    send(client, PATIENT_2)
    receiver.wait_for(6)
    state.wait_idle()
    time.sleep(0.2)
    assert len(receiver.got) == 6  # three attempts, then given up


def test_reply_pushes_sms_up(client: Client, state: AliyunState, receiver: Receiver, server: ServerHandle):
    state.configure({"up_url": receiver.url("up")})
    send(client)
    [attempt] = state.simulate_reply(PATIENT, "TD")
    assert attempt.accepted and attempt.response_body
    name, [up] = receiver.got[-1]
    assert name == "up"
    assert {k: up[k] for k in ("phone_number", "send_time", "content", "sign_name", "dest_code")} == {
        "phone_number": PATIENT,
        "send_time": "2024-03-01 17:00:00",
        "content": "TD",
        "sign_name": SIGN,
        "dest_code": "",
    }
    assert isinstance(up["sequence_id"], int)

    over_http = requests.post(
        f"{server.url}/_control/reply", json={"phone": "+86" + PATIENT_2, "content": "退订"}, timeout=5
    ).json()
    assert over_http["accepted"] is True and receiver.got[-1][1][0]["content"] == "退订"
    assert receiver.got[-1][1][0]["phone_number"] == PATIENT_2


def test_refused_reply_is_retried(state: AliyunState, receiver: Receiver):
    receiver.refuse = 1
    attempts = state.simulate_reply(PATIENT, "N", url=receiver.url("up"))
    assert [a.accepted for a in attempts] == [False, True] and attempts[0].status_code == 503


# ---- switches ----------------------------------------------------------------------------------


def test_latency_switch(client: Client, state: AliyunState):
    state.configure({"latency": 0.3})
    started = time.monotonic()
    assert send(client).code == "OK"
    assert time.monotonic() - started >= 0.3


@pytest.mark.parametrize(
    ("kind", "error", "status", "code"),
    [
        ("throttling", ClientException, 400, "Throttling.User"),
        ("500", ServerException, 500, "InternalError"),
        ("503", ServerException, 503, "ServiceUnavailable"),
    ],
)
def test_failure_switch(client: Client, state: AliyunState, kind, error, status, code):
    state.fail_next(kind, times=2)
    for _ in range(2):
        with pytest.raises(error) as err:
            send(client)
        assert (err.value.status_code, err.value.code) == (status, code)
    assert state.messages == []
    assert send(client).code == "OK"


def test_timeout_switch_hangs(server: ServerHandle, state: AliyunState):
    state.fail_next("timeout")
    with pytest.raises(UnretryableException):
        send(_client(server, read_timeout=300))
    assert state.messages == []


def test_accepted_then_lost_answer_is_found_by_query(client: Client, state: AliyunState):
    state.fail_next("accepted-500")
    with pytest.raises(ServerException):
        send(client, out_id="msg-9")
    [detail] = query(client).sms_send_detail_dtos.sms_send_detail_dto
    assert detail.out_id == "msg-9"


def test_control_endpoint(server: ServerHandle, client: Client, state: AliyunState):
    doc = {
        "fail": "throttling",
        "times": 1,
        "outcomes": {PATIENT: {"status": "failed"}},
        "limits": {"day": 3},
    }
    counters = requests.post(f"{server.url}/_control", json=doc, timeout=5).json()
    assert counters["pending_faults"] == ["throttling"] and counters["limits"]["day"] == 3
    with pytest.raises(ClientException):
        send(client)
    send(client)
    counters = requests.get(f"{server.url}/_control", timeout=5).json()
    assert counters["messages"] == 1 and counters["by_status"] == {"failed": 1}
    assert PATIENT not in json.dumps(counters)
    bad = requests.post(f"{server.url}/_control", json={"nonsense": 1}, timeout=5)
    assert bad.status_code == 400


# ---- the command line ----------------------------------------------------------------------------


def test_cli_serves_on_loopback_and_logs_masked():
    port = free_port()
    proc = start_cli(
        "devservers.aliyun_sms",
        port,
        "--access-key-id",
        KEY_ID,
        "--access-key-secret",
        KEY_SECRET,
        "--sign-name",
        SIGN,
        "--template",
        f"{INVITE}={INVITE_TEXT}",
    )
    try:
        wait_until_serving(port)
        cli = Client(
            Config(
                access_key_id=KEY_ID,
                access_key_secret=KEY_SECRET,
                endpoint=f"127.0.0.1:{port}",
                protocol="http",
            )
        )
        assert send(cli).code == "OK"
    finally:
        proc.terminate()
        output, _ = proc.communicate(timeout=10)
    assert proc.returncode == 0
    assert f"http://127.0.0.1:{port}" in output and "to=*********01" in output
    assert PATIENT not in output and "38001" not in output and "第4周" not in output
