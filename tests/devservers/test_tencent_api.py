"""The local Tencent Cloud SMS server, driven by the real `tencentcloud-sdk-python-sms` client over loopback."""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests
from flask import Flask, jsonify, request
from tencentcloud.common import credential
from tencentcloud.common.abstract_client import AbstractClient
from tencentcloud.common.exception.tencent_cloud_sdk_exception import TencentCloudSDKException
from tencentcloud.common.http.request import RequestInternal
from tencentcloud.common.profile.client_profile import ClientProfile
from tencentcloud.common.profile.http_profile import HttpProfile
from tencentcloud.sms.v20210111 import models
from tencentcloud.sms.v20210111.sms_client import SmsClient

from devservers.runner import ServerHandle, serve_in_thread
from devservers.tencent_sms import Template, TencentState, create_tencent_app, mask_number, tc3_signature
from tests.devservers.helpers import free_port, start_cli, stop_quickly, wait_until_serving

SECRET_ID = "AKIDtest0000000000000000000000000000"  # fictitious
SECRET_KEY = "testSecretKey000000000000000000000"  # fictitious
OTHER_ID = "AKIDother000000000000000000000000000"
APP_ID = "1400123456"
SIGN = "广州随访"
PATIENT = "+8613800138001"  # fictitious +86 138 0013 8xxx
PATIENT_2 = "+8613800138002"
PATIENT_3 = "+8613800138003"
INVITE = "3000001"
CODE_TPL = "3000002"
ALERT = "3000003"
TEMPLATES = {
    INVITE: Template("您好，您的{1}随访已开放，请于{2}前完成：https://followup.example.cn/s/{3}"),
    CODE_TPL: Template("您的验证码为{1}，5分钟内有效。", verification=True),
    ALERT: Template("随访提示：记录{1}需要关注。"),
}
OK_ANSWER = {"result": 0, "errmsg": "OK"}


@dataclass
class Clock:
    """Wall time plus an offset the test can move; the SDK signs with the real time."""

    offset: float = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset


@dataclass
class Receiver:
    """A tiny callback endpoint: records JSON bodies, answers from a script (default: Tencent's OK)."""

    handle: ServerHandle
    got: list[tuple[str, Any]] = field(default_factory=list)
    answers: deque = field(default_factory=deque)
    arrived: threading.Event = field(default_factory=threading.Event)

    @property
    def url(self) -> str:
        return self.handle.url

    def bodies(self, path: str) -> list[Any]:
        return [body for p, body in self.got if p == path]


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def state(clock: Clock) -> Iterator[TencentState]:
    state = TencentState(
        {SECRET_ID: SECRET_KEY, OTHER_ID: "otherKey"},
        apps=[APP_ID],
        signs=[SIGN],
        templates=TEMPLATES,
        hang_seconds=2.0,
        callback_timeout=1.0,
        retry_delay=0.01,
        clock=clock,
    )
    yield state
    state.close()


@pytest.fixture
def server(state: TencentState) -> Iterator[ServerHandle]:
    handle = serve_in_thread(create_tencent_app(state=state))
    yield handle
    state.close()  # wakes a request parked in a "hang" fault
    stop_quickly(handle)


def _client(server: ServerHandle, secret_id: str = SECRET_ID, key: str = SECRET_KEY, timeout: int = 5):
    profile = HttpProfile(
        endpoint=f"127.0.0.1:{server.server.server_port}", protocol="http", reqTimeout=timeout
    )
    return SmsClient(
        credential.Credential(secret_id, key), "ap-guangzhou", ClientProfile(httpProfile=profile)
    )


@pytest.fixture
def client(server: ServerHandle) -> SmsClient:
    return _client(server)


