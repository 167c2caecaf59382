"""The local Twilio server, driven by the real `twilio` client over loopback HTTP."""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pytest
import requests
from flask import Flask, request
from twilio.base.exceptions import TwilioRestException
from twilio.http.http_client import TwilioHttpClient
from twilio.request_validator import RequestValidator
from twilio.rest import Client

from devservers.runner import ServerHandle, serve_in_thread
from devservers.twilio_api import (
    TwilioState,
    count_segments,
    create_twilio_app,
    mask_number,
    twilio_signature,
)
from tests.devservers.helpers import free_port, start_cli, stop_quickly, wait_until_serving

ACCOUNT_SID = "AC0123456789abcdef0123456789abcdef"
AUTH_TOKEN = "fedcba9876543210fedcba9876543210"
OTHER_SID = "ACfedcba9876543210fedcba9876543210"
OTHER_TOKEN = "00112233445566778899aabbccddeeff"
SENDER = "+15550100"  # fictitious +1 555 01xx
PATIENT = "+8613800138001"  # fictitious +86 138 0013 8xxx
PATIENT_2 = "+8613800138002"
SERVICE_SID = "MG0123456789abcdef0123456789abcdef"
TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response><Message>收到</Message></Response>'


class RebasedHttpClient(TwilioHttpClient):
    """The stock HTTP client, with https://api.twilio.com swapped for the local server's base URL."""

    def __init__(self, base_url: str, **kwargs) -> None:
        super().__init__(**kwargs)
        self.base_url = base_url.rstrip("/")

    def request(self, method, url, *args, **kwargs):
        url = re.sub(r"^https://api\.twilio\.com", self.base_url, url)
        return super().request(method, url, *args, **kwargs)


@dataclass
class Receiver:
    """A tiny webhook endpoint that records what it was sent."""

    handle: ServerHandle
    got: list[tuple[str, dict[str, str], dict[str, str]]] = field(default_factory=list)

    @property
    def url(self) -> str:
        return self.handle.url

    def validates(self, token: str = AUTH_TOKEN) -> bool:
        validator = RequestValidator(token)
        return all(validator.validate(url, form, hdrs["X-Twilio-Signature"]) for url, form, hdrs in self.got)


