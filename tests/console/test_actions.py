"""Each coordinator action through the console: its effect, its audit entry, and clean refusals."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from app.extensions import db
from app.models import (
    OutboundMessage,
    Participant,
    RedcapStatusPush,
    Submission,
    SurveyLink,
    Visit,
)
from app.participants.links import hash_token
from tests.console.conftest import NOW, add_message
from tests.console.helpers import last_audit, refused


@pytest.fixture(autouse=True)
def _frozen(time_machine):
    time_machine.move_to(NOW, tick=False)


# --- reminders ------------------------------------------------------------------------------


def test_send_reminder_now_queues_a_text_and_audits_who_and_why(as_role, users, study):
    client = as_role("coordinator")
    url = f"/console/visits/{study.closing_visit}/remind"
    response = client.post(url, data={"reason": "called, asked for the link again"})
    assert response.status_code == 303
    message = db.session.scalar(
        select(OutboundMessage).where(OutboundMessage.visit_id == study.closing_visit)
    )
    assert message.kind == "manual" and message.status == "pending" and message.due_at == NOW
    entry = last_audit("visit.reminder_requested")
    assert entry.actor == f"user:{users['coordinator'].id}"
    assert entry.reason == "called, asked for the link again" and entry.at == NOW
    assert entry.visit_id == study.closing_visit and entry.detail["outside_window"] is False
    # a double-submitted form (or a second click) is refused: rate-limited per participant
    refused(client, url, {"reason": "again"}, status=429, text="already requested")


def test_reminder_outside_the_send_window_needs_confirmation(as_role, study, time_machine):
    time_machine.move_to(NOW + timedelta(hours=12), tick=False)  # 22:00 in Shanghai
    client = as_role("coordinator")
    url = f"/console/visits/{study.closing_visit}/remind"
    refused(client, url, {"reason": "late"}, status=409, text="outside the send window")
    response = client.post(url, data={"reason": "late", "confirm_outside_window": "y"})
    assert response.status_code == 303
    assert last_audit("visit.reminder_requested").detail["outside_window"] is True


def test_reminder_refused_for_visit_not_open_or_participant_not_textable(as_role, study):
    client = as_role("coordinator")
    refused(client, f"/console/visits/{study.missed_visit}/remind", {"reason": "x"}, text="not open")
    opted_out = db.session.get(Participant, study.opted_out_participant)
    visit = opted_out.visits[0]
    visit.status, visit.opens_at = "open", NOW - timedelta(days=1)
    db.session.commit()
    refused(client, f"/console/visits/{visit.id}/remind", {"reason": "x"}, text="opted out")
    # no reason given: a clear 400, nothing changed
    refused(
        client, f"/console/visits/{study.closing_visit}/remind", {"reason": ""}, status=400, text="Reason"
    )


def test_resend_link_revokes_old_links_and_queues_a_new_text(as_role, study):
    db.session.add(
        SurveyLink(
            visit_id=study.closing_visit,
            token_hash=hash_token("old-token"),
            valid_from=NOW - timedelta(days=2),
            valid_until=NOW + timedelta(days=1),
        )
    )
    db.session.commit()
    client = as_role("coordinator")
    response = client.post(f"/console/visits/{study.closing_visit}/resend-link", data={"reason": "new phone"})
    assert response.status_code == 303
    link = db.session.scalar(select(SurveyLink).where(SurveyLink.visit_id == study.closing_visit))
    assert link.revoked_at == NOW
    assert (
        db.session.scalar(
            select(func.count())
            .select_from(OutboundMessage)
            .where(OutboundMessage.visit_id == study.closing_visit)
        )
        == 1
    )
    entry = last_audit("visit.link_resent")
    assert entry.detail["links_revoked"] == 1 and entry.reason == "new phone"


# --- visits -----------------------------------------------------------------------------------


def test_mark_done_in_clinic_completes_stops_texts_and_queues_the_status_push(as_role, study):
    visit = db.session.get(Visit, study.closing_visit)
    pending = add_message(visit.participant, visit, "pending", 7)
    db.session.commit()
    client = as_role("coordinator")
    url = f"/console/visits/{study.closing_visit}/clinic"
    assert client.post(url, data={"reason": "seen in clinic today"}).status_code == 303
    db.session.expire_all()
    visit = db.session.get(Visit, study.closing_visit)
    assert (visit.status, visit.completed_via, visit.completed_at) == ("completed", "clinic", NOW)
    assert db.session.get(OutboundMessage, pending.id).status == "cancelled"
    push = db.session.scalar(select(RedcapStatusPush).where(RedcapStatusPush.visit_id == visit.id))
    assert push.status == "completed" and push.sync_status == "pending"
    assert last_audit("visit.completed").reason == "seen in clinic today"
    refused(client, url, {"reason": "again"}, text="already completed")


def test_reopen_a_missed_visit_for_a_new_window(as_role, study):
    client = as_role("coordinator")
    url = f"/console/visits/{study.missed_visit}/reopen"
    refused(client, url, {"reason": "x", "days": "0"}, status=400)
    refused(client, url, {"reason": "x", "days": "abc"}, status=400)
    before = db.session.get(Visit, study.missed_visit).schedule_version
    assert client.post(url, data={"reason": "was in hospital", "days": "7"}).status_code == 303
    db.session.expire_all()
    visit = db.session.get(Visit, study.missed_visit)
    assert visit.status == "open" and visit.opens_at == NOW and visit.schedule_version == before + 1
    assert (visit.window_end - visit.window_start).days == 6 and visit.closes_at > NOW + timedelta(days=6)
    entry = last_audit("visit.reopened")
    assert (
        entry.reason == "was in hospital" and entry.detail["new_window"][0] == visit.window_start.isoformat()
    )
    refused(client, url, {"reason": "again", "days": "7"}, text="Only a missed visit")
    refused(client, f"/console/visits/{study.closing_visit}/reopen", {"reason": "x", "days": "7"})


# --- submissions ------------------------------------------------------------------------------


def test_acknowledge_a_red_flag_with_a_note(as_role, users, study):
    client = as_role("coordinator")
    url = f"/console/submissions/{study.red_flag_submission}/acknowledge"
    refused(client, url, {"note": ""}, status=400)
    assert client.post(url, data={"note": "phoned, going to ER"}).status_code == 303
    db.session.expire_all()
    submission = db.session.get(Submission, study.red_flag_submission)
    assert submission.red_flag_acknowledged_at == NOW
    assert submission.red_flag_acknowledged_by == f"user:{users['coordinator'].id}"
    assert submission.red_flag_note == "phoned, going to ER"
    assert last_audit("redflag.acknowledged").reason == "phoned, going to ER"
    refused(client, url, {"note": "twice"}, text="already acknowledged")
    refused(
        client,
        f"/console/submissions/{study.failed_submission}/acknowledge",
        {"note": "x"},
        text="no red flag",
    )


def test_retry_a_failed_redcap_push(as_role, study):
    client = as_role("coordinator")
    url = f"/console/submissions/{study.failed_submission}/retry"
    assert client.post(url, data={"reason": "range fixed in REDCap"}).status_code == 303
    db.session.expire_all()
    submission = db.session.get(Submission, study.failed_submission)
    assert submission.sync_status == "pending" and submission.next_attempt_at == NOW
    entry = last_audit("redcap.push_retried")
    assert entry.reason == "range fixed in REDCap" and "outside the range" in entry.detail["previous_error"]
    refused(client, url, {"reason": "again"}, text="Only a failed push")


def test_retry_a_failed_status_push(as_role, study):
    client = as_role("coordinator")
    url = f"/console/status-pushes/{study.failed_status_push}/retry"
    assert client.post(url, data={"reason": "field added"}).status_code == 303
    db.session.expire_all()
    row = db.session.get(RedcapStatusPush, study.failed_status_push)
    assert row.sync_status == "pending" and row.next_attempt_at == NOW and row.last_error is None
    assert last_audit("redcap.status_push_retried").reason == "field added"
    refused(client, url, {"reason": "again"})


def test_reopen_window_ends_at_local_midnight_in_the_participants_zone(app, study):
    from zoneinfo import ZoneInfo

    from app.console import actions

    visit = db.session.get(Visit, study.missed_visit)
    visit.participant.timezone = "America/New_York"
    actions.reopen_missed_visit(visit, 3, NOW, "user:1", "back from travel")
    local_close = visit.closes_at.astimezone(ZoneInfo("America/New_York"))
    assert (local_close.hour, local_close.minute) == (0, 0)
    # 02:00 UTC on 10 March is 22:00 on 9 March in New York: the window is 9, 10 and 11 March
    assert visit.window_start.isoformat() == "2026-03-09" and visit.window_end.isoformat() == "2026-03-11"
    assert local_close.date().isoformat() == "2026-03-12"
    db.session.rollback()
