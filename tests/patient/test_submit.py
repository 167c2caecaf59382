"""Submitting the questionnaire: server-side branching and validation, one transaction, exactly once."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func, select

from app.extensions import db
from app.models import AuditEntry, OutboundMessage, Submission, SurveyLink, utcnow
from tests.factories import GOOD_ANSWERS as GOOD
from tests.patient.conftest import invite


def submissions() -> int:
    return db.session.scalar(select(func.count()).select_from(Submission))


def test_accepted_answers_are_stored_as_redcap_codes_and_the_visit_completes(trial, client):
    inv = invite()
    reminder = OutboundMessage(
        dedupe_key=f"visit:{inv.visit.id}:r1",
        kind="reminder",
        participant_id=inv.participant.id,
        visit_id=inv.visit.id,
        slot="r1",
        to_e164=inv.participant.phone_e164,
        due_at=utcnow() + timedelta(days=2),
    )
    db.session.add(reminder)
    db.session.commit()
    response = client.post(inv.url, data=GOOD)
    assert response.status_code == 200
    assert "Thank you" in response.get_data(as_text=True)
    db.session.expire_all()
    submission = db.session.scalar(select(Submission))
    assert submission.visit_id == inv.visit.id and submission.sync_status == "pending"
    assert submission.instrument_version_id is not None and submission.language == "en"
    assert submission.answers == {
        "fu_fever": "0",
        "fu_mmrc": "1",
        "fu_cough": "1",
        "fu_sneezing": "0",
        "fu_diarrhea": "0",
        "fu_spo2": "97",
        "fu_readmitted": "0",
        "fu_ae___1": "1",
        "fu_ae___2": "0",
        "fu_ae___3": "0",
        "fu_ae___4": "0",
        "fu_ae___5": "0",
        "fu_health_today": "80",
        "fu_comments": "Feeling better",
    }
    assert not submission.red_flag
    assert inv.visit.status == "completed" and inv.visit.completed_via == "questionnaire"
    assert db.session.get(OutboundMessage, reminder.id).status == "cancelled"
    assert db.session.scalar(select(SurveyLink.used_at)) is not None
    # audit entries say what happened, never what was answered
    entries = db.session.scalars(select(AuditEntry)).all()
    assert {"submission.accepted", "visit.completed"} <= {e.action for e in entries}
    for entry in entries:
        assert "Feeling better" not in str(entry.detail) and "97" not in str(entry.detail)


def test_branching_is_enforced_on_the_server(trial, client):
    inv = invite()
    # follow-ups of "no fever" and "not readmitted" are hidden: not required, and not stored when sent
    data = dict(GOOD, fu_fever_days="5", fu_hosp_days="3", fu_ae_other="sneaky")
    client.post(inv.url, data=data)
    answers = db.session.scalar(select(Submission.answers))
    assert "fu_fever_days" not in answers and "fu_hosp_days" not in answers and "fu_ae_other" not in answers


def test_a_shown_follow_up_is_required_and_kept(trial, client):
    inv = invite()
    response = client.post(inv.url, data=dict(GOOD, fu_fever="1", fu_ae___5="1", fu_ae_other="Headache"))
    html = response.get_data(as_text=True)
    assert response.status_code == 200 and submissions() == 0
    assert 'id="err-fu_fever_days"' in html and "Please check 1 answer" in html
    assert 'value="Headache"' in html  # typed answers are kept
    assert 'id="fu_fever-0" name="fu_fever" type="radio" value="1"' in html.replace("checked ", "")
    assert "checked" in html
    response = client.post(
        inv.url, data=dict(GOOD, fu_fever="1", fu_fever_days="4", fu_ae___5="1", fu_ae_other="Headache")
    )
    assert "Thank you" in response.get_data(as_text=True)
    answers = db.session.scalar(select(Submission.answers))
    assert answers["fu_fever_days"] == "4" and answers["fu_ae_other"] == "Headache"


def test_required_and_range_errors_in_english(trial, client):
    inv = invite()
    response = client.post(inv.url, data=dict(GOOD, fu_spo2="120", fu_mmrc=""))
    html = response.get_data(as_text=True)
    assert submissions() == 0
    assert 'id="err-fu_spo2"' in html and "between 50 and 100" in html
    assert 'id="err-fu_mmrc"' in html and "Please answer this question." in html
    assert 'href="#fu_spo2"' in html and 'href="#fu_mmrc-0"' in html  # summary links to the fields
    assert 'value="120"' in html


def test_required_and_range_errors_in_chinese(trial, client):
    inv = invite(language="zh")
    response = client.post(inv.url, data=dict(GOOD, fu_spo2="120", fu_mmrc=""))
    html = response.get_data(as_text=True)
    assert submissions() == 0
    assert "请检查 2 个回答" in html
    assert 'id="err-fu_spo2"' in html and 'id="err-fu_mmrc"' in html
    errors = [line for line in html.splitlines() if 'class="err"' in line]
    assert errors and not any("Please" in line for line in errors), errors


def test_slider_left_at_no_answer_is_not_stored(trial, client):
    inv = invite()
    response = client.post(inv.url, data=dict(GOOD, _unanswered="fu_health_today"))
    assert 'id="err-fu_health_today"' in response.get_data(as_text=True)
    assert submissions() == 0


def test_language_of_the_submission_is_recorded(trial, client):
    inv = invite(language="en")
    client.post(inv.url + "?lang=zh", data=GOOD)
    assert db.session.scalar(select(Submission.language)) == "zh"


def test_second_submit_and_replay_are_already_received(trial, client):
    inv = invite()
    first = client.post(inv.url, data=GOOD)
    assert "Thank you" in first.get_data(as_text=True)
    for _ in range(2):
        again = client.post(inv.url, data=dict(GOOD, fu_mmrc="4"))
        assert again.status_code == 200
        assert "Answers already received" in again.get_data(as_text=True)
    assert submissions() == 1
    assert db.session.scalar(select(Submission.answers))["fu_mmrc"] == "1"
    assert db.session.scalar(select(func.count()).select_from(OutboundMessage)) == 0


def test_concurrent_accept_keeps_one_submission(trial, app):
    """Two accepts racing on the same visit: the unique visit_id turns the second into 'already received'."""
    from app.participants import submissions as module

    inv = invite()
    link = db.session.scalar(select(SurveyLink))
    first = module.accept_submission(link, {"fu_fever": "0"}, now=utcnow())
    assert first.accepted
    # the loser of the race: its check ran before the winner committed
    inv.visit.status = "open"
    second = module.accept_submission(link, {"fu_fever": "1"}, now=utcnow())
    assert second.status == "already_received"
    db.session.rollback()
    assert submissions() == 1


def test_visit_completed_elsewhere_shows_already_received(trial, client):
    from app.participants.visits import complete_visit

    inv = invite()
    complete_visit(inv.visit, "clinic", utcnow(), "coordinator@example.org")
    db.session.commit()
    response = client.get(inv.url)
    assert response.status_code == 200 and "Answers already received" in response.get_data(as_text=True)
    client.post(inv.url, data=GOOD)
    assert submissions() == 0


def test_csrf_is_required_when_enabled(app_factory):
    from tests.patient.conftest import TRIAL, load_metadata

    app = app_factory(WTF_CSRF_ENABLED="true")
    with app.app_context():
        from app.questionnaire.store import save_metadata

        save_metadata(load_metadata("trial_project"), TRIAL, utcnow())
        inv = invite()
        client = app.test_client()
        page = client.get(inv.url).get_data(as_text=True)
        import re

        token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
        missing = client.post(inv.url, data=dict(GOOD, fu_comments="kept text"))
        assert missing.status_code == 400
        html = missing.get_data(as_text=True)
        assert "nothing was saved" in html and "kept text" in html
        assert submissions() == 0
        ok = client.post(inv.url, data=dict(GOOD, csrf_token=token))
        assert ok.status_code == 200 and "Thank you" in ok.get_data(as_text=True)
        assert submissions() == 1
