"""`SMS_BACKEND=aliyun make run` / `SMS_BACKEND=tencent make run`: the demo against a local provider.

Starts nothing itself: it says how to start the local Aliyun- or Tencent-compatible server with the
study's own template texts (study/sms_templates.json, filled with this machine's PUBLIC_BASE_URL and
STUDY_PHONE, so the demo sends what the study team would register) and which settings point the app
at it, callbacks included. Development only; the credentials are the local servers' fictitious ones.
"""

from __future__ import annotations

import json
from pathlib import Path

from devservers import aliyun_protocol, tencent_protocol

ROOT = Path(__file__).resolve().parent.parent
PORTS = {"aliyun": 8093, "tencent": 8094}
CALLBACK_SECRET = "dev-sms-callback-secret"  # noqa: S105 - the local demo's, not a secret
# Each kind and language gets a template id, as the provider would assign on approval.
ALIYUN_FIRST_ID, TENCENT_FIRST_ID = 470001, 2000001
CALLBACKS = {
    "aliyun": (("--report-url", "/sms/aliyun/report"), ("--up-url", "/sms/aliyun/up")),
    "tencent": (("--status-url", "/sms/tencent/status"), ("--reply-url", "/sms/tencent/reply")),
}


def study_templates(backend: str, mode: str, base_url: str, phone: str) -> dict[str, dict[str, str]]:
    """The study's texts for `backend` and link `mode` ({kind: {language: text}}), placeholders filled."""
    texts = json.loads((ROOT / "study" / "sms_templates.json").read_text(encoding="utf-8"))
    chosen = texts[backend][mode]
    return {
        kind: {
            lang: text.replace("{PUBLIC_BASE_URL}", base_url).replace("{STUDY_PHONE}", phone)
            for lang, text in langs.items()
        }
        for kind, langs in chosen.items()
    }


def provider_stack(backend: str, env: dict[str, str]) -> tuple[list[str], dict[str, str]]:
    """The local server's command line and the app settings that use it, for `backend`."""
    port = PORTS[backend]
    base_url = env["PUBLIC_BASE_URL"]
    phone = env.get("STUDY_PHONE", "+86 20 8306 2000")  # config.py's default
    templates = study_templates(backend, env.get("SMS_LINK_MODE", "path"), base_url, phone)
    ids: dict[str, dict[str, str]] = {}
    argv = ["-m", f"devservers.{backend}_sms", "--port", str(port)]
    next_id = ALIYUN_FIRST_ID if backend == "aliyun" else TENCENT_FIRST_ID
    for kind, langs in templates.items():
        for lang, text in langs.items():
            template_id = f"SMS_{next_id}" if backend == "aliyun" else str(next_id)
            next_id += 1
            ids.setdefault(kind, {})[lang] = template_id
            argv += ["--template", f"{template_id}={text}"]
    for flag, path in CALLBACKS[backend]:
        argv += [flag, f"{base_url}{path}?secret={CALLBACK_SECRET}"]
    settings = {
        "SMS_TEMPLATES": json.dumps(ids),
        "SMS_CALLBACK_SECRET": CALLBACK_SECRET,
    }
    if backend == "aliyun":
        settings.update(
            ALIYUN_ACCESS_KEY_ID=aliyun_protocol.DEFAULT_ACCESS_KEY_ID,
            ALIYUN_ACCESS_KEY_SECRET=aliyun_protocol.DEFAULT_ACCESS_KEY_SECRET,
            ALIYUN_SMS_SIGN_NAME=aliyun_protocol.DEFAULT_SIGN_NAME,
            ALIYUN_SMS_ENDPOINT=f"http://127.0.0.1:{port}",
        )
    else:
        settings.update(
            TENCENT_SECRET_ID=tencent_protocol.DEFAULT_SECRET_ID,
            TENCENT_SECRET_KEY=tencent_protocol.DEFAULT_SECRET_KEY,
            TENCENT_SMS_SDK_APP_ID=tencent_protocol.DEFAULT_APP_ID,
            TENCENT_SMS_SIGN_NAME=tencent_protocol.DEFAULT_SIGN,
            TENCENT_SMS_ENDPOINT=f"http://127.0.0.1:{port}",
            TENCENT_SMS_PARAM_MAX_CHARS="30",
        )
    return argv, settings
