"""Crash recovery with providers whose lists lag: Tencent's status pull, Aliyun's QuerySendDetails.

Tencent's PullSmsSendStatusByPhoneNumber lists a text only once its delivery report exists, so a text it
took seconds ago looks absent: reconciliation must not re-send it until TENCENT_SMS_STATUS_LAG has passed
too. Aliyun's QuerySendDetails lists a text at once, waiting for its receipt (SendStatus 1). Real SDKs
against the local servers; the stuck-timeout is each backend's own.
"""

from __future__ import annotations

import secrets
from datetime import timedelta

import pytest
from sqlalchemy import select

from app.extensions import db
from app.models import OutboundMessage
from app.participants import entry_codes, links
from app.sms import message as sms_message
from app.sms.kinds import CODE_CHARS, LONGEST_PARAM, param_length_problem
from app.sms.matching import NotListedYet, find_match, matches
from app.sms.planner import plan_due
from app.sms.providers import SentRecord, get_provider
from app.sms.reconcile import absent_after, reconcile_stuck, stuck_after
from app.sms.sender import send_due
from config import ConfigError, TestingConfig
from tests.sms.conftest import NOW, open_visit


def _row(visit_id: int) -> OutboundMessage:
    db.session.expire_all()
    return db.session.scalar(select(OutboundMessage).where(OutboundMessage.visit_id == visit_id))


def _crash_after_the_provider_took_it(visit_id: int) -> OutboundMessage:
    """The sender died after the provider accepted the text and before its SID was committed."""
    row = _row(visit_id)
    row.status, row.provider_sid, row.claimed_at, row.claimed_by = "sending", None, NOW, "dead-worker"
    db.session.commit()
    return row


def test_tencent_not_listed_yet_waits_out_the_lag_then_decides(tencent_env):
    tencent_env.state.configure({"report_delay": 3600})  # accepted, no report for an hour
    _, visit = open_visit(language="zh", days_since_discharge=25)
    plan_due(NOW)
    assert send_due(NOW)["sent"] == 1
    _crash_after_the_provider_took_it(visit.id)
    provider = get_provider()
    lag = provider.listing_lag
    assert lag == timedelta(seconds=600)  # TENCENT_SMS_STATUS_LAG's default

    # Past the stuck-timeout, not past the lag: the pull shows nothing, which proves nothing.
    counts = reconcile_stuck(NOW + stuck_after() + timedelta(minutes=1))
    assert counts["waiting"] == 1 and counts["released"] == 0
    row = _row(visit.id)
    assert row.status == "sending" and "does not list the text yet" in row.error_message
    assert send_due(NOW + stuck_after() + timedelta(minutes=1))["sent"] == 0
    assert len(tencent_env.state.sent) == 1

    # (Once the report exists the text is found and adopted: test_tencent.py's ambiguous-failure test.)


def test_tencent_after_the_lag_not_found_means_absent(tencent_env):
    tencent_env.app.config["TENCENT_SMS_STATUS_LAG"] = 120.0
    _, visit = open_visit(language="zh", days_since_discharge=25)
    plan_due(NOW)
    # A claim that died before the provider was called: it never lists the text.
    row = _row(visit.id)
    row.status, row.claimed_at, row.claimed_by, row.to_e164 = "sending", NOW, "dead-worker", "+8613800138001"
    db.session.commit()
    provider = get_provider()
    assert absent_after(provider) == stuck_after() + timedelta(seconds=120)
    assert reconcile_stuck(NOW + stuck_after() + timedelta(seconds=60))["waiting"] == 1
    assert reconcile_stuck(NOW + absent_after(provider) + timedelta(seconds=1))["released"] == 1
    assert _row(visit.id).status == "pending"


def test_tencent_live_lookup_after_an_unclear_send_never_answers_absent(tencent_env):
    """After an ambiguous SendSms, "not in the pull" must leave the row to reconciliation, not re-send."""
    tencent_env.state.configure({"report_delay": 3600})
    _, visit = open_visit(language="zh", days_since_discharge=25)
    plan_due(NOW)
    assert send_due(NOW)["sent"] == 1
    row = _crash_after_the_provider_took_it(visit.id)
    with pytest.raises(NotListedYet):
        find_match(get_provider(), row, None, NOW)


def test_aliyun_lists_a_just_sent_text_at_once_and_it_is_adopted(aliyun_env):
    aliyun_env.state.configure({"report_delay": 3600})
    _, visit = open_visit(language="zh", days_since_discharge=25)
    plan_due(NOW)
    assert send_due(NOW)["sent"] == 1
    [sent] = aliyun_env.state.messages
    assert sent.status == 1  # SendStatus 1: waiting for the receipt, and listed all the same
    row = _crash_after_the_provider_took_it(visit.id)
    provider = get_provider()
    assert provider.listing_lag == timedelta(0)
    [record] = provider.find_sent(row.to_e164, NOW - timedelta(minutes=5))
    assert record.ref == str(row.id) and record.status == "sent"
    assert reconcile_stuck(NOW + stuck_after() + timedelta(minutes=1))["adopted"] == 1
    assert _row(visit.id).status in ("queued", "sent")
    assert len(aliyun_env.state.messages) == 1