@pytest.fixture
def receiver(state: TencentState) -> Iterator[Receiver]:
    app = Flask("receiver")
    recorder = Receiver(handle=serve_in_thread(app))

    @app.post("/<name>")
    def record(name: str):
        recorder.got.append((name, request.get_json(force=True)))
        recorder.arrived.set()
        status, body = recorder.answers.popleft() if recorder.answers else (200, OK_ANSWER)
        return jsonify(body), status

    state.configure({"status_url": f"{recorder.url}/status", "reply_url": f"{recorder.url}/reply"})
    yield recorder
    stop_quickly(recorder.handle)


def send(client: SmsClient, numbers: list[str] | None = None, **fields: Any) -> models.SendSmsResponse:
    req = models.SendSmsRequest()
    req.PhoneNumberSet = numbers if numbers is not None else [PATIENT]
    req.SmsSdkAppId = fields.pop("app", APP_ID)
    req.SignName = fields.pop("sign", SIGN)
    req.TemplateId = fields.pop("template", INVITE)
    req.TemplateParamSet = fields.pop("params", ["第4周", "12月5日", "Zk3pQ9"])
    req.SessionContext = fields.pop("context", "msg-1")
    assert not fields
    return client.SendSms(req)


def codes(resp: models.SendSmsResponse) -> list[str]:
    return [s.Code for s in resp.SendStatusSet]


def refused(call: Callable[[], object]) -> TencentCloudSDKException:
    with pytest.raises(TencentCloudSDKException) as err:
        call()
    return err.value


def pull(client: SmsClient, number: str = PATIENT, **fields: Any) -> list[models.PullSmsSendStatus]:
    req = models.PullSmsSendStatusByPhoneNumberRequest()
    req.BeginTime = fields.get("begin", int(time.time()) - 3600)
    req.EndTime = fields.get("end", int(time.time()) + 60)
    req.Offset, req.Limit = fields.get("offset", 0), fields.get("limit", 100)
    req.PhoneNumber, req.SmsSdkAppId = number, fields.get("app", APP_ID)
    return client.PullSmsSendStatusByPhoneNumber(req).PullSmsSendStatusSet


# ---- sending -------------------------------------------------------------------------------------


def test_send_ok_renders_the_template_with_the_signature(client: SmsClient, state: TencentState):
    resp = send(client, [PATIENT, PATIENT_2], context="outbox-17")

    assert codes(resp) == ["Ok", "Ok"] and resp.RequestId
    first = resp.SendStatusSet[0]
    assert (first.PhoneNumber, first.SessionContext, first.Message, first.IsoCode) == (
        PATIENT,
        "outbox-17",
        "send success",
        "CN",
    )
    assert first.Fee == 1 and first.SerialNo
    [stored, _] = state.sent
    assert stored.serial_no == first.SerialNo and stored.phone == PATIENT
    assert (
        stored.content
        == "【广州随访】您好，您的第4周随访已开放，请于12月5日前完成：https://followup.example.cn/s/Zk3pQ9"
    )
    assert state.by_session("outbox-17") == state.sent


def test_fee_counts_parts_of_67_beyond_70_characters(client: SmsClient, state: TencentState):
    state.add_templates({"3000009": "{1}"})
    assert send(client, template="3000009", params=["随" * 64]).SendStatusSet[0].Fee == 1  # 6 + 64 = 70
    assert send(client, [PATIENT_2], template="3000009", params=["访" * 65]).SendStatusSet[0].Fee == 2


def test_domestic_number_forms_are_accepted_like_tencent(client: SmsClient, state: TencentState):
    resp = send(client, ["13800138004", "008613800138005", "8613800138006"])
    assert codes(resp) == ["Ok", "Ok", "Ok"]
    assert [s.phone for s in state.sent] == ["+8613800138004", "+8613800138005", "+8613800138006"]


@pytest.mark.parametrize("number", ["+86138001380", "+8612800138001", "+15550100123", "138-0013-8001", ""])
def test_bad_number_is_refused_per_number(client: SmsClient, state: TencentState, number: str):
    resp = send(client, [number, PATIENT])
    assert codes(resp) == ["InvalidParameterValue.IncorrectPhoneNumber", "Ok"]
    assert resp.SendStatusSet[0].Message == "invalid mobile number" and resp.SendStatusSet[0].SerialNo == ""
    assert len(state.sent) == 1