@dataclass
class Clock:
    now: datetime = datetime(2024, 3, 1, 9, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def state(clock: Clock) -> Iterator[TwilioState]:
    state = TwilioState(
        {ACCOUNT_SID: AUTH_TOKEN, OTHER_SID: OTHER_TOKEN}, hang_seconds=2.0, callback_timeout=1.0, clock=clock
    )
    yield state
    state.close()


@pytest.fixture
def server(state: TwilioState) -> Iterator[ServerHandle]:
    handle = serve_in_thread(create_twilio_app(state=state))
    yield handle
    state.close()  # wakes any request parked in a "timeout" fault
    stop_quickly(handle)


def _http_client(server: ServerHandle, timeout: float) -> Iterator[RebasedHttpClient]:
    http = RebasedHttpClient(server.url, timeout=timeout)
    yield http
    http.session.close()


@pytest.fixture
def http_client(server: ServerHandle) -> Iterator[RebasedHttpClient]:
    yield from _http_client(server, timeout=5)


@pytest.fixture
def client(http_client: RebasedHttpClient) -> Client:
    return Client(ACCOUNT_SID, AUTH_TOKEN, http_client=http_client)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    app = Flask("receiver")
    recorder = Receiver(handle=serve_in_thread(app))

    @app.post("/<path:name>")
    def hook(name: str):
        recorder.got.append((request.url, request.form.to_dict(), dict(request.headers)))
        if name == "sms":
            return TWIML, 200, {"Content-Type": "text/xml"}
        return "", 204

    yield recorder
    stop_quickly(recorder.handle)


# ---- create, fetch, list -------------------------------------------------------------------------


def test_create_returns_a_queued_message_shaped_like_twilios(client: Client, state: TwilioState):
    message = client.messages.create(to=PATIENT, from_=SENDER, body="Your 3-month questionnaire is ready.")

    assert re.fullmatch(r"SM[0-9a-f]{32}", message.sid)
    assert (message.account_sid, message.to, message.from_) == (ACCOUNT_SID, PATIENT, SENDER)
    assert (message.status, message.direction, message.num_segments) == ("queued", "outbound-api", "1")
    assert message.error_code is None and message.price is None and message.date_sent is None
    assert message.date_created == datetime(2024, 3, 1, 9, 0, tzinfo=UTC)
    assert message.uri == f"/2010-04-01/Accounts/{ACCOUNT_SID}/Messages/{message.sid}.json"
    assert [m.sid for m in state.messages] == [message.sid]


def test_fetch_follows_the_lifecycle_and_unknown_sid_is_20404(client: Client, state: TwilioState):
    sid = client.messages.create(to=PATIENT, from_=SENDER, body="hi").sid
    state.wait_for_status(sid, "delivered")

    fetched = client.messages(sid).fetch()
    assert (fetched.status, fetched.date_sent) == ("delivered", datetime(2024, 3, 1, 9, 0, tzinfo=UTC))
    with pytest.raises(TwilioRestException) as err:
        client.messages("SM" + "0" * 32).fetch()
    assert (err.value.status, err.value.code) == (404, 20404)


def test_list_filters_by_recipient_and_pages(client: Client, state: TwilioState):
    for n in range(5):
        client.messages.create(to=PATIENT, from_=SENDER, body=f"reminder {n}")
    client.messages.create(to=PATIENT_2, from_=SENDER, body="other patient")

    to_first = client.messages.list(to=PATIENT, page_size=2)
    assert [m.body for m in to_first] == [f"reminder {n}" for n in reversed(range(5))]  # newest first
    assert [m.body for m in client.messages.list(to=PATIENT_2)] == ["other patient"]
    assert len(client.messages.list(from_=SENDER)) == 6
    assert len(client.messages.list(limit=3)) == 3

    page = requests.get(
        f"{client.http_client.base_url}/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json",
        params={"PageSize": 4},
        auth=(ACCOUNT_SID, AUTH_TOKEN),
        timeout=5,
    ).json()
    assert (page["page"], page["page_size"], page["start"], page["end"]) == (0, 4, 0, 3)
    assert "PageSize=4&Page=1&PageToken=PASM" in page["next_page_uri"] and page["previous_page_uri"] is None


def test_list_filters_by_date_sent(client: Client, state: TwilioState, clock: Clock):
    early = client.messages.create(to=PATIENT, from_=SENDER, body="day 1").sid
    state.wait_for_status(early, "delivered")
    clock.now = datetime(2024, 3, 3, 12, 0, tzinfo=UTC)
    late = client.messages.create(to=PATIENT, from_=SENDER, body="day 3").sid
    state.wait_for_status(late, "delivered")

    def sids(**filters) -> list[str]:
        return [m.sid for m in client.messages.list(to=PATIENT, **filters)]

    assert sids(date_sent_after=datetime(2024, 3, 2, tzinfo=UTC)) == [late]
    assert sids(date_sent_before=datetime(2024, 3, 2, tzinfo=UTC)) == [early]
    assert sids(date_sent=datetime(2024, 3, 3, tzinfo=UTC)) == [late]
    assert sids(date_sent_after=datetime(2024, 3, 3, 12, 0, tzinfo=UTC)) == [late]  # inclusive


# ---- auth and validation -------------------------------------------------------------------------


def test_wrong_credentials_are_401_code_20003(http_client: RebasedHttpClient, server: ServerHandle):
    bad = Client(ACCOUNT_SID, "not-the-token", http_client=http_client)
    with pytest.raises(TwilioRestException) as err:
        bad.messages.create(to=PATIENT, from_=SENDER, body="hi")
    assert (err.value.status, err.value.code) == (401, 20003)

    raw = requests.post(f"{server.url}/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json", timeout=5)
    assert raw.status_code == 401 and raw.headers["WWW-Authenticate"].startswith("Basic")
    assert raw.json() == {
        "code": 20003,
        "message": "Authenticate",
        "status": 401,
        "more_info": "https://www.twilio.com/docs/errors/20003",
    }


def test_another_accounts_path_is_20404(http_client: RebasedHttpClient):
    other = Client(OTHER_SID, OTHER_TOKEN, account_sid=ACCOUNT_SID, http_client=http_client)
    with pytest.raises(TwilioRestException) as err:
        other.messages.create(to=PATIENT, from_=SENDER, body="hi")
    assert (err.value.status, err.value.code) == (404, 20404)


@pytest.mark.parametrize(
    ("kwargs", "code"),
    [
        ({"to": "", "from_": SENDER, "body": "hi"}, 21604),
        ({"to": PATIENT, "body": "hi"}, 21603),
        ({"to": PATIENT, "from_": SENDER}, 21602),
        ({"to": "13800138001", "from_": SENDER, "body": "hi"}, 21211),
        ({"to": PATIENT, "from_": SENDER, "body": "x" * 1601}, 21617),
        ({"to": "+15005550004", "from_": SENDER, "body": "hi"}, 21610),  # Twilio's magic "blocked" number
        ({"to": PATIENT, "from_": "+15005550001", "body": "hi"}, 21212),
    ],
)
def test_create_validation_errors(client: Client, state: TwilioState, kwargs: dict, code: int):
    with pytest.raises(TwilioRestException) as err:
        client.messages.create(**kwargs)
    assert (err.value.status, err.value.code) == (400, code)
    assert state.messages == []


def test_invalid_to_message_names_the_number(server: ServerHandle):
    raw = requests.post(
        f"{server.url}/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json",
        data={"To": "0800", "From": SENDER, "Body": "hi"},
        auth=(ACCOUNT_SID, AUTH_TOKEN),
        timeout=5,
    )
    assert raw.json() == {
        "code": 21211,
        "message": "Invalid 'To' Phone Number: 0800",
        "status": 400,
        "more_info": "https://www.twilio.com/docs/errors/21211",
    }


def test_per_recipient_create_errors_from_control(client: Client, server: ServerHandle, state: TwilioState):
    requests.post(
        f"{server.url}/_control",
        timeout=5,
        json={"outcomes": {PATIENT: {"create_error": 21610}, PATIENT_2: {"create_error": 21211}}},
    ).raise_for_status()

    for number, code, words in ((PATIENT, 21610, "unsubscribed"), (PATIENT_2, 21211, "Invalid 'To'")):
        with pytest.raises(TwilioRestException) as err:
            client.messages.create(to=number, from_=SENDER, body="hi")
        assert (err.value.status, err.value.code) == (400, code)
        assert words in err.value.msg
    assert state.counters()["create_error_21610"] == 1


# ---- faults --------------------------------------------------------------------------------------


def test_fail_next_429_then_recovers(client: Client, state: TwilioState):
    state.fail_next("429", times=2)
    for _ in range(2):
        with pytest.raises(TwilioRestException) as err:
            client.messages.create(to=PATIENT, from_=SENDER, body="hi")
        assert (err.value.status, err.value.code) == (429, 20429)
    assert client.messages.create(to=PATIENT, from_=SENDER, body="hi").status == "queued"
    assert len(state.messages) == 1 and len(state.create_timestamps) == 3


def test_fail_500_via_control(client: Client, server: ServerHandle):
    requests.post(f"{server.url}/_control", json={"fail": "500"}, timeout=5).raise_for_status()
    with pytest.raises(TwilioRestException) as err:
        client.messages.create(to=PATIENT, from_=SENDER, body="hi")
    assert (err.value.status, err.value.code) == (500, 20500)


def test_timeout_fault_outlasts_the_client_timeout(server: ServerHandle, state: TwilioState):
    state.fail_next("timeout")
    for http in _http_client(server, timeout=0.3):
        impatient = Client(ACCOUNT_SID, AUTH_TOKEN, http_client=http)
        started = time.monotonic()
        with pytest.raises(requests.exceptions.Timeout):
            impatient.messages.create(to=PATIENT, from_=SENDER, body="hi")
        assert time.monotonic() - started < 1.5
        assert impatient.messages.create(to=PATIENT, from_=SENDER, body="hi").status == "queued"
    assert len(state.messages) == 1


def test_latency_is_added_per_request(client: Client, state: TwilioState):
    state.configure({"latency_ms": 200})
    started = time.monotonic()
    client.messages.create(to=PATIENT, from_=SENDER, body="hi")
    assert time.monotonic() - started >= 0.2


# ---- segments ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "segments"),
    [
        ("", 1),
        ("a" * 160, 1),
        ("a" * 161, 2),
        ("a" * 306, 2),
        ("a" * 307, 3),
        ("€" * 80, 1),
        ("€" * 81, 2),  # extension characters cost two septets
        ("a" * 152 + "€" + "a" * 152, 3),  # an escape pair never straddles a 153-septet boundary
        ("您" * 70, 1),
        ("您" * 71, 2),
        ("您" * 134, 2),
        ("您" * 135, 3),
        ("a" * 69 + "中", 1),  # one non-GSM character makes the whole message UCS-2
        ("😀" * 35, 1),
        ("😀" * 36, 2),  # astral characters are two UTF-16 units
    ],
)
def test_count_segments(body: str, segments: int):
    assert count_segments(body) == segments


