"""The three SMS backends for bench_sms.py: each one's local server, the app's settings for it, and a
bare-client baseline (the provider's own SDK, one request after another, no outbox, no rate limit).

Servers run as their own processes on a free loopback port with the given latency and no per-number
limits (every text goes to a different fictitious number anyway), and stop with the benchmark.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import requests

from devservers.aliyun_protocol import DEMO_SMS_TEMPLATES as ALIYUN_TEMPLATES
from devservers.tencent_state import DEMO_SMS_TEMPLATES as TENCENT_TEMPLATES

ROOT = Path(__file__).resolve().parent.parent

BACKENDS = ("twilio", "aliyun", "tencent")
TWILIO_ACCOUNT_SID = "ACa1b2c3d4e5f60718293a4b5c6d7e8f90"  # devservers' fictitious default account
TWILIO_AUTH_TOKEN = "0f1e2d3c4b5a69788796a5b4c3d2e1f0"
CALLBACK_SECRET = "bench-callback-secret-0123"  # fictitious; the servers push nothing back here


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(backend: str, latency_ms: int) -> tuple[subprocess.Popen, str]:
    """The backend's local server as its own process; returns it and its URL once it answers."""
    port = free_port()
    args = {
        "twilio": ["devservers.twilio_api", "--no-callbacks"],
        "aliyun": ["devservers.aliyun_sms", "--limits", "0,0,0", "--latency", str(latency_ms / 1000)],
        "tencent": ["devservers.tencent_sms", "--daily-limit", "0", "--latency-ms", str(latency_ms)],
    }[backend]
    proc = subprocess.Popen(
        [sys.executable, "-m", *args, "--port", str(port)],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    for _ in range(100):
        try:
            if backend == "twilio":
                requests.post(
                    f"{url}/_control", json={"latency_ms": latency_ms}, timeout=1
                ).raise_for_status()
            else:
                requests.get(f"{url}/_control", timeout=1).raise_for_status()
            return proc, url
        except requests.RequestException:
            time.sleep(0.1)
    proc.kill()
    raise SystemExit(f"the local {backend} server did not start")


def counters(url: str) -> tuple[int, int | None]:
    """Texts the server accepted, and the most in any one second where the server counts that."""
    doc = requests.get(f"{url}/_control", timeout=5).json()
    return int(doc.get("messages", doc.get("sent", 0))), doc.get("max_creates_per_second")


def settings(backend: str, url: str) -> dict[str, str]:
    """The app's settings for `backend` on the local server at `url` (credentials are the fakes')."""
    if backend == "twilio":
        return {
            "SMS_BACKEND": "twilio",
            "TWILIO_ACCOUNT_SID": TWILIO_ACCOUNT_SID,
            "TWILIO_AUTH_TOKEN": TWILIO_AUTH_TOKEN,
            "TWILIO_FROM_NUMBER": "+15550100",
            "TWILIO_API_URL": url,
        }
    if backend == "aliyun":
        from devservers.aliyun_protocol import (
            DEFAULT_ACCESS_KEY_ID,
            DEFAULT_ACCESS_KEY_SECRET,
            DEFAULT_SIGN_NAME,
        )

        return {
            "SMS_BACKEND": "aliyun",
            "SMS_CALLBACK_SECRET": CALLBACK_SECRET,
            "ALIYUN_ACCESS_KEY_ID": DEFAULT_ACCESS_KEY_ID,
            "ALIYUN_ACCESS_KEY_SECRET": DEFAULT_ACCESS_KEY_SECRET,
            "ALIYUN_SMS_SIGN_NAME": DEFAULT_SIGN_NAME,
            "ALIYUN_SMS_ENDPOINT": url,
            "SMS_TEMPLATES": json.dumps(ALIYUN_TEMPLATES),
        }
    from devservers.tencent_state import DEFAULT_APP_ID, DEFAULT_SECRET_ID, DEFAULT_SECRET_KEY, DEFAULT_SIGN

    return {
        "SMS_BACKEND": "tencent",
        "SMS_CALLBACK_SECRET": CALLBACK_SECRET,
        "TENCENT_SECRET_ID": DEFAULT_SECRET_ID,
        "TENCENT_SECRET_KEY": DEFAULT_SECRET_KEY,
        "TENCENT_SMS_SDK_APP_ID": DEFAULT_APP_ID,
        "TENCENT_SMS_SIGN_NAME": DEFAULT_SIGN,
        "TENCENT_SMS_ENDPOINT": url,
        "SMS_TEMPLATES": json.dumps(TENCENT_TEMPLATES),
    }


def bare_sender(backend: str, url: str) -> Callable[[int], None]:
    """A function sending text number i with the backend's official SDK alone."""
    if backend == "twilio":
        from twilio.rest import Client

        from app.sms.providers.twilio import RebasedTwilioHttpClient

        client = Client(
            TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN, http_client=RebasedTwilioHttpClient(url, timeout=10)
        )

        def send_twilio(i: int) -> None:
            client.messages.create(to=f"+86138001{38000 + i % 1000}", from_="+15550100", body="baseline")

        return send_twilio
    if backend == "aliyun":
        from alibabacloud_dysmsapi20170525 import models as sms_models
        from alibabacloud_dysmsapi20170525.client import Client as AliyunClient
        from alibabacloud_tea_openapi import utils_models
        from darabonba.runtime import RuntimeOptions

        from devservers.aliyun_protocol import (
            DEFAULT_ACCESS_KEY_ID,
            DEFAULT_ACCESS_KEY_SECRET,
            DEFAULT_SIGN_NAME,
        )

        host = url.split("://", 1)[1]
        aliyun = AliyunClient(
            utils_models.Config(
                access_key_id=DEFAULT_ACCESS_KEY_ID,
                access_key_secret=DEFAULT_ACCESS_KEY_SECRET,
                endpoint=host,
                protocol="http",
            )
        )
        runtime = RuntimeOptions(autoretry=False, max_attempts=1)

        def send_aliyun(i: int) -> None:
            request = sms_models.SendSmsRequest(
                phone_numbers=f"138001{38000 + i % 1000}",
                sign_name=DEFAULT_SIGN_NAME,
                template_code="SMS_470001",
                template_param=json.dumps({"visit": "第4周", "deadline": "12月9日", "code": "abc"}),
                out_id=str(i),
            )
            assert aliyun.send_sms_with_options(request, runtime).body.code == "OK"

        return send_aliyun
    from tencentcloud.common import credential
    from tencentcloud.common.profile.client_profile import ClientProfile
    from tencentcloud.common.profile.http_profile import HttpProfile
    from tencentcloud.sms.v20210111 import models, sms_client

    from devservers.tencent_state import DEFAULT_APP_ID, DEFAULT_SECRET_ID, DEFAULT_SECRET_KEY, DEFAULT_SIGN

    profile = ClientProfile(httpProfile=HttpProfile(protocol="http", endpoint=url.split("://", 1)[1]))
    tencent = sms_client.SmsClient(
        credential.Credential(DEFAULT_SECRET_ID, DEFAULT_SECRET_KEY), "ap-guangzhou", profile
    )

    def send_tencent(i: int) -> None:
        request = models.SendSmsRequest()
        request.PhoneNumberSet = [f"+86138001{38000 + i % 1000}"]
        request.SmsSdkAppId, request.SignName, request.TemplateId = DEFAULT_APP_ID, DEFAULT_SIGN, "2000001"
        request.TemplateParamSet = ["第4周", "12月9日", "abc"]
        request.SessionContext = str(i)
        assert tencent.SendSms(request).SendStatusSet[0].Code == "Ok"

    return send_tencent


def baseline(backend: str, url: str, count: int = 200) -> float:
    """Texts a second the bare SDK sends one after another to the same server: what latency allows."""
    send = bare_sender(backend, url)
    started = time.monotonic()
    for i in range(count):
        send(i)
    return count / (time.monotonic() - started)