@pytest.mark.parametrize(
    ("fields", "code"),
    [
        ({"app": "1400999999"}, "InvalidParameterValue.SdkAppIdNotExist"),
        ({"sign": "某某医院"}, "FailedOperation.SignatureIncorrectOrUnapproved"),
        ({"template": "9999999"}, "FailedOperation.TemplateIncorrectOrUnapproved"),
    ],
)
def test_account_level_errors_are_top_level(client: SmsClient, state: TencentState, fields: dict, code: str):
    err = refused(lambda: send(client, **fields))
    assert err.code == code and err.requestId
    assert state.sent == []


def test_empty_and_oversized_number_sets(client: SmsClient):
    assert refused(lambda: send(client, [])).code == "MissingParameter.EmptyPhoneNumberSet"
    many = [f"+8613800138{n:03d}"[:14] for n in range(201)]
    assert refused(lambda: send(client, many)).code == "LimitExceeded.PhoneNumberCountLimit"


@pytest.mark.parametrize(
    ("template", "params", "code"),
    [
        (INVITE, ["第4周", "12月5日"], "FailedOperation.TemplateParamSetNotMatchApprovedTemplate"),
        (INVITE, ["第4周", "12月5日", "a", "b"], "FailedOperation.TemplateParamSetNotMatchApprovedTemplate"),
        (CODE_TPL, ["12ab"], "InvalidParameterValue.TemplateParameterFormatError"),
        (CODE_TPL, ["1234567"], "InvalidParameterValue.TemplateParameterFormatError"),
        (ALERT, ["问卷调查"], "FailedOperation.ContainSensitiveWord"),
        (ALERT, ["https://evil.example.com/x"], "InvalidParameterValue.ProhibitedUseUrlInTemplateParameter"),
        (ALERT, ["见 short.cn 链接"], "InvalidParameterValue.ProhibitedUseUrlInTemplateParameter"),
    ],
)
def test_content_errors_are_per_number(client: SmsClient, state: TencentState, template, params, code):
    resp = send(client, [PATIENT, PATIENT_2], template=template, params=params)
    assert codes(resp) == [code, code]
    assert all(s.Fee == 0 and s.SerialNo == "" for s in resp.SendStatusSet)
    assert state.sent == []


def test_verification_template_takes_up_to_six_digits(client: SmsClient):
    assert codes(send(client, template=CODE_TPL, params=["123456"])) == ["Ok"]


def test_parameter_length_limit_is_a_switch(client: SmsClient, state: TencentState):
    state.configure({"limits": {"max_param_chars": 6}})
    resp = send(client, params=["第4周", "12月5日", "Zk3pQ9x"])
    assert codes(resp) == ["InvalidParameterValue.TemplateParameterLengthLimit"]


# ---- frequency limits ----------------------------------------------------------------------------


def test_same_content_twice_in_30_seconds(client: SmsClient, clock: Clock):
    assert codes(send(client)) == ["Ok"]
    second = send(client)
    assert codes(second) == ["LimitExceeded.PhoneNumberThirtySecondLimit"]
    assert "30 seconds" in second.SendStatusSet[0].Message
    assert codes(send(client, params=["第4周", "12月6日", "Zk3pQ9"])) == ["Ok"]  # other content is fine
    clock.offset = 31
    assert codes(send(client)) == ["Ok"]


def test_daily_limit_per_number(client: SmsClient, state: TencentState):
    state.configure({"limits": {"daily": 3}})
    results = [
        codes(send(client, [PATIENT, PATIENT_2], params=["第4周", f"12月{d}日", "x"]))[0] for d in range(4)
    ]
    assert results == ["Ok", "Ok", "Ok", "LimitExceeded.PhoneNumberDailyLimit"]
    assert codes(send(client, [PATIENT_3], params=["第4周", "12月9日", "x"])) == ["Ok"]


