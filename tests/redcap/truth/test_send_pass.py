"""End to end over real HTTP: roster sync learns what REDCap already has, then the send pass texts nobody
whose visit was done in REDCap; and the send-time freshness check waits when REDCap is down."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from app.extensions import db
from app.models import OutboundMessage, Participant, Visit
from app.tick import run_tick
from tests.redcap.truth.conftest import baseline_row, staff_questionnaire
from tests.redcap.truth.helpers import pending_message, scheduled, visit_of

SENT = ("sending", "queued", "sent", "delivered")


def _noon_shanghai() -> datetime:
    """Today 12:00 in Shanghai (04:00 UTC): inside the default 09:00-20:00 send window."""
    today = datetime.now(UTC).date()
    return datetime(today.year, today.month, today.day, 4, 0, tzinfo=UTC)


def _messages(record: str) -> list[OutboundMessage]:
    return list(
        db.session.query(OutboundMessage)
        .join(Participant, OutboundMessage.participant_id == Participant.id)
        .filter(Participant.record_id == record)
    )


def test_no_sms_when_visit_was_entered_in_redcap_before_the_send_pass(truth_app, redcap):
    app = truth_app()
    with app.app_context():
        now = _noon_shanghai()
        discharge = now.date() - timedelta(days=26)  # week 4 window open today
        redcap.state.seed_records(
            [
                baseline_row("6001", discharge, phone="13800138061"),
                baseline_row("6002", discharge, phone="13800138062"),
                baseline_row("6003", discharge, phone="13800138063"),
                staff_questionnaire("6001"),  # done in clinic, entered by staff in REDCap
                {"record_id": "6003", "redcap_event_name": "week_4_arm_1", "fu_visit_status": "4"},
            ]
        )
        roster = run_tick(now, only=["roster"])
        assert "roster.error" not in roster, roster
        week4 = {
            r: db.session.query(Visit)
            .join(Participant)
            .filter(Participant.record_id == r, Visit.visit_key == "week_4")
            .one()
            for r in ("6001", "6002", "6003")
        }
        assert week4["6001"].status == "completed" and week4["6001"].completed_via == "redcap"
        assert week4["6003"].status == "completed" and week4["6003"].completed_via == "redcap"
        assert week4["6002"].status != "completed"

        summary = run_tick(now, only=["det", "sweep", "plan", "reconcile", "send"])
        assert not any(k.endswith(".error") for k in summary), summary
        assert [m for m in _messages("6001") if m.status in SENT] == []
        assert [m for m in _messages("6003") if m.status in SENT] == []
        assert [m.status for m in _messages("6002")] and all(m.status in SENT for m in _messages("6002"))


def test_roster_sync_status_export_is_batched(truth_app, redcap):
    app = truth_app()
    with app.app_context():
        now = _noon_shanghai()
        discharge = now.date() - timedelta(days=26)
        redcap.state.seed_records([baseline_row(f"7{n:03d}", discharge) for n in range(60)])
        redcap.state.clear_calls()
        assert "roster.error" not in run_tick(now, only=["roster"])
        status_calls = [c for c in redcap.calls() if "followup_questionnaire_complete" in c.get("fields", [])]
        assert len(status_calls) == 1 and status_calls[0]["records_requested"] == 60
        assert all("randomization_group" not in c.get("fields", []) for c in redcap.state.calls)


def test_freshness_check_defers_when_redcap_is_down_then_applies_its_facts(truth_app, redcap):
    from app.redcap.failure_pause import reset_failure_pause

    app = truth_app()
    with app.app_context():
        now = _noon_shanghai()
        participants = [scheduled(r, days=26) for r in ("6101", "6102")]
        redcap.state.seed_records(
            [{**baseline_row(p.record_id, p.anchor_date), "study_status": "2"} for p in participants]
        )
        messages = []
        for participant in participants:
            visit = visit_of(participant)
            visit.status = "open"
            participant.roster_synced_at = now - timedelta(hours=7)  # older than ROSTER_MAX_AGE_HOURS (6)
            db.session.commit()
            messages.append(pending_message(visit, due=now - timedelta(minutes=1)))

        redcap.state.fail("503", count=None)
        redcap.state.clear_calls()
        summary = run_tick(now, only=["send"])
        assert not any(k.endswith(".error") for k in summary), summary
        # The first failure pauses re-reads: the second text waits without calling REDCap again.
        assert len(redcap.state.calls) == 1
        db.session.expire_all()
        for message in messages:
            msg = db.session.get(OutboundMessage, message.id)
            assert msg.status == "pending" and "REDCap unreachable" in (msg.error_message or "")
            assert msg.provider_sid is None
        assert {db.session.get(Participant, p.id).status for p in participants} == {"active"}

        # REDCap is back (and the 60 s pause over): the next pass re-reads each record first, learns
        # of the withdrawals, and sends nothing.
        redcap.state.reset()
        reset_failure_pause()
        due = max(db.session.get(OutboundMessage, m.id).due_at for m in messages)
        run_tick(max(now + timedelta(minutes=2), due + timedelta(seconds=1)), only=["send"])
        db.session.expire_all()
        for message in messages:
            msg = db.session.get(OutboundMessage, message.id)
            assert msg.status in ("skipped", "cancelled") and msg.provider_sid is None
        assert {db.session.get(Participant, p.id).status for p in participants} == {"withdrawn"}


def test_fresh_roster_sends_without_calling_redcap(truth_app, redcap):
    app = truth_app()
    with app.app_context():
        now = _noon_shanghai()
        participant = scheduled("6201", days=26)
        visit = visit_of(participant)
        visit.status = "open"
        participant.roster_synced_at = now - timedelta(hours=1)
        db.session.commit()
        message = pending_message(visit, due=now - timedelta(minutes=1))
        run_tick(now, only=["send"])
        db.session.expire_all()
        assert db.session.get(OutboundMessage, message.id).status in SENT
        assert redcap.state.calls == []


def test_visit_entered_in_redcap_after_the_roster_sync_is_caught_before_the_same_ticks_send(
    truth_app, redcap
):
    """Roster synced first; staff then enter the visit in REDCap; one full `tick` sends nothing for it."""
    app = truth_app()
    with app.app_context():
        now = _noon_shanghai()
        discharge = now.date() - timedelta(days=26)
        redcap.state.seed_records([baseline_row("6301", discharge), baseline_row("6302", discharge)])
        assert "roster.error" not in run_tick(now, only=["roster"])
        redcap.state.seed_records([staff_questionnaire("6301")])  # entered between two passes

        result = app.test_cli_runner().invoke(args=["tick", "--now", now.isoformat()])
        assert result.exit_code == 0, result.output
        assert "det.open_completed=1" in result.output
        assert [m for m in _messages("6301") if m.status in SENT] == []
        assert _messages("6302") and all(m.status in SENT for m in _messages("6302"))
        week4 = (
            db.session.query(Visit)
            .join(Participant)
            .filter(Participant.record_id == "6301", Visit.visit_key == "week_4")
            .one()
        )
        assert week4.status == "completed" and week4.completed_via == "redcap"
