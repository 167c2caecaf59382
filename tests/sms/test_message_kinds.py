"""Messages as kinds with parameters: compose, SMS_TEMPLATES at start-up, the study/ template texts, carriers' rules."""

from __future__ import annotations

import json
import re
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from app.extensions import db
from app.models import OutboundMessage
from app.sms import carriers
from app.sms.kinds import PARAM_ORDER, check_templates, template_id
from app.sms.message import compose, deadline_label, records_label
from app.sms.planner import plan_due
from app.sms.privacy import denied_words
from app.sms.sender import send_due
from config import DEFAULT_SMS_DENY_WORDS, ConfigError, TestingConfig
from tests.sms.cn_fixtures import ALIYUN_TEMPLATES
from tests.sms.conftest import NOW, open_visit

STUDY = Path(__file__).resolve().parents[2] / "study"
TEMPLATES = json.loads((STUDY / "sms_templates.json").read_text(encoding="utf-8"))
SAMPLE = {
    "{PUBLIC_BASE_URL}": "https://followup.example-hospital.org.cn",
    "{STUDY_PHONE}": "+86 20 8306 2000",
}
LONGEST = {"visit": "第104周", "deadline": "12月31日", "code": "Ab3_-Zx9Ab3_-Zx9Qw7_-P", "records": "X" * 30}
SIGN = "【广州某某医院随访中心】"


def all_texts():
    for provider, modes in TEMPLATES.items():
        if provider.startswith("_"):
            continue
        for mode, kinds in modes.items():
            for kind, languages in kinds.items():
                for language, text in languages.items():
                    yield pytest.param(
                        provider, mode, kind, language, text, id=f"{provider}-{mode}-{kind}-{language}"
                    )


def variables(provider: str, text: str) -> list[str]:
    pattern = r"\$\{([^}]*)\}" if provider == "aliyun" else r"\{(\d+)\}"
    return re.findall(pattern, text)


def filled(provider: str, kind: str, text: str) -> str:
    for placeholder, value in SAMPLE.items():
        text = text.replace(placeholder, value)
    for index, name in enumerate(PARAM_ORDER[kind], start=1):
        token = "${" + name + "}" if provider == "aliyun" else "{" + str(index) + "}"
        text = text.replace(token, LONGEST.get(name, "8306"))
    return text


@pytest.mark.parametrize(("provider", "mode", "kind", "language", "text"), list(all_texts()))
def test_every_study_template_passes_the_providers_rules(provider, mode, kind, language, text):
    assert "【" not in text and "】" not in text  # the provider adds the signature
    assert "问卷调查" not in text
    assert not re.search(r"回复|reply", text, re.IGNORECASE)  # replies may never reach us
    assert "停止" in text or "stop" in text.lower() or kind == "redflag_alert"
    found = variables(provider, text)
    if provider == "aliyun":
        assert found == [n for n in PARAM_ORDER[kind] if n in found]
        assert set(found) <= set(PARAM_ORDER[kind])
        assert all(
            re.match(r"^[A-Za-z][A-Za-z0-9_]*$", n) and n not in {"email", "mobile", "id", "nick", "site"}
            for n in found
        )
    else:
        assert found == [str(i) for i in range(1, len(found) + 1)]  # in the documented order
    assert len(found) == len(PARAM_ORDER[kind])
    # Words around every variable: the text neither starts nor ends with one, no two are adjacent.
    shape = re.sub(r"\$\{[^}]*\}|\{\d+\}", "\0", text)
    assert not shape.startswith("\0") and not shape.endswith("\0") and "\0\0" not in shape
    # Links: the domain (and path) fixed in the template; the variable never carries a domain.
    for url in re.findall(r"https?://\S+|\{PUBLIC_BASE_URL\}\S*", text):
        assert url.startswith("{PUBLIC_BASE_URL}/s/" if mode == "path" else "{PUBLIC_BASE_URL}/c"), url
    if kind in ("invite", "reminder"):
        assert ("{PUBLIC_BASE_URL}/s/" in text) == (mode == "path")
    body = filled(provider, kind, text)
    assert denied_words(body, DEFAULT_SMS_DENY_WORDS) == []
    assert len(SIGN + body) <= 500  # the providers' recommended longest text


def test_the_markdown_carries_every_template_text():
    doc = (STUDY / "sms_templates.md").read_text(encoding="utf-8")
    for param in all_texts():
        assert param.values[-1] in doc


def test_the_aliyun_server_accepts_the_study_templates():
    from devservers.aliyun_state import AliyunState

    state = AliyunState()
    try:
        for provider, _mode, _kind, _language, text in (p.values for p in all_texts()):
            if provider == "aliyun":
                for placeholder, value in SAMPLE.items():
                    text = text.replace(placeholder, value)
                state.add_template(f"SMS_{abs(hash(text)) % 10**6}", text)
    finally:
        state.close()