def test_refused_texts_do_not_count_towards_limits(client: SmsClient, state: TencentState):
    state.configure({"limits": {"daily": 1}})
    send(client, template=ALERT, params=["问卷调查"])
    assert codes(send(client)) == ["Ok"]


def test_hourly_limit_is_off_by_default_and_configurable(client: SmsClient, state: TencentState):
    state.configure({"limits": {"hourly": 1}})
    send(client)
    assert codes(send(client, params=["a", "b", "c"])) == ["LimitExceeded.PhoneNumberOneHourLimit"]


def test_per_number_send_code_switch(client: SmsClient, server: ServerHandle):
    requests.post(
        f"{server.url}/_control",
        json={"outcomes": {PATIENT_2: {"send_code": "FailedOperation.PhoneNumberInBlacklist"}}},
        timeout=5,
    ).raise_for_status()
    assert codes(send(client, [PATIENT, PATIENT_2])) == ["Ok", "FailedOperation.PhoneNumberInBlacklist"]


# ---- authentication ------------------------------------------------------------------------------


def test_wrong_secret_key_is_signature_failure(server: ServerHandle, state: TencentState):
    err = refused(lambda: send(_client(server, key="not-the-key")))
    assert err.code == "AuthFailure.SignatureFailure"
    assert "credentials could not be validated" in err.message
    assert state.sent == []


def test_unknown_secret_id(server: ServerHandle):
    err = refused(lambda: send(_client(server, secret_id="AKIDnobody0000000000000000000000000")))
    assert err.code == "AuthFailure.SecretIdNotFound"


def test_other_key_pairs_work_with_their_own_key(server: ServerHandle):
    assert codes(send(_client(server, secret_id=OTHER_ID, key="otherKey"))) == ["Ok"]
    assert refused(lambda: send(_client(server, secret_id=OTHER_ID))).code == "AuthFailure.SignatureFailure"


def test_timestamp_over_five_minutes_off_is_signature_expire(client: SmsClient, clock: Clock):
    clock.offset = 301
    assert refused(lambda: send(client)).code == "AuthFailure.SignatureExpire"
    clock.offset = -290
    assert codes(send(client)) == ["Ok"]


def test_unsigned_and_tampered_requests(server: ServerHandle, client: SmsClient):
    raw = requests.post(server.url + "/", json={}, headers={"X-TC-Action": "SendSms"}, timeout=5)
    assert raw.status_code == 200 and raw.headers["Content-Type"] == "application/json"
    assert raw.json()["Response"]["Error"]["Code"] == "AuthFailure.InvalidAuthorization"

    # Replay a genuine signature over a different body: the payload hash no longer matches.
    req = RequestInternal(f"127.0.0.1:{server.server.server_port}", "POST", "/", header={})
    client._build_req_with_tc3_signature("SendSms", {"PhoneNumberSet": [PATIENT]}, req)
    forged = requests.post(
        server.url + "/", data=b'{"PhoneNumberSet": ["+8613800138999"]}', headers=req.header, timeout=5
    )
    assert forged.json()["Response"]["Error"]["Code"] == "AuthFailure.SignatureFailure"


def test_signature_matches_the_sdks_own(client: SmsClient, server: ServerHandle):
    req = RequestInternal(f"127.0.0.1:{server.server.server_port}", "POST", "/", header={})
    client._build_req_with_tc3_signature("SendSms", {"SignName": "随访"}, req)
    assert (
        req.header["Host"] == f"127.0.0.1:{server.server.server_port}"
    )  # the port is part of the signed host
    expected = req.header["Authorization"].rsplit("Signature=", 1)[1]
    ours = tc3_signature(
        SECRET_KEY,
        method="POST",
        uri="/",
        query="",
        headers={"content-type": req.header["Content-Type"], "host": req.header["Host"]},
        signed_headers="content-type;host",
        payload=req.data.encode(),
        timestamp=int(req.header["X-TC-Timestamp"]),
    )
    assert ours == expected and isinstance(client, AbstractClient)


