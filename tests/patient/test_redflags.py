"""Red flags: configured rules over the cleaned answers, on-call alert rows, and the participant's warning."""

from __future__ import annotations

import logging

import pytest
from sqlalchemy import select

from app.extensions import db
from app.models import OutboundMessage, Submission, utcnow
from app.questionnaire.redflags import Rule, evaluate, parse_rules, usable_rules
from config import DEFAULT_RED_FLAG_RULES
from tests.factories import GOOD_ANSWERS as GOOD
from tests.patient.conftest import TRIAL, invite, load_metadata

ONCALL = "+8613800138001, 13800138002"


@pytest.mark.parametrize(
    ("answers", "expected"),
    [
        ({"fu_spo2": "93"}, ["home SpO2 at or below 93%"]),
        ({"fu_spo2": "94"}, []),
        ({"fu_spo2": ""}, []),
        ({"fu_mmrc": "4"}, ["breathlessness grade 4"]),
        ({"fu_mmrc": "3"}, []),
        ({"fu_ae___3": "1"}, ["chest pain reported"]),
        ({"fu_ae___3": "0"}, []),
        ({"fu_readmitted": "1", "fu_spo2": "88"}, ["home SpO2 at or below 93%", "readmitted to hospital"]),
        ({}, []),
    ],
)
def test_default_rules(answers, expected):
    assert evaluate(parse_rules(DEFAULT_RED_FLAG_RULES), answers) == expected


@pytest.mark.parametrize(
    ("op", "value", "answer", "hit"),
    [
        ("<", 5, "4.9", True),
        ("<", 5, "5", False),
        (">", 5, "6", True),
        (">=", 5, "5", True),
        ("<=", 5, "x", False),
        ("==", "2", "2.0", True),
        ("!=", "2", "3", True),
        ("!=", "2", "", False),
        ("in", ["a", "b"], "b", True),
        ("in", ["a", 3], "3", True),
        ("in", ["a"], "c", False),
        ("==", "yes", "yes", True),
    ],
)
def test_every_operator(op, value, answer, hit):
    rule = Rule("f", op, value, "r")
    assert rule.matches({"f": answer}) is hit


def test_malformed_and_unknown_rules_are_ignored_with_a_warning(caplog):
    raw = [
        {"field": "fu_spo2", "op": "<=", "value": 93, "reason": "ok"},
        {"field": "fu_spo2", "op": "~", "value": 1},
        {"field": "", "op": "==", "value": 1},
        {"op": "==", "value": 1},
        {"field": "fu_spo2", "op": "<", "value": "low"},
        {"field": "fu_x", "op": "in", "value": "notalist"},
        "nonsense",
        {"field": "no_such_field_x", "op": "==", "value": "1"},
    ]
    with caplog.at_level(logging.WARNING):
        rules = parse_rules(raw)
        kept = usable_rules(rules, ["fu_spo2", "fu_mmrc"])
    assert [r.field for r in rules] == ["fu_spo2", "no_such_field_x"]
    assert [r.reason for r in kept] == ["ok"]
    assert len([r for r in caplog.records if r.levelno == logging.WARNING]) == 7
    assert parse_rules({"not": "a list"}) == []


def test_bad_rules_never_stop_the_app(app_factory, caplog):
    with caplog.at_level(logging.WARNING):
        app = app_factory(RED_FLAG_RULES='[{"field": "nope", "op": "==", "value": "1"}, {"op": "?"}]')
    assert app is not None
    assert any("RED_FLAG_RULES[1] ignored" in r.getMessage() for r in caplog.records)


def _flag_app(app_factory, **env):
    from app.questionnaire.store import save_metadata

    app = app_factory(ONCALL_PHONES=ONCALL, **env)
    ctx = app.app_context()
    ctx.push()
    save_metadata(load_metadata("trial_project"), TRIAL, utcnow())
    return app, ctx


def test_red_flag_plans_one_alert_per_oncall_number_and_warns_the_participant(app_factory):
    app, ctx = _flag_app(app_factory)
    try:
        inv = invite()
        response = app.test_client().post(inv.url, data=dict(GOOD, fu_spo2="91", fu_ae___3="1"))
        html = response.get_data(as_text=True)
        assert response.status_code == 200 and "Thank you" in html
        assert "Please get help now" in html and "+86 20 8306 2000" in html and 'href="tel:120"' in html
        submission = db.session.scalar(select(Submission))
        assert submission.red_flag
        assert submission.red_flag_reasons == ["home SpO2 at or below 93%", "chest pain reported"]
        alerts = db.session.scalars(select(OutboundMessage).order_by(OutboundMessage.id)).all()
        assert [(a.kind, a.template, a.status, a.to_e164, a.visit_id, a.slot) for a in alerts] == [
            ("redflag_alert", "redflag_alert", "pending", "+8613800138001", None, None),
            ("redflag_alert", "redflag_alert", "pending", "+8613800138002", None, None),
        ]
        assert [a.dedupe_key for a in alerts] == [f"redflag:{submission.id}:0", f"redflag:{submission.id}:1"]
        assert all(a.participant_id == inv.participant.id and a.due_at is not None for a in alerts)
        # a replay repeats the warning but plans nothing new
        again = app.test_client().post(inv.url, data=dict(GOOD, fu_spo2="91"))
        assert "Answers already received" in again.get_data(as_text=True)
        assert "Please get help now" in again.get_data(as_text=True)
        assert len(db.session.scalars(select(OutboundMessage)).all()) == 2
    finally:
        db.session.remove()
        ctx.pop()


def test_red_flag_warning_in_chinese(app_factory):
    app, ctx = _flag_app(app_factory)
    try:
        inv = invite(language="zh")
        html = app.test_client().post(inv.url, data=dict(GOOD, fu_mmrc="4")).get_data(as_text=True)
        assert "请立即寻求帮助" in html and "急救电话" in html and "tel:120" in html
    finally:
        db.session.remove()
        ctx.pop()


def test_no_red_flag_no_alert(app_factory):
    app, ctx = _flag_app(app_factory)
    try:
        inv = invite()
        html = app.test_client().post(inv.url, data=GOOD).get_data(as_text=True)
        assert "Thank you" in html and "Please get help now" not in html
        assert db.session.scalars(select(OutboundMessage)).all() == []
    finally:
        db.session.remove()
        ctx.pop()


def test_red_flag_without_oncall_numbers_still_flags_the_submission(trial, client):
    inv = invite()
    html = client.post(inv.url, data=dict(GOOD, fu_readmitted="1", fu_hosp_days="3")).get_data(as_text=True)
    assert "Please get help now" in html
    assert db.session.scalar(select(Submission.red_flag)) is True
    assert db.session.scalars(select(OutboundMessage)).all() == []
