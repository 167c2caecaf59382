"""Console test helpers: users of every role, sign-in through the real form, and a small seeded study."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from argon2 import PasswordHasher
from flask import g
from flask.testing import FlaskClient

from app.extensions import db
from app.models import InboundMessage, OutboundMessage, RedcapStatusPush, Submission, User, Visit
from tests.factories import make_participant

PASSWORD = "correct horse battery"
# A fixed "now": 10:00 in Shanghai (inside the 09:00-20:00 send window).
NOW = datetime(2026, 3, 10, 2, 0, tzinfo=UTC)


class FreshClient(FlaskClient):
    """A test client whose requests do not share Flask-Login's cached user.

    The `app` fixture keeps one application context pushed for the whole test, and Flask reuses
    it (and its `g`) for every request; in a real server each request has its own.
    """

    def open(self, *args, **kwargs):
        g.pop("_login_user", None)
        return super().open(*args, **kwargs)


@pytest.fixture(autouse=True)
def _fresh_clients(request):
    if "app" in request.fixturenames:
        request.getfixturevalue("app").test_client_class = FreshClient


def sign_in(client, user, password: str = PASSWORD):
    """Sign in through the login form, as a person would."""
    return client.post("/console/login", data={"email": user.email, "password": password})


# Argon2id with test-sized costs: verification reads the cost from the hash, so sign-in stays real.
_FAST_HASH = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1).hash(PASSWORD)


@pytest.fixture
def users(app):
    """One account per role."""
    made = {}
    for role in ("admin", "coordinator", "viewer"):
        made[role] = User(email=f"{role}@example.org", role=role, password_hash=_FAST_HASH)
        db.session.add(made[role])
    db.session.commit()
    return made


@pytest.fixture
def as_role(app, users):
    """`as_role("viewer")` -> a test client signed in with that role."""

    def make(role: str):
        client = app.test_client()
        response = sign_in(client, users[role])
        assert response.status_code == 302, response.data[:300]
        return client

    return make


def add_visit(participant, key="week_4", status="open", opens=None, closes=None, **kw) -> Visit:
    opens = opens or NOW - timedelta(days=2)
    closes = closes or NOW + timedelta(days=8)
    visit = Visit(
        participant=participant,
        visit_key=key,
        event_name=f"{key}_arm_1",
        target_date=(opens + timedelta(days=3)).date(),
        window_start=opens.date(),
        window_end=(closes - timedelta(days=1)).date(),
        opens_at=opens,
        closes_at=closes,
        status=status,
        **kw,
    )
    db.session.add(visit)
    db.session.flush()
    return visit


def add_submission(visit, **kw) -> Submission:
    values = {
        "answers": {"fu_spo2": "91", "fu_comments": "<b>x</b>"},
        "submitted_at": NOW - timedelta(hours=5),
    }
    values.update(kw)
    submission = Submission(visit_id=visit.id, **values)
    db.session.add(submission)
    db.session.flush()
    return submission


def add_message(participant, visit, status, n, **kw) -> OutboundMessage:
    message = OutboundMessage(
        dedupe_key=f"test:{participant.id}:{n}",
        kind="reminder",
        participant_id=participant.id,
        visit_id=visit.id if visit else None,
        slot=f"r{n}",
        to_e164=participant.phone_e164,
        status=status,
        due_at=NOW - timedelta(days=1),
        **kw,
    )
    db.session.add(message)
    db.session.flush()
    return message


@dataclass
class Study:
    """Ids of the seeded rows (ids, not objects: tests use them across requests)."""

    red_flag_participant: int
    red_flag_submission: int
    red_flag_visit: int
    closing_visit: int
    closing_participant: int
    missed_visit: int
    failed_submission: int
    bounced_participant: int
    no_phone_participant: int
    opted_out_participant: int
    failed_status_push: int


@pytest.fixture
def study(app) -> Study:
    """A handful of participants, one per kind of work-list row."""
    return seed_study()


def seed_study() -> Study:
    """Seed the study into the current app's database (needs an app context)."""
    p1 = make_participant("RF-001", commit=False)
    v1 = add_visit(
        p1, status="completed", completed_at=NOW - timedelta(hours=5), completed_via="questionnaire"
    )
    s1 = add_submission(v1, red_flag=True, red_flag_reasons=["home SpO2 at or below 93%"])
    p2 = make_participant("CL-002", commit=False)
    v2 = add_visit(p2, closes=NOW + timedelta(hours=20))
    v2m = add_visit(
        p2,
        key="month_6",
        status="scheduled",
        opens=NOW + timedelta(days=150),
        closes=NOW + timedelta(days=170),
    )
    p3 = make_participant("MS-003", commit=False)
    v3 = add_visit(p3, status="missed", opens=NOW - timedelta(days=12), closes=NOW - timedelta(days=1))
    add_visit(
        p3,
        key="month_6",
        status="scheduled",
        opens=NOW + timedelta(days=150),
        closes=NOW + timedelta(days=170),
    )
    push = RedcapStatusPush(
        visit_id=v3.id,
        status="missed",
        sync_status="failed",
        last_error='ERROR: "fu_visit_status" is not a field in this project',
        queued_at=NOW - timedelta(hours=20),
    )
    db.session.add(push)
    p4 = make_participant("PF-004", commit=False)
    v4 = add_visit(
        p4, status="completed", completed_at=NOW - timedelta(days=1), completed_via="questionnaire"
    )
    s4 = add_submission(
        v4, sync_status="failed", last_error='ERROR: "fu_spo2" value "101" is outside the range (50-100)'
    )
    p5 = make_participant("BO-005", commit=False)
    v5 = add_visit(p5)
    add_message(p5, v5, "undelivered", 1, error_code="30003", error_message="Unreachable destination handset")
    p6 = make_participant("NP-006", commit=False)
    p6.phone_e164 = None
    p6.phone_status = "missing"
    add_visit(p6, opens=NOW + timedelta(days=3), closes=NOW + timedelta(days=13), status="scheduled")
    p7 = make_participant("OO-007", commit=False)
    p7.opted_out = True
    p7.opted_out_at = NOW - timedelta(days=3)
    add_visit(p7, opens=NOW + timedelta(days=3), closes=NOW + timedelta(days=13), status="scheduled")
    db.session.add(
        InboundMessage(
            provider_sid="SM" + "0" * 32,
            participant_id=None,
            from_e164="+15555550100",
            body="hello",
            received_at=NOW - timedelta(days=10),
        )
    )
    db.session.commit()
    del v2m
    return Study(
        red_flag_participant=p1.id,
        red_flag_submission=s1.id,
        red_flag_visit=v1.id,
        closing_visit=v2.id,
        closing_participant=p2.id,
        missed_visit=v3.id,
        failed_submission=s4.id,
        bounced_participant=p5.id,
        no_phone_participant=p6.id,
        opted_out_participant=p7.id,
        failed_status_push=push.id,
    )