def test_unknown_action_version_and_region(server: ServerHandle):
    bad_region = SmsClient(
        credential.Credential(SECRET_ID, SECRET_KEY),
        "ap-tokyo",
        ClientProfile(
            httpProfile=HttpProfile(endpoint=f"127.0.0.1:{server.server.server_port}", protocol="http")
        ),
    )
    assert refused(lambda: send(bad_region)).code == "UnsupportedRegion"
    client = _client(server)
    assert refused(lambda: client.call_json("SendSmsX", {})).code == "InvalidAction"
    client._apiVersion = "2019-07-11"
    assert refused(lambda: send(client)).code == "NoSuchVersion"


# ---- pulling status ------------------------------------------------------------------------------


def test_pull_finds_the_text_by_session_context(client: SmsClient, state: TencentState):
    serial = send(client, context="outbox-42").SendStatusSet[0].SerialNo
    send(client, [PATIENT_2], context="outbox-43")
    state.wait_idle()

    found = pull(client)
    assert [(s.SessionContext, s.SerialNo, s.ReportStatus) for s in found] == [
        ("outbox-42", serial, "SUCCESS")
    ]
    entry = found[0]
    assert (entry.PhoneNumber, entry.SubscriberNumber, entry.CountryCode) == (PATIENT, "13800138001", "86")
    assert entry.Description == "用户短信送达成功" and entry.UserReceiveTime >= int(time.time()) - 5


def test_pull_shows_a_text_only_once_its_report_exists(client: SmsClient, state: TencentState):
    state.configure({"report_delay": 30})
    send(client)
    assert pull(client) == []
    assert [s.report_status for s in state.sent] == [None]


def test_pull_window_paging_and_validation(client: SmsClient, state: TencentState):
    for day in range(3):
        send(client, params=["第4周", f"12月{day + 1}日", "x"], context=f"m{day}")
    state.wait_idle()
    assert [s.SessionContext for s in pull(client, offset=1, limit=1)] == ["m1"]
    assert pull(client, begin=int(time.time()) + 10, end=int(time.time()) + 20) == []
    assert refused(lambda: pull(client, limit=101)).code == "InvalidParameterValue.LimitVerifyFail"
    assert refused(lambda: pull(client, begin=10, end=5)).code == "InvalidParameterValue.InvalidStartTime"
    assert refused(lambda: pull(client, app="1400999999")).code == "InvalidParameterValue.SdkAppIdNotExist"


def test_pull_session_context_can_be_switched_off_like_a_default_account(
    client: SmsClient, state: TencentState
):
    state.pull_session_context = False
    send(client, context="outbox-42")
    state.wait_idle()
    assert [s.SessionContext for s in pull(client)] == [""]


# ---- callbacks -----------------------------------------------------------------------------------


def test_status_report_is_pushed(client: SmsClient, state: TencentState, receiver: Receiver):
    serial = send(client).SendStatusSet[0].SerialNo
    state.wait_idle()

    [[report]] = receiver.bodies("status")
    assert set(report) == {
        "user_receive_time",
        "nationcode",
        "mobile",
        "report_status",
        "errmsg",
        "description",
        "sid",
    }
    assert (report["sid"], report["mobile"], report["nationcode"]) == (serial, "13800138001", "86")
    assert (report["report_status"], report["errmsg"]) == ("SUCCESS", "DELIVRD")
    assert len(report["user_receive_time"]) == 19  # "YYYY-MM-DD HH:MM:SS", Beijing time
    assert [c.accepted for c in state.callbacks] == [True]