def test_templates_setting_is_checked_at_start_up(tmp_path):
    base = {
        "SMS_BACKEND": "aliyun",
        "ALIYUN_ACCESS_KEY_ID": "LTAI-test",
        "ALIYUN_ACCESS_KEY_SECRET": "secret",
        "ALIYUN_SMS_SIGN_NAME": "随访中心",
        "SMS_CALLBACK_SECRET": "cb",
        "SMS_TEMPLATES": json.dumps(ALIYUN_TEMPLATES),
    }
    TestingConfig(base, instance_path=tmp_path)
    no_alert = {k: v for k, v in ALIYUN_TEMPLATES.items() if k != "redflag_alert"}
    with pytest.raises(ConfigError, match="SMS_TEMPLATES: a zh template id for 'redflag_alert'"):
        TestingConfig({**base, "SMS_TEMPLATES": json.dumps(no_alert)}, instance_path=tmp_path)
    with pytest.raises(ConfigError, match="SMS_TEMPLATES: unknown kind 'invitation'"):
        TestingConfig(
            {**base, "SMS_TEMPLATES": json.dumps({**ALIYUN_TEMPLATES, "invitation": {"zh": "x"}})},
            instance_path=tmp_path,
        )
    for name in ("ALIYUN_ACCESS_KEY_SECRET", "ALIYUN_SMS_SIGN_NAME", "SMS_CALLBACK_SECRET"):
        with pytest.raises(ConfigError, match=f"^{name}: required"):
            TestingConfig({**base, name: ""}, instance_path=tmp_path)
    tencent = {"SMS_BACKEND": "tencent", "SMS_TEMPLATES": base["SMS_TEMPLATES"], "SMS_CALLBACK_SECRET": "cb"}
    with pytest.raises(ConfigError, match="^TENCENT_SECRET_ID: required"):
        TestingConfig(tencent, instance_path=tmp_path)
    assert check_templates("twilio", {}) is None  # free-text backends need none


def test_language_falls_back_to_zh_and_missing_kinds_have_none():
    config = {"SMS_TEMPLATES": {"invite": {"zh": "Z"}, "reminder": {"zh": "Z2", "en": "E2"}}}
    assert template_id(config, "invite", "en") == "Z"
    assert template_id(config, "reminder", "en") == "E2"
    assert template_id(config, "stop_confirm", "zh") is None


def test_records_are_cut_to_fit_with_a_count():
    assert records_label(["1001"]) == "1001"
    assert records_label(["1001", "1002"]) == "1001,1002"
    many = [f"S{n:05d}" for n in range(20)]
    label = records_label(many)
    assert len(label) <= 30 and label.endswith(f"+{20 - label.count(',') - 1}")


def test_compose_gives_the_documented_params_and_the_unchanged_body(app):
    participant, visit = open_visit(language="zh", days_since_discharge=25)
    plan_due(NOW)
    row = db.session.scalar(select(OutboundMessage).where(OutboundMessage.visit_id == visit.id))
    message = compose(row, NOW)
    assert message.kind == "invite" and message.language == "zh"
    assert set(message.params) == {"visit", "deadline", "code"}
    assert message.params["deadline"] == deadline_label(visit.closes_at, participant.timezone, "zh")
    assert f"/s/{message.params['code']}" in message.body  # free-text providers send the catalogue text
    assert message.ordered_params() == [
        message.params["visit"],
        message.params["deadline"],
        message.params["code"],
    ]
    assert message.stored_params()["code"] == "[redacted]"


def test_twilio_to_a_mainland_number_promises_no_reply(twilio_env_factory):
    """Twilio carries no replies from +86 numbers: the text says how to stop on the web page instead."""
    env = twilio_env_factory()
    with env.app.app_context():
        mainland, _ = open_visit(language="en", days_since_discharge=25)
        elsewhere, _ = open_visit(language="en", days_since_discharge=25, phone="+15550101")
        plan_due(NOW)
        rows = {r.participant_id: r for r in db.session.scalars(select(OutboundMessage))}
        for row in rows.values():
            row.to_e164 = row.participant.phone_e164
        to_mainland = compose(rows[mainland.id], NOW).body
        to_elsewhere = compose(rows[elsewhere.id], NOW).body
        assert "Reply STOP" not in to_mainland and "Stop text reminders" in to_mainland
        assert "Reply STOP" in to_elsewhere
        db.session.remove()


