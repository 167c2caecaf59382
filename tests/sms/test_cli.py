"""`flask --app wsgi sms test PHONE` and `tick` with the SMS steps, through the real CLI runner."""

from __future__ import annotations

from sqlalchemy import select

from app.extensions import db
from app.models import OutboundMessage
from tests.sms.conftest import NOW, open_visit


def test_sms_test_sends_one_text_through_twilio(twilio_server):
    result = twilio_server.app.test_cli_runner().invoke(args=["sms", "test", "138 0013 8123"])
    assert result.exit_code == 0, result.output
    assert (
        result.output.count("\n") == 1 and "sent test SMS to +***********23 via twilio: SM" in result.output
    )
    (message,) = twilio_server.state.messages
    assert message.to == "+8613800138123" and "test message" in message.body
    assert db.session.scalar(select(OutboundMessage.kind)) == "test"


def test_sms_test_refuses_a_bad_number_and_sends_nothing(twilio_server):
    result = twilio_server.app.test_cli_runner().invoke(args=["sms", "test", "12345"])
    assert result.exit_code != 0 and "not a valid number" in result.output
    assert twilio_server.state.messages == []


def test_sms_test_reports_a_refusal(twilio_server):
    twilio_server.state.set_outcome("+8613800138124", create_error=21610)
    result = twilio_server.app.test_cli_runner().invoke(args=["sms", "test", "+8613800138124"])
    assert result.exit_code != 0 and "not sent" in result.output and "21610" in result.output


def test_console_backend_prints_the_text_with_a_masked_number_and_logs_it_masked(app_factory, capsys, caplog):
    app = app_factory(SMS_BACKEND="console")
    app.config["TESTING"] = False  # the console prints only outside tests; make it print here
    with app.app_context():
        participant, _ = open_visit()
        from app.tick import run_tick

        summary = run_tick(NOW, only=["sweep", "plan", "reconcile", "send"])
        assert summary["send.sent"] == 1
        out = capsys.readouterr().out
        # Outside development the link is redacted (tests/sms/test_console_backend.py shows both).
        assert "/s/[token]" in out
        assert participant.phone_e164 not in out and participant.phone_e164[-2:] in out
        logged = " ".join(r.getMessage() for r in caplog.records)
        assert participant.phone_e164 not in logged and "/s/" not in logged
        result = app.test_cli_runner().invoke(args=["sms", "test", "+8613800138555"])
        assert result.exit_code == 0 and "via console" in result.output
        db.session.remove()


def test_tick_command_runs_the_sms_steps(twilio_server):
    open_visit()
    result = twilio_server.app.test_cli_runner().invoke(args=["tick", "--now", NOW.isoformat()])
    assert result.exit_code == 0, result.output
    assert "plan.planned=1" in result.output and "send.sent=1" in result.output
    assert len(twilio_server.state.messages) == 1


def test_sms_resume_lifts_a_stop_audited_and_sending_goes_on(aliyun_env):
    from sqlalchemy import select

    from app.models import AuditEntry
    from app.sms import carriers
    from app.sms.planner import plan_due
    from app.sms.sender import send_due
    from tests.sms.conftest import open_visit

    for code in ("SMS_470001", "SMS_470003"):  # the provider withdrew our zh templates
        aliyun_env.state.templates.pop(code)
    open_visit(language="zh", days_since_discharge=25)
    plan_due(NOW)
    assert send_due(NOW)["halted"] == 1
    assert carriers.halted()
    aliyun_env.state.reset()  # the study team re-registered them

    runner = aliyun_env.app.test_cli_runner()
    result = runner.invoke(args=["sms", "resume", "--reason", "templates re-approved"])
    assert result.exit_code == 0, result.output
    assert "SMS sending via aliyun resumed" in result.output
    assert "isv.SMS_TEMPLATE_ILLEGAL" in result.output
    assert not carriers.halted()
    entry = db.session.scalar(select(AuditEntry).where(AuditEntry.action == "sms.resumed"))
    assert entry.actor == "cli:sms-resume" and entry.reason == "templates re-approved"
    assert entry.detail["code"] == "isv.SMS_TEMPLATE_ILLEGAL" and entry.detail["in_force"] is True
    assert send_due(NOW)["sent"] == 1
    assert len(aliyun_env.state.messages) == 1

    again = runner.invoke(args=["sms", "resume"])
    assert again.exit_code == 0
    assert "was not stopped: nothing to resume" in again.output
    assert db.session.scalar(select(AuditEntry).where(AuditEntry.action == "sms.resumed").offset(1)) is None
