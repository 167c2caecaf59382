"""SMS_BACKEND=tencent end to end: the real tencentcloud SDK against the local Tencent Cloud server."""

from __future__ import annotations

import time
from datetime import timedelta

from sqlalchemy import select

from app.extensions import db
from app.models import OutboundMessage, Participant
from app.participants.links import find_link
from app.sms import carriers
from app.sms.planner import plan_due
from app.sms.reconcile import reconcile_stuck, stuck_after
from app.sms.sender import send_due
from tests.sms.conftest import NOW, open_visit


def _row(visit_id: int) -> OutboundMessage:
    db.session.expire_all()
    return db.session.scalar(select(OutboundMessage).where(OutboundMessage.visit_id == visit_id))


def test_invite_sends_the_ordered_parameters_and_the_report_is_recorded(tencent_env):
    _, visit = open_visit(language="zh", days_since_discharge=25)
    plan_due(NOW)
    assert send_due(NOW)["sent"] == 1
    [sms] = tencent_env.state.sent
    assert sms.template_id == "2000001"
    visit_label, deadline, code = sms.params  # {1} visit, {2} deadline, {3} code
    assert visit_label == "第4周" and deadline.endswith("日")
    assert find_link(code).visit_id == visit.id
    row = _row(visit.id)
    assert sms.session_context == str(row.id)
    assert row.provider_sid == sms.serial_no
    tencent_env.state.wait_idle()
    assert _row(visit.id).status == "delivered"


def test_a_td_reply_stops_every_further_text(tencent_env):
    participant, _ = open_visit(language="zh", days_since_discharge=25)
    attempts = tencent_env.state.simulate_reply(participant.phone_e164, "td")
    assert attempts[-1].accepted
    # The same reply pushed twice is handled once.
    tencent_env.state.simulate_reply(participant.phone_e164, "td")
    db.session.expire_all()
    assert db.session.get(Participant, participant.id).opted_out
    plan_due(NOW)
    assert send_due(NOW)["sent"] == 0
    assert tencent_env.state.sent == []


def test_no_duplicate_after_an_ambiguous_failure(tencent_env):
    _, visit = open_visit(language="zh", days_since_discharge=25)
    plan_due(NOW)
    # Slower than the 1 s timeout: the send times out after the server has taken the text, and so
    # does the lookup, so the row stays `sending` for the reconciler; never a blind re-send.
    tencent_env.state.configure({"latency_ms": 1300})
    assert send_due(NOW)["unknown"] == 1
    tencent_env.state.configure({"latency_ms": 0})
    deadline = time.monotonic() + 5
    while not tencent_env.state.sent and time.monotonic() < deadline:
        time.sleep(0.05)
    tencent_env.state.wait_idle()
    assert _row(visit.id).status == "sending"
    later = NOW + stuck_after() + timedelta(minutes=1)
    assert reconcile_stuck(later)["adopted"] == 1
    assert len(tencent_env.state.sent) == 1
    assert _row(visit.id).provider_sid == tencent_env.state.sent[0].serial_no


def test_a_daily_limit_defers_and_a_bad_signature_halts(tencent_env):
    participant, visit = open_visit(language="zh", days_since_discharge=25)
    tencent_env.state.set_outcome(participant.phone_e164, send_code="LimitExceeded.PhoneNumberDailyLimit")
    plan_due(NOW)
    assert send_due(NOW)["deferred"] == 1
    row = _row(visit.id)
    assert row.status == "pending" and row.due_at >= NOW + timedelta(hours=23)
    tencent_env.app.config["TENCENT_SMS_SIGN_NAME"] = "未登记的签名"
    open_visit(language="zh", days_since_discharge=25)
    plan_due(NOW)
    assert send_due(NOW)["halted"] == 1
    assert "SignatureIncorrectOrUnapproved" in carriers.halt_reason()


def test_a_bad_number_marks_it_invalid(tencent_env):
    participant, _ = open_visit(language="zh", days_since_discharge=25)
    tencent_env.state.set_outcome(
        participant.phone_e164, send_code="InvalidParameterValue.IncorrectPhoneNumber"
    )
    plan_due(NOW)
    assert send_due(NOW)["failed"] == 1
    db.session.expire_all()
    assert db.session.get(Participant, participant.id).phone_status == "invalid"


def test_a_variable_over_the_accounts_limit_stops_sending(tencent_env):
    """Start-up checks TENCENT_SMS_PARAM_MAX_CHARS; if the account's real limit is lower, every text with
    the 22-character code is refused: sending stops with the code, rather than failing text after text."""
    tencent_env.state.configure({"limits": {"max_param_chars": 6}})
    open_visit(language="zh", days_since_discharge=25)
    plan_due(NOW)
    assert send_due(NOW)["halted"] == 1
    assert "TemplateParameterLengthLimit" in carriers.halt_reason()
    assert tencent_env.state.sent == []
