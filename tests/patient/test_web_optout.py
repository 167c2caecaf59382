"""Stopping text reminders from the web pages: one confirmation, the same opt-out as a STOP reply (audited,
pending texts cancelled), recorded as "web" and shown so in the console; restarting from the same pages."""

from __future__ import annotations

import re
from datetime import timedelta

from sqlalchemy import select

from app.extensions import db
from app.models import AuditEntry, OutboundMessage, Participant, SurveyLink, utcnow
from app.sms.inbound import handle_inbound
from tests.console.conftest import FreshClient, sign_in
from tests.factories import make_user
from tests.patient.conftest import invite


def _pending_text(inv, slot: str = "r1") -> OutboundMessage:
    now = utcnow()
    row = OutboundMessage(
        dedupe_key=f"visit:{inv.visit.id}:{slot}",
        kind="reminder",
        participant_id=inv.participant.id,
        visit_id=inv.visit.id,
        slot=slot,
        to_e164=inv.participant.phone_e164,
        language="en",
        template="reminder",
        status="pending",
        due_at=now + timedelta(hours=1),
        created_by="system:plan",
        created_at=now,
    )
    db.session.add(row)
    db.session.commit()
    return row


def _participant(inv) -> Participant:
    db.session.expire_all()
    return db.session.get(Participant, inv.participant.id)


def _actions(inv) -> list[str]:
    return list(
        db.session.scalars(
            select(AuditEntry.action)
            .where(AuditEntry.participant_id == inv.participant.id)
            .order_by(AuditEntry.id)
        )
    )


def test_stop_from_the_questionnaire_page_behind_one_confirmation(trial, client):
    inv = invite()
    pending = _pending_text(inv)
    page = client.get(inv.url).get_data(as_text=True)
    assert f'href="{inv.url}/stop"' in page and "Stop text reminders" in page

    confirm = client.get(f"{inv.url}/stop")
    assert confirm.status_code == 200 and b"Stop text reminders?" in confirm.data
    assert _participant(inv).opted_out is False  # a GET changes nothing

    done = client.post(f"{inv.url}/stop")
    assert done.status_code == 200 and b"Text reminders stopped" in done.data
    assert b"Restart text reminders" in done.data
    participant = _participant(inv)
    assert participant.opted_out and participant.opted_out_via == "web"
    assert not participant.can_receive_sms
    assert db.session.get(OutboundMessage, pending.id).status == "cancelled"
    assert _actions(inv) == ["sms.opted_out", "sms.cancelled"]
    entry = db.session.scalar(select(AuditEntry).where(AuditEntry.action == "sms.opted_out"))
    assert entry.actor == "participant:web" and entry.detail["source"] == "web"

    # the questionnaire still opens, and now offers the way back in
    again = client.get(inv.url).get_data(as_text=True)
    assert 'id="qform"' in again and "Restart text reminders" in again
    assert 'href="' + inv.url + '/stop"' not in again

    restarted = client.post(f"{inv.url}/start")
    assert restarted.status_code == 200 and b"Text reminders are on again" in restarted.data
    participant = _participant(inv)
    assert not participant.opted_out and participant.opted_out_via is None and participant.can_receive_sms
    assert _actions(inv)[-1] == "sms.opted_in"
    opted_in = db.session.scalar(select(AuditEntry).where(AuditEntry.action == "sms.opted_in"))
    assert opted_in.detail == {"source": "web", "opted_out_via": "web"}


def test_the_blank_page_cache_never_mixes_participants(trial, client):
    first, second = invite(), invite()
    client.post(f"{first.url}/stop")
    one, two = client.get(first.url).get_data(as_text=True), client.get(second.url).get_data(as_text=True)
    assert "Restart text reminders" in one and f"{first.url}/start" in one
    assert f'href="{second.url}/stop"' in two and first.token not in two and "Restart" not in two


def test_the_thank_you_page_offers_it_to_the_session_that_answered_only(trial, app, client):
    from tests.patient.test_submit import GOOD  # a clean set of answers

    inv = invite()
    thanks = client.post(inv.url, data=GOOD)
    assert b"Thank you" in thanks.data and f'href="{inv.url}/stop"'.encode() in thanks.data
    assert client.post(f"{inv.url}/stop").status_code == 200
    assert _participant(inv).opted_out_via == "web"
    # anyone else holding the spent link sees the one invalid page
    other = app.test_client()
    assert other.get(f"{inv.url}/stop").status_code == 404
    assert other.post(f"{inv.url}/start").status_code == 404
    assert _participant(inv).opted_out