def test_entry_mode_gives_a_short_code_and_still_a_working_link(app_factory):
    app = app_factory(SMS_LINK_MODE="entry")
    with app.app_context():
        _, visit = open_visit(language="zh", days_since_discharge=25)
        plan_due(NOW)
        row = db.session.scalar(select(OutboundMessage).where(OutboundMessage.visit_id == visit.id))
        message = compose(row, NOW)
        assert re.fullmatch(r"[23456789ABCDEFGHJKMNPQRSTUVWXYZ]{8}", message.params["code"])
        assert "/s/" in message.body  # free-text providers still send a link that opens
        db.session.remove()


def test_deadline_is_the_last_local_day():
    from datetime import UTC, datetime

    closes = datetime(2026, 12, 5, 16, 0, tzinfo=UTC)  # midnight 6 Dec in Shanghai, exclusive
    assert deadline_label(closes, "Asia/Shanghai", "zh") == "12月5日"
    assert deadline_label(closes, "Asia/Shanghai", "en") == "5 Dec"


def test_stop_confirm_without_a_template_is_skipped_with_a_reason(aliyun_env):
    row = OutboundMessage(
        dedupe_key="test:stop-confirm", kind="test", to_e164="+8613800138500", language="zh",
        template="stop_confirm", status="pending", due_at=NOW, created_at=NOW,
    )  # fmt: skip
    db.session.add(row)
    db.session.commit()
    send_due(NOW)
    db.session.refresh(row)
    assert row.status == "skipped" and "no 'stop_confirm' template" in row.error_message
    assert aliyun_env.state.messages == []


def _alert(number: str, record: str, n: int) -> None:
    participant, _ = open_visit(record_id=record)
    db.session.add(
        OutboundMessage(
            dedupe_key=f"redflag:{n}:0",
            kind="redflag_alert",
            template="redflag_alert",
            to_e164=number,
            due_at=NOW,
            participant_id=participant.id,
            language="zh",
            created_at=NOW,
        )
    )
    db.session.commit()


def test_red_flag_alerts_coalesce_into_one_text_per_oncall_phone(aliyun_env):
    for n in range(12):
        _alert("+8613800138601", f"R{n:04d}", n)
    _alert("+8613800138602", "R9999", 99)
    summary = send_due(NOW)
    assert summary["coalesced"] == 11
    texts = aliyun_env.state.messages
    assert len(texts) == 2
    records = next(t for t in texts if t.phone.endswith("8601")).params["records"]
    assert records.startswith("R0000,R0001") and re.search(r"\+\d+$", records) and len(records) <= 30
    skipped = db.session.scalars(select(OutboundMessage).where(OutboundMessage.status == "skipped")).all()
    assert len(skipped) == 11 and all("coalesced into alert" in r.error_message for r in skipped)


def test_one_planned_reminder_a_local_day(app):
    participant, visit = open_visit(days_since_discharge=25)
    plan_due(NOW)
    assert send_due(NOW)["sent"] == 1
    # A second visit's reminder due the same local day waits for the next morning.
    other = OutboundMessage(
        dedupe_key="visit:x:r9", kind="reminder", participant_id=participant.id, visit_id=visit.id,
        slot="r9", to_e164=participant.phone_e164, language="en", template="reminder", status="pending",
        due_at=NOW + timedelta(hours=2), schedule_version=visit.schedule_version, created_at=NOW,
    )  # fmt: skip
    db.session.add(other)
    db.session.commit()
    summary = send_due(NOW + timedelta(hours=2))
    assert summary["sent"] == 0 and summary["deferred"] == 1
    db.session.refresh(other)
    assert other.status == "pending" and other.due_at.date() > NOW.date()


def test_halt_is_lifted_by_resume(aliyun_env):
    from app.sms.providers import ProviderError

    carriers.halt(ProviderError("bad sign", code="isv.SMS_SIGNATURE_ILLEGAL", halt=True), NOW)
    db.session.commit()
    assert carriers.halted()
    assert carriers.resume(NOW, "test")["code"] == "isv.SMS_SIGNATURE_ILLEGAL"
    assert not carriers.halted()


def test_a_halt_shows_on_the_work_list_and_in_health(aliyun_env):
    from app.console.worklist import build_worklist
    from app.health.checks import health_report
    from app.sms.providers import ProviderError

    assert health_report(aliyun_env.app.config, NOW)["sms_sending"] == "ok"
    carriers.halt(
        ProviderError("Aliyun error isv.SMS_TEMPLATE_ILLEGAL: x", code="isv.SMS_TEMPLATE_ILLEGAL", halt=True),
        NOW,
    )
    db.session.commit()
    assert any("isv.SMS_TEMPLATE_ILLEGAL" in alert for alert in build_worklist(NOW).alerts)
    report = health_report(aliyun_env.app.config, NOW)
    assert report["sms_sending"] == "halted" and report["ok"] is False