def test_num_segments_for_a_chinese_body(client: Client):
    body = "您好,请完成第三个月的随访问卷。" * 5  # 80 characters, UCS-2
    assert client.messages.create(to=PATIENT, from_=SENDER, body=body).num_segments == "2"


# ---- status callbacks ----------------------------------------------------------------------------


def test_status_callbacks_are_signed_like_twilios(client: Client, state: TwilioState, receiver: Receiver):
    url = f"{receiver.url}/status?study=NCT04346368"
    sid = client.messages.create(to=PATIENT, from_=SENDER, body="hi", status_callback=url).sid
    state.wait_idle()

    assert [form["MessageStatus"] for _, form, _ in receiver.got] == ["sent", "delivered"]
    assert receiver.validates()
    first_url, first, headers = receiver.got[0]
    assert first_url == url and headers["User-Agent"] == "TwilioProxy/1.1"
    assert first == {
        "SmsSid": sid,
        "SmsStatus": "sent",
        "MessageStatus": "sent",
        "To": PATIENT,
        "MessageSid": sid,
        "AccountSid": ACCOUNT_SID,
        "From": SENDER,
        "ApiVersion": "2010-04-01",
    }
    assert "ErrorCode" not in receiver.got[1][1] and "RawDlrDoneDate" in receiver.got[1][1]
    assert not RequestValidator(OTHER_TOKEN).validate(url, first, headers["X-Twilio-Signature"])