def test_unusable_tokens_get_the_invalid_page_with_a_way_to_stop(trial, client):
    inv = invite()
    inv.visit.closes_at = utcnow() - timedelta(minutes=1)
    for link in db.session.scalars(select(SurveyLink)):
        link.valid_until = utcnow() - timedelta(minutes=1)
    db.session.commit()
    expired = client.post(f"{inv.url}/stop")
    unknown = client.post("/s/never-issued-token-0000/stop")
    assert expired.status_code == unknown.status_code == 404 and expired.data == unknown.data
    assert not _participant(inv).opted_out
    invalid = client.get("/s/never-issued-token-0000").get_data(as_text=True)
    assert "Stop text reminders" in invalid and "call the study team" in invalid
    assert "/c" not in invalid  # path mode: no code page to offer


def test_invalid_page_offers_the_code_page_in_entry_mode(app_factory):
    app = app_factory(SMS_LINK_MODE="entry")
    with app.app_context():
        page = app.test_client().get("/s/never-issued-token-0000").get_data(as_text=True)
    assert 'href="/c"' in page and "停止" not in page


def test_stop_and_start_in_chinese(trial, client):
    inv = invite(language="zh")
    assert "停止短信提醒" in client.get(inv.url).get_data(as_text=True)
    assert "停止短信提醒？" in client.get(f"{inv.url}/stop").get_data(as_text=True)
    assert "短信提醒已停止" in client.post(f"{inv.url}/stop").get_data(as_text=True)
    assert "恢复短信提醒" in client.get(inv.url).get_data(as_text=True)


def test_csrf_is_required_and_a_stale_page_asks_again(app_factory):
    from app.questionnaire.store import save_metadata
    from tests.patient.conftest import TRIAL, load_metadata

    app = app_factory(WTF_CSRF_ENABLED="true")
    with app.app_context():
        save_metadata(load_metadata("trial_project"), TRIAL, utcnow())
        inv = invite()
        client = app.test_client()
        stale = client.post(f"{inv.url}/stop")
        assert stale.status_code == 400 and b"expired" in stale.data and b"confirm-stop" in stale.data
        assert not _participant(inv).opted_out
        confirm = client.get(f"{inv.url}/stop").get_data(as_text=True)
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', confirm)
        assert client.post(f"{inv.url}/stop", data={"csrf_token": csrf.group(1)}).status_code == 200
        assert _participant(inv).opted_out_via == "web"
        assert client.post(f"{inv.url}/start").status_code == 400
        assert _participant(inv).opted_out


def test_every_channel_records_how_the_opt_out_arrived_and_the_console_shows_it(trial, app):
    web, reply, by_phone = invite(), invite(), invite()
    app.test_client().post(f"{web.url}/stop")
    handle_inbound("SM" + "1" * 32, reply.participant.phone_e164, "+15550100", "td", utcnow())
    assert _participant(reply).opted_out_via == "reply"

    app.test_client_class = FreshClient
    coordinator = make_user(role="coordinator")
    console = app.test_client()
    assert sign_in(console, coordinator).status_code == 302
    url = f"/console/participants/{by_phone.participant.id}"
    assert console.post(f"{url}/opt-out", data={"reason": "asked by phone"}).status_code == 303
    assert _participant(by_phone).opted_out_via == "coordinator"

    for inv, label in ((web, "web"), (reply, "reply"), (by_phone, "coordinator")):
        page = console.get(f"/console/participants/{inv.participant.id}").get_data(as_text=True)
        assert f'<span class="opted-out-via">{label}</span>' in page, label

    # a coordinator's own opt-out can be undone by a coordinator; a participant's only by the participant
    assert console.post(f"{url}/opt-in", data={"reason": "asked again"}).status_code == 303
    assert not _participant(by_phone).opted_out
    refused = console.post(f"/console/participants/{web.participant.id}/opt-in", data={"reason": "x"})
    assert refused.status_code == 409 and _participant(web).opted_out
