"""Visits completed in REDCap: found by batched status exports, completed here, texts cancelled."""

from __future__ import annotations

from datetime import timedelta

from app.extensions import db
from app.models import OutboundMessage, Visit, utcnow
from app.participants.visits import schedule_participant
from app.redcap.status import refresh_followup_status, status_fields
from app.schedule.study_plan import send_window, visit_plan
from tests.factories import make_participant
from tests.redcap.truth.conftest import baseline_row, staff_questionnaire


def _scheduled(record: str, days: int = 26):
    participant = make_participant(record, days_since_discharge=days)
    schedule_participant(participant, visit_plan(), send_window(), utcnow())
    db.session.commit()
    return participant


def _pending_message(visit: Visit) -> OutboundMessage:
    message = OutboundMessage(
        dedupe_key=f"visit:{visit.id}:r0",
        kind="reminder",
        participant_id=visit.participant_id,
        visit_id=visit.id,
        slot="r0",
        to_e164=visit.participant.phone_e164,
        status="pending",
        due_at=utcnow() + timedelta(minutes=5),
    )
    db.session.add(message)
    db.session.commit()
    return message


def test_questionnaire_or_contact_status_in_redcap_completes_visit(truth_app, redcap):
    app = truth_app()
    with app.app_context():
        now = utcnow()
        p1, p2, p3 = _scheduled("2001"), _scheduled("2002"), _scheduled("2003")
        week4 = {p.record_id: next(v for v in p.visits if v.visit_key == "week_4") for p in (p1, p2, p3)}
        message = _pending_message(week4["2001"])
        redcap.state.seed_records(
            [baseline_row(r, now.date() - timedelta(days=26)) for r in ("2001", "2002", "2003")]
            + [
                staff_questionnaire("2001"),
                {"record_id": "2002", "redcap_event_name": "week_4_arm_1", "fu_visit_status": "3"},
                # month 6 of 2003 complete: only that visit, not week 4
                staff_questionnaire("2003", event="month_6_arm_1"),
            ]
        )
        redcap.state.clear_calls()
        result = refresh_followup_status(now)
        db.session.commit()

        assert result.calls == 1
        exports = redcap.calls()
        assert len(exports) == 1
        assert set(exports[0]["fields"]) == set(status_fields())
        assert set(exports[0]["events"]) == {"week_4_arm_1", "month_6_arm_1"}
        assert "randomization_group" not in exports[0]["fields"]

        db.session.expire_all()
        assert week4["2001"].status == "completed" and week4["2001"].completed_via == "redcap"
        assert "questionnaire complete" in week4["2001"].status_reason
        assert week4["2002"].status == "completed" and "opted_out" in week4["2002"].status_reason
        assert week4["2003"].status != "completed"
        month6 = next(v for v in p3.visits if v.visit_key == "month_6")
        assert month6.status == "completed" and month6.completed_via == "redcap"
        assert db.session.get(OutboundMessage, message.id).status == "cancelled"

        # Re-running changes nothing.
        again = refresh_followup_status(now)
        assert again.completed == []


def test_status_export_is_chunked_by_records(truth_app, redcap, monkeypatch):
    import app.redcap.status as status

    monkeypatch.setattr(status, "STATUS_CHUNK", 2)
    app = truth_app()
    with app.app_context():
        for n in range(5):
            _scheduled(f"30{n:02d}")
        redcap.state.clear_calls()
        result = refresh_followup_status(utcnow())
        assert result.calls == 3 and len(redcap.calls()) == 3
        assert [c["records_requested"] for c in redcap.calls()] == [2, 2, 1]


def test_link_of_a_visit_completed_in_redcap_says_already_received(truth_app, redcap):
    from app.participants.links import issue_link

    app = truth_app()
    with app.app_context():
        participant = _scheduled("2101")
        week4 = next(v for v in participant.visits if v.visit_key == "week_4")
        week4.status = "open"
        db.session.commit()
        token = issue_link(week4, utcnow())
        db.session.commit()
        redcap.state.seed_records(
            [baseline_row("2101", participant.anchor_date), staff_questionnaire("2101")]
        )
        refresh_followup_status(utcnow())
        db.session.commit()
        for method in ("get", "post"):
            response = getattr(app.test_client(), method)(f"/s/{token}")
            assert response.status_code == 200
            assert 'id="received"' in response.get_data(as_text=True)


def test_unknown_status_field_in_settings_does_not_stop_the_roster_sync(truth_app, redcap, caplog):
    import json

    from app.models import Participant
    from app.tick import run_tick

    # A project without the contact field: the questionnaire's form status is still read.
    contact = {"visit_status": "no_such_field", "invited_at": "fu_invited_at"}
    app = truth_app(REDCAP_CONTACT_FIELDS=json.dumps(contact))
    with app.app_context():
        now = utcnow()
        redcap.state.seed_records(
            [baseline_row("2201", now.date() - timedelta(days=26)), staff_questionnaire("2201")]
        )
        summary = run_tick(now, only=["roster"])
        assert "roster.error" not in summary, summary
        participant = db.session.query(Participant).filter_by(record_id="2201").one()
        week4 = next(v for v in participant.visits if v.visit_key == "week_4")
        assert week4.status == "completed" and week4.completed_via == "redcap"
        assert "refused the contact status field" in caplog.text and "no_such_field" in caplog.text

    # Not even the questionnaire's status can be read: the roster still syncs, the reason is logged.
    app = truth_app(REDCAP_QUESTIONNAIRE_INSTRUMENT="no_such_form")
    with app.app_context():
        redcap.state.seed_records([baseline_row("2202", now.date() - timedelta(days=26))])
        summary = run_tick(now, only=["roster"])
        assert "roster.error" not in summary, summary
        assert db.session.query(Participant).filter_by(record_id="2202").count() == 1
        assert "follow-up status not read" in caplog.text
