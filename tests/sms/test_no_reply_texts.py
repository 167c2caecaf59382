"""Where replies never reach us (Twilio to +86, a domestic provider without its callback), no text promises a
reply-based opt-out: the invite, reminder and help texts say how to stop on the web page instead."""

from __future__ import annotations

import pytest

from app.sms.texts import NO_REPLY_VARIANTS, render, replies_reach_us, template_for
from tests.sms.test_texts import PARAMS, texts_app  # noqa: F401 (fixture)

CN, US = "+8613800138123", "+15550100"  # fictitious


@pytest.mark.parametrize(
    ("config", "number", "expected"),
    [
        ({"SMS_BACKEND": "twilio"}, CN, False),
        ({"SMS_BACKEND": "twilio"}, US, True),
        ({"SMS_BACKEND": "aliyun"}, CN, False),
        ({"SMS_BACKEND": "aliyun", "SMS_CALLBACK_SECRET": "s3cret"}, CN, True),
        ({"SMS_BACKEND": "tencent", "SMS_CALLBACK_SECRET": ""}, CN, False),
        ({"SMS_BACKEND": "tencent", "SMS_CALLBACK_SECRET": "s3cret"}, CN, True),
        ({"SMS_BACKEND": "console"}, CN, True),
        ({"SMS_BACKEND": "carrier-pigeon"}, US, False),
    ],
)
def test_replies_reach_us(config, number, expected):
    assert replies_reach_us(config, number) is expected


def test_template_for_picks_the_web_variant_only_where_replies_are_lost():
    twilio = {"SMS_BACKEND": "twilio"}
    assert template_for("invite", twilio, CN) == "invite_web"
    assert template_for("reminder", twilio, CN) == "reminder_web"
    assert template_for("help", twilio, CN) == "help_web"
    assert template_for("invite", twilio, US) == "invite"
    assert template_for("redflag_alert", twilio, CN) == "redflag_alert"  # staff numbers: no opt-out text


@pytest.mark.usefixtures("texts_app")
@pytest.mark.parametrize("language", ["en", "zh"])
@pytest.mark.parametrize("template", sorted(NO_REPLY_VARIANTS.values()))
def test_no_reply_texts_promise_no_reply_and_point_to_the_web_page(template, language):
    body = render(template, language, **PARAMS)
    for promise in ("Reply", "reply", "回复", "TD", "START", "STOP"):
        assert promise not in body, (template, language, body)
    assert ("Stop text reminders" if language == "en" else "停止短信提醒") in body