def test_undelivered_with_30003(client: Client, server: ServerHandle, state: TwilioState, receiver: Receiver):
    requests.post(
        f"{server.url}/_control",
        timeout=5,
        json={"outcomes": {PATIENT_2: {"final_status": "undelivered", "error_code": 30003}}},
    ).raise_for_status()
    callback = f"{receiver.url}/s"
    sid = client.messages.create(to=PATIENT_2, from_=SENDER, body="hi", status_callback=callback).sid
    state.wait_idle()

    fetched = client.messages(sid).fetch()
    assert (fetched.status, fetched.error_code) == ("undelivered", 30003)
    assert [(f["MessageStatus"], f.get("ErrorCode")) for _, f, _ in receiver.got] == [
        ("sent", None),
        ("undelivered", "30003"),
    ]
    assert receiver.validates()


def test_failed_goes_straight_from_queued(client: Client, state: TwilioState):
    state.set_outcome(PATIENT, final_status="failed", error_code=30006)
    sid = client.messages.create(to=PATIENT, from_=SENDER, body="hi").sid
    message = state.wait_for_status(sid)
    assert (message.status, message.error_code, message.date_sent) == ("failed", 30006, None)


def test_messaging_service_is_accepted_then_queued(client: Client, state: TwilioState, receiver: Receiver):
    created = client.messages.create(
        to=PATIENT, messaging_service_sid=SERVICE_SID, body="hi", status_callback=f"{receiver.url}/s"
    )
    assert (created.status, created.from_, created.messaging_service_sid) == ("accepted", None, SERVICE_SID)
    state.wait_idle()
    assert [f["MessageStatus"] for _, f, _ in receiver.got] == ["queued", "sent", "delivered"]
    assert all(f["MessagingServiceSid"] == SERVICE_SID for _, f, _ in receiver.got)


def test_unreachable_callback_is_recorded_not_raised(client: Client, state: TwilioState):
    sid = client.messages.create(
        to=PATIENT, from_=SENDER, body="hi", status_callback=f"http://127.0.0.1:{free_port()}/gone"
    ).sid
    state.wait_idle()
    assert state.get(sid).status == "delivered"
    assert len(state.webhooks) == 2 and all(w.error for w in state.webhooks)
    assert state.counters()["webhooks_failed"] == 2


def test_callbacks_off_and_manual_advance(client: Client, state: TwilioState, receiver: Receiver):
    state.configure({"callbacks_enabled": False, "auto_advance": False})
    sid = client.messages.create(to=PATIENT, from_=SENDER, body="hi", status_callback=f"{receiver.url}/s").sid
    time.sleep(0.05)
    assert state.get(sid).status == "queued"
    assert state.advance(sid).status == "sent"
    assert state.advance(sid).status == "delivered"
    assert receiver.got == [] and state.webhooks == []


# ---- inbound -------------------------------------------------------------------------------------