def test_one_push_carries_every_report_due(client: SmsClient, state: TencentState, receiver: Receiver):
    send(client, [PATIENT, PATIENT_2, PATIENT_3])
    state.wait_idle()
    pushed = [r["mobile"] for body in receiver.bodies("status") for r in body]
    assert sorted(pushed) == ["13800138001", "13800138002", "13800138003"]


def test_failed_delivery_outcome(client: SmsClient, state: TencentState, receiver: Receiver):
    state.set_outcome(PATIENT_2, report_status="FAIL", errmsg="MN:0001", description="空号")
    send(client, [PATIENT_2])
    state.wait_idle()
    [[report]] = receiver.bodies("status")
    assert (report["report_status"], report["errmsg"], report["description"]) == ("FAIL", "MN:0001", "空号")
    assert pull(client, PATIENT_2)[0].ReportStatus == "FAIL"


def test_status_push_retries_until_ok(client: SmsClient, state: TencentState, receiver: Receiver):
    receiver.answers.extend([(500, {"error": "boom"}), (200, {"result": 1, "errmsg": "busy"})])
    send(client)
    state.wait_idle()
    assert [(c.attempt, c.status_code, c.accepted) for c in state.callbacks] == [
        (1, 500, False),
        (2, 200, False),
        (3, 200, True),
    ]


def test_status_push_gives_up_after_bounded_attempts(
    client: SmsClient, state: TencentState, receiver: Receiver
):
    receiver.answers.extend([(403, {"error": "secret"})] * 10)
    send(client)
    state.wait_idle()
    assert len(state.callbacks) == 3 and not any(c.accepted for c in state.callbacks)
    assert state.counters()["callbacks_failed"] == 3


def test_unreachable_status_url_is_recorded_not_raised(client: SmsClient, state: TencentState):
    state.configure({"status_url": f"http://127.0.0.1:{free_port()}/gone"})
    send(client)
    state.wait_idle()
    assert len(state.callbacks) == 3 and all(c.error for c in state.callbacks)
    assert state.sent[0].report_status == "SUCCESS"


def test_callbacks_switched_off(client: SmsClient, state: TencentState, receiver: Receiver):
    state.configure({"callbacks_enabled": False})
    send(client)
    state.wait_idle()
    assert receiver.got == [] and state.sent[0].report_status == "SUCCESS"


def test_reply_is_pushed(state: TencentState, receiver: Receiver):
    [attempt] = state.simulate_reply(PATIENT, "TD")
    assert attempt.accepted
    [reply] = receiver.bodies("reply")
    assert set(reply) == {"extend", "mobile", "nationcode", "sign", "text", "time"}
    assert (reply["mobile"], reply["nationcode"], reply["text"], reply["sign"]) == (
        "13800138001",
        "86",
        "TD",
        SIGN,
    )
    assert isinstance(reply["time"], int)


def test_reply_over_http_control_retries(server: ServerHandle, receiver: Receiver):
    receiver.answers.append((502, {}))
    answer = requests.post(
        f"{server.url}/_control/reply", json={"mobile": PATIENT_2, "text": "退订"}, timeout=5
    ).json()
    assert (answer["attempts"], answer["accepted"]) == (2, True)
    assert [b["text"] for b in receiver.bodies("reply")] == ["退订", "退订"]
    bad = requests.post(f"{server.url}/_control/reply", json={"mobile": "12345", "text": "T"}, timeout=5)
    assert bad.status_code == 400


# ---- faults and latency --------------------------------------------------------------------------


def test_request_limit_exceeded_then_recovers(client: SmsClient, state: TencentState):
    state.fail_next("RequestLimitExceeded", times=2)
    for _ in range(2):
        assert refused(lambda: send(client)).code == "RequestLimitExceeded"
    assert codes(send(client)) == ["Ok"] and len(state.sent) == 1


def test_internal_error_via_control(client: SmsClient, server: ServerHandle, state: TencentState):
    requests.post(f"{server.url}/_control", json={"fail": "InternalError"}, timeout=5).raise_for_status()
    assert refused(lambda: send(client)).code == "InternalError"
    assert state.sent == []


