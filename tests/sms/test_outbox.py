"""The outbox against a local Twilio server: unique planning, send-time checks, staleness, manual reminders."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from app.extensions import db
from app.models import AuditEntry, OutboundMessage, SurveyLink, Visit
from app.participants.pending_texts import cancel_pending_texts
from app.participants.visits import complete_visit
from app.sms.planner import CannotQueue, OutsideSendWindow, plan_due, queue_manual_reminder
from app.sms.sender import send_due
from app.tick import run_tick
from tests.sms.conftest import NOW, open_visit

SMS_STEPS = ["sweep", "plan", "reconcile", "send"]


def _rows(**filters) -> list[OutboundMessage]:
    query = select(OutboundMessage).order_by(OutboundMessage.id)
    for name, value in filters.items():
        query = query.where(getattr(OutboundMessage, name) == value)
    return list(db.session.scalars(query))


def test_planning_twice_plans_nothing_new_and_sends_once(twilio_server):
    participants = [open_visit()[0] for _ in range(3)]
    first = plan_due(NOW)
    again = plan_due(NOW)
    later = plan_due(NOW + timedelta(minutes=5))
    assert (first.planned, again.planned, later.planned) == (3, 0, 0)
    assert db.session.scalar(select(func.count()).select_from(OutboundMessage)) == 3
    run_tick(NOW, only=SMS_STEPS)
    run_tick(NOW + timedelta(minutes=1), only=SMS_STEPS)
    run_tick(NOW + timedelta(minutes=2), only=SMS_STEPS)
    state = twilio_server.state
    assert sorted(m.to for m in state.messages) == sorted(p.phone_e164 for p in participants)
    assert state.duplicates() == []


def test_body_has_a_working_link_and_is_never_stored(twilio_server):
    participant, visit = open_visit()
    plan_due(NOW)
    send_due(NOW)
    (message,) = twilio_server.state.sent_to(participant.phone_e164)
    assert f"{twilio_server.web.url}/s/" in message.body
    token = message.body.split("/s/")[1].split()[0]
    assert (
        db.session.scalar(select(func.count()).select_from(SurveyLink).where(SurveyLink.visit_id == visit.id))
        == 1
    )
    row = _rows(visit_id=visit.id)[0]
    stored = " ".join(str(getattr(row, c.name)) for c in OutboundMessage.__table__.columns)
    assert token not in stored
    assert row.provider_sid == message.sid and row.segments == message.num_segments
    db.session.expire_all()
    visit = db.session.get(Visit, visit.id)
    assert visit.reminders_sent == 1 and visit.invited_at is not None


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (lambda p: setattr(p, "opted_out", True), "opted out"),
        (lambda p: setattr(p, "status", "withdrawn"), "status withdrawn"),
        (lambda p: setattr(p, "status", "deceased"), "status deceased"),
        (lambda p: setattr(p, "status", "lost"), "status lost"),
        (lambda p: setattr(p, "sms_consent", False), "no SMS consent"),
        (lambda p: setattr(p, "phone_status", "unusable"), "phone unusable"),
    ],
)
def test_nothing_to_a_participant_blocked_after_planning(twilio_server, change, reason):
    participant, _ = open_visit()
    assert plan_due(NOW).planned == 1
    change(participant)
    db.session.commit()
    summary = send_due(NOW)
    assert summary["sent"] == 0 and summary["skipped"] == 1
    (row,) = _rows(participant_id=participant.id)
    assert row.status == "skipped" and reason in row.error_message
    assert twilio_server.state.messages == []


def test_nothing_for_a_visit_completed_or_cancelled_after_planning(twilio_server):
    _first, visit1 = open_visit()
    _second, visit2 = open_visit()
    plan_due(NOW)
    complete_visit(visit1, "clinic", NOW, actor="coordinator:test")
    visit2.status = "cancelled"  # changed behind the outbox's back: the send-time check still catches it
    db.session.commit()
    send_due(NOW)
    assert twilio_server.state.messages == []
    assert {r.status for r in _rows()} == {"cancelled", "skipped"}


def test_after_downtime_only_the_latest_due_slot_goes_out(twilio_server):
    # Discharged 29 days ago: r0 (day 25) and r1 (day 28) are both due, nothing was planned.
    _participant, visit = open_visit(days_since_discharge=29)
    result = plan_due(NOW)
    assert (result.planned, result.stale) == (1, 1)
    summary = send_due(NOW)
    assert summary["sent"] == 1 and summary["caught_up"] == 1
    rows = {r.slot: r for r in _rows(visit_id=visit.id)}
    assert rows["r0"].status == "skipped" and rows["r0"].error_message.startswith("stale")
    assert rows["r1"].status in ("queued", "sent", "delivered")
    assert len(twilio_server.state.messages) == 1


def test_pending_earlier_slot_is_skipped_when_a_later_one_is_due(twilio_server):
    participant, visit = open_visit(days_since_discharge=25)
    plan_due(NOW)  # r0 planned, never sent (the sender was down)
    later = NOW + timedelta(days=3)
    plan_due(later)  # r1 now due too
    summary = send_due(later)
    assert summary["stale"] == 1 and summary["sent"] == 1
    assert [m.to for m in twilio_server.state.messages] == [participant.phone_e164]
    assert {r.slot: r.status for r in _rows(visit_id=visit.id)}["r0"] == "skipped"


def test_nothing_for_a_visit_that_closed_while_down(twilio_server):
    _participant, visit = open_visit(days_since_discharge=30)
    plan_due(NOW)
    after_close = visit.closes_at + timedelta(hours=10)
    summary = run_tick(after_close, only=SMS_STEPS)
    assert summary["sweep.missed"] == 1
    assert twilio_server.state.messages == []
    assert all(r.status in ("cancelled", "skipped") for r in _rows(visit_id=visit.id))


def test_outside_the_window_a_due_text_waits_for_the_morning(twilio_server):
    _participant, visit = open_visit(days_since_discharge=26)
    night = NOW.replace(hour=15)  # 23:00 in Shanghai
    plan_due(night)
    summary = send_due(night)
    assert summary["deferred"] == 1 and twilio_server.state.messages == []
    (row,) = _rows(visit_id=visit.id)
    assert row.status == "pending" and row.due_at == NOW.replace(hour=1) + timedelta(days=1)  # 09:00 local
    assert send_due(night + timedelta(hours=3))["sent"] == 0
    assert send_due(row.due_at)["sent"] == 1


def test_manual_reminder_rules(twilio_server):
    participant, visit = open_visit()
    message = queue_manual_reminder(visit, NOW, actor="coordinator:1")
    db.session.commit()
    assert message.slot == "manual-1" and message.due_at == NOW
    with pytest.raises(CannotQueue, match="last 60 minutes"):
        queue_manual_reminder(visit, NOW + timedelta(minutes=5), actor="coordinator:1")
    assert send_due(NOW)["sent"] == 1
    night = NOW + timedelta(hours=12)  # 00:00 local, more than an hour later
    with pytest.raises(OutsideSendWindow):
        queue_manual_reminder(visit, night, actor="coordinator:1")
    second = queue_manual_reminder(visit, night, actor="coordinator:1", outside_window_confirmed=True)
    db.session.commit()
    assert second.slot == "manual-2"
    assert send_due(night)["sent"] == 1
    assert len(twilio_server.state.messages) == 2
    assert (
        db.session.scalar(
            select(func.count()).select_from(AuditEntry).where(AuditEntry.action == "sms.manual_queued")
        )
        == 2
    )
    participant.opted_out = True
    db.session.commit()
    with pytest.raises(CannotQueue, match="opted out"):
        queue_manual_reminder(visit, night + timedelta(hours=3), actor="coordinator:1")
    visit.status = "completed"
    participant.opted_out = False
    db.session.commit()
    with pytest.raises(CannotQueue, match="not open"):
        queue_manual_reminder(visit, night + timedelta(hours=3), actor="coordinator:1")


def test_cancel_pending_withdraws_texts_and_is_audited(twilio_server):
    participant, visit = open_visit()
    plan_due(NOW)
    assert cancel_pending_texts(participant, reason="coordinator paused texts", actor="coordinator:1") == 1
    db.session.commit()
    assert send_due(NOW)["sent"] == 0
    assert _rows(visit_id=visit.id)[0].status == "cancelled"
    assert db.session.scalar(select(AuditEntry).where(AuditEntry.action == "sms.cancelled")) is not None


def test_every_kind_is_sent_redflag_alert_to_oncall(twilio_server):
    participant, _visit = open_visit(record_id="R-0042")
    participant.opted_out = True  # the alert is about them, not to them: it still goes out
    db.session.add(
        OutboundMessage(
            dedupe_key="redflag:7:0",
            kind="redflag_alert",
            participant_id=participant.id,
            to_e164="+15550123",
            template="redflag_alert",
            status="pending",
            due_at=NOW.replace(hour=18),  # 02:00 local: alerts ignore the send window
        )
    )
    db.session.commit()
    assert send_due(NOW.replace(hour=18))["sent"] == 1
    (alert,) = twilio_server.state.sent_to("+15550123")
    assert "R-0042" in alert.body and "/s/" not in alert.body