def test_the_stuck_timeout_is_the_backends_own(aliyun_env):
    config = aliyun_env.app.config
    config["TWILIO_TIMEOUT"] = 1.0
    config["ALIYUN_SMS_TIMEOUT"] = 30.0
    # 4 tries x (3 x 30 s + 2 x 8 s of backoff) + 60 s
    assert stuck_after() == timedelta(seconds=4 * (3 * 30 + 16) + 60)
    config["SMS_BACKEND"] = "tencent"
    config["TENCENT_SMS_TIMEOUT"] = 5.0
    assert stuck_after() == timedelta(seconds=4 * (3 * 5 + 16) + 60)
    config["SMS_BACKEND"] = "console"
    assert stuck_after() == timedelta(seconds=4 * (3 * 15 + 16) + 60)


def test_a_link_text_of_a_row_never_claimed_matches_without_a_send_date(twilio_server):
    """The fallback for an unclaimed row used to compute datetime.min - 5 min (OverflowError) and, with
    no created_at from the provider, to dereference None."""
    _, visit = open_visit()
    token = links.issue_link(visit, NOW)
    db.session.commit()
    row = OutboundMessage(
        dedupe_key="t:unclaimed",
        kind="reminder",
        template="reminder",
        participant_id=visit.participant_id,
        visit_id=visit.id,
        to_e164="+8613800138002",
        language="en",
        status="pending",
        due_at=NOW,
        created_at=NOW,
    )
    body = f"GZ Follow-up: https://example.org/s/{token}"
    record = SentRecord(sid="SM1", to="+8613800138002", status="sent", created_at=None, body=body)
    assert matches(row, record, NOW)
    other = SentRecord(
        sid="SM2", to="+8613800138002", status="sent", created_at=None, body=body.replace(token, "x" * 22)
    )
    assert not matches(row, other, NOW)


def _tencent_settings(**extra: str) -> dict[str, str]:
    return {
        "SMS_BACKEND": "tencent",
        "SMS_TEMPLATES": '{"invite":{"zh":"1"},"reminder":{"zh":"2"},"redflag_alert":{"zh":"3"}}',
        "SMS_CALLBACK_SECRET": "cb",
        "TENCENT_SECRET_ID": "id",
        "TENCENT_SECRET_KEY": "key",
        "TENCENT_SMS_SDK_APP_ID": "1400000000",
        "TENCENT_SMS_SIGN_NAME": "随访中心",
        **extra,
    }


def test_start_up_says_when_tencents_variable_limit_cannot_fit(tmp_path):
    with pytest.raises(ConfigError) as refused:
        TestingConfig(_tencent_settings(TENCENT_SMS_PARAM_MAX_CHARS="6"), instance_path=tmp_path)
    message = str(refused.value)
    assert message.startswith("TENCENT_SMS_PARAM_MAX_CHARS=6:")
    assert "code up to 22 in SMS_LINK_MODE=path (invite, reminder)" in message
    assert "records up to 30 (redflag_alert)" in message
    assert message.endswith("set TENCENT_SMS_PARAM_MAX_CHARS=30")
    with pytest.raises(ConfigError, match="code up to 8 in SMS_LINK_MODE=entry"):
        TestingConfig(
            _tencent_settings(SMS_LINK_MODE="entry", TENCENT_SMS_PARAM_MAX_CHARS="7"), instance_path=tmp_path
        )
    assert TestingConfig(_tencent_settings(TENCENT_SMS_PARAM_MAX_CHARS="30"), instance_path=tmp_path)
    # Unset, the account's limit is unknown: nothing is refused at start-up (Tencent's own refusal halts).
    assert TestingConfig(_tencent_settings(), instance_path=tmp_path)
    # Aliyun has no such account-wide limit here; the check is Tencent's only.
    assert param_length_problem({"SMS_BACKEND": "aliyun", "SMS_TEMPLATES": {"invite": {"zh": "x"}}}) is None


def test_the_checked_lengths_are_the_real_ones():
    assert CODE_CHARS["path"] == len(secrets.token_urlsafe(links.TOKEN_BYTES))
    assert CODE_CHARS["entry"] == entry_codes.CODE_LENGTH
    assert LONGEST_PARAM["records"] == sms_message.RECORDS_MAX_CHARS
    from datetime import UTC, datetime

    longest_day = datetime(2026, 12, 26, tzinfo=UTC)  # closes_at is exclusive: the 25th
    assert len(sms_message.deadline_label(longest_day, "UTC", "zh")) <= LONGEST_PARAM["deadline"]
    assert len(sms_message.deadline_label(longest_day, "UTC", "en")) <= LONGEST_PARAM["deadline"]