def test_simulate_inbound_posts_a_signed_webhook(state: TwilioState, receiver: Receiver):
    result = state.simulate_inbound(f"{receiver.url}/sms", PATIENT, SENDER, "是", AUTH_TOKEN)

    assert (result.status_code, result.response_body) == (200, TWIML)
    url, form, headers = receiver.got[0]
    assert RequestValidator(AUTH_TOKEN).validate(url, form, headers["X-Twilio-Signature"])
    assert form["MessageSid"] == form["SmsMessageSid"] == form["SmsSid"] == result.params["MessageSid"]
    assert (form["From"], form["To"], form["Body"]) == (PATIENT, SENDER, "是")
    assert form["AccountSid"] == ACCOUNT_SID
    assert (form["NumMedia"], form["NumSegments"], form["FromCountry"], form["ApiVersion"]) == (
        "0",
        "1",
        "CN",
        "2010-04-01",
    )
    assert state.inbound[0].direction == "inbound"


def test_inbound_over_http_control(server: ServerHandle, client: Client, receiver: Receiver):
    reply = requests.post(
        f"{server.url}/_control/inbound",
        timeout=5,
        json={"url": f"{receiver.url}/sms", "from": PATIENT, "to": SENDER, "body": "STOP"},
    ).json()
    assert (reply["status"], reply["body"], reply["error"]) == (200, TWIML, None)
    assert receiver.validates()
    assert client.messages(reply["message_sid"]).fetch().direction == "inbound"


def test_signature_matches_the_twilio_library():
    params = {"b": "2", "a": "1", "Body": "您好"}
    url = "https://example.test/sms?x=1"
    assert twilio_signature("tok", url, params) == RequestValidator("tok").compute_signature(url, params)


# ---- helpers for other tests, control, logging ---------------------------------------------------


def test_sent_to_duplicates_and_rate(client: Client, state: TwilioState):
    for body in ("reminder", "reminder", "thanks"):
        client.messages.create(to=PATIENT, from_=SENDER, body=body)
    client.messages.create(to=PATIENT_2, from_=SENDER, body="reminder")

    assert [m.body for m in state.sent_to(PATIENT)] == ["reminder", "reminder", "thanks"]
    [dup] = state.duplicates()
    assert (dup.to, dup.body, dup.count) == (PATIENT, "reminder", 2)
    assert state.max_creates_per_second() == 4


def test_control_counters_and_reset(client: Client, server: ServerHandle, state: TwilioState):
    client.messages.create(to=PATIENT, from_=SENDER, body="hi")
    state.wait_idle()
    counters = requests.get(f"{server.url}/_control", timeout=5).json()
    assert (counters["messages"], counters["by_status"]) == (1, {"delivered": 1})
    assert PATIENT not in str(counters)

    after = requests.post(f"{server.url}/_control", json={"reset": True}, timeout=5).json()
    assert after["messages"] == 0 and state.messages == []
    bad = requests.post(f"{server.url}/_control", json={"nonsense": 1}, timeout=5)
    assert bad.status_code == 400


def test_logs_mask_numbers_and_omit_bodies(client: Client, caplog: pytest.LogCaptureFixture):
    caplog.set_level(logging.INFO)
    client.messages.create(
        to=PATIENT, from_=SENDER, body="secret body", status_callback="http://127.0.0.1:9/x"
    )
    client.messages.list(to=PATIENT)

    # The twilio client's own "twilio.http_client" logger prints query params at INFO; that is the app's to
    # silence. Here: this server's log and the access log (which would carry `?To=+86...`).
    names = ("devservers.twilio_api", "werkzeug")
    ours = "\n".join(r.getMessage() for r in caplog.records if r.name in names)
    assert "to=+***********01 segments=1" in ours and "Messages.json?…" in ours
    assert "38001" not in ours and "secret body" not in ours
    assert mask_number("+15550100") == "+******00"


def test_cli_serves_on_loopback_and_logs_masked(tmp_path: Path):
    port = free_port()
    proc = start_cli(
        "devservers.twilio_api",
        port,
        "--account-sid",
        ACCOUNT_SID,
        "--auth-token",
        AUTH_TOKEN,
        "--callback-delay",
        "0",
    )
    try:
        wait_until_serving(port)
        http = RebasedHttpClient(f"http://127.0.0.1:{port}", timeout=5)
        Client(ACCOUNT_SID, AUTH_TOKEN, http_client=http).messages.create(to=PATIENT, from_=SENDER, body="hi")
        http.session.close()
    finally:
        proc.terminate()
        output, _ = proc.communicate(timeout=5)
    assert "to=+***********01 segments=1" in output
    assert PATIENT not in output and "38001" not in output