def test_fault_can_target_one_action(client: SmsClient, state: TencentState):
    state.fail_next("InternalError", action="PullSmsSendStatusByPhoneNumber")
    assert codes(send(client)) == ["Ok"]
    assert refused(lambda: pull(client)).code == "InternalError"


def test_http_502_is_a_server_network_error(client: SmsClient, state: TencentState):
    state.fail_next("http502")
    assert refused(lambda: send(client)).code == "ServerNetworkError"


def test_hang_outlasts_the_client_timeout(server: ServerHandle, state: TencentState):
    state.fail_next("hang")
    impatient = _client(server, timeout=1)
    started = time.monotonic()
    assert refused(lambda: send(impatient)).code == "ClientNetworkError"
    assert time.monotonic() - started < 1.9
    assert codes(send(impatient)) == ["Ok"] and len(state.sent) == 1


def test_latency_is_added_per_request(client: SmsClient, state: TencentState):
    state.configure({"latency_ms": 200})
    started = time.monotonic()
    send(client)
    assert time.monotonic() - started >= 0.2


# ---- control, logging, CLI -----------------------------------------------------------------------


def test_control_counters_and_reset(client: SmsClient, server: ServerHandle, state: TencentState):
    send(client)
    state.wait_idle()
    counters = requests.get(f"{server.url}/_control", timeout=5).json()
    assert (counters["sent"], counters["by_report_status"]) == (1, {"SUCCESS": 1})
    assert "13800138001" not in str(counters)

    after = requests.post(f"{server.url}/_control", json={"reset": True}, timeout=5).json()
    assert after["sent"] == 0 and state.sent == []
    assert requests.post(f"{server.url}/_control", json={"nonsense": 1}, timeout=5).status_code == 400
    assert requests.post(f"{server.url}/_control", json={"fail": "nope"}, timeout=5).status_code == 400


def test_templates_and_signs_registered_over_control(client: SmsClient, server: ServerHandle):
    requests.post(
        f"{server.url}/_control",
        json={"templates": {"3000100": "{1}已登记"}, "signs": ["某某医院"]},
        timeout=5,
    ).raise_for_status()
    assert codes(send(client, sign="某某医院", template="3000100", params=["记录"])) == ["Ok"]


def test_logs_mask_numbers_and_omit_bodies(client: SmsClient, caplog: pytest.LogCaptureFixture):
    caplog.set_level("INFO")
    send(client, [PATIENT, "+86123"])
    ours = "\n".join(r.getMessage() for r in caplog.records if r.name == "devservers.tencent_sms")
    assert "to=+***********01" in ours and "IncorrectPhoneNumber" in ours
    assert "38001" not in ours and "随访已开放" not in ours
    assert mask_number("+8613800138001") == "+***********01"


def test_cli_serves_on_loopback(tmp_path: Path):
    port = free_port()
    proc = start_cli(
        "devservers.tencent_sms",
        port,
        "--secret-id",
        SECRET_ID,
        "--secret-key",
        SECRET_KEY,
        "--app-id",
        APP_ID,
        "--sign",
        SIGN,
        "--template",
        f"{ALERT}=随访提示：记录{{1}}需要关注。",
        "--report-delay",
        "0",
    )
    try:
        wait_until_serving(port)
        profile = HttpProfile(endpoint=f"127.0.0.1:{port}", protocol="http", reqTimeout=5)
        cli = SmsClient(
            credential.Credential(SECRET_ID, SECRET_KEY), "ap-guangzhou", ClientProfile(httpProfile=profile)
        )
        assert codes(send(cli, template=ALERT, params=["R-17"])) == ["Ok"]
    finally:
        proc.terminate()
        output, _ = proc.communicate(timeout=5)
    assert f"http://127.0.0.1:{port}" in output and "to=+***********01" in output
    assert "38001" not in output
