"""Fixtures for the patient questionnaire: stored REDCap metadata, a participant with an open visit and a link."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest

from app.extensions import db
from app.models import Participant, Visit, utcnow
from app.participants.links import issue_link
from app.questionnaire.store import save_metadata
from tests.factories import make_participant

METADATA = Path(__file__).resolve().parents[1] / "fixtures" / "metadata"
TRIAL = "followup_questionnaire"
WELLBEING = "wellbeing_check"


def load_metadata(name: str) -> list[dict]:
    return json.loads((METADATA / f"{name}.json").read_text(encoding="utf-8"))


@dataclass
class Invite:
    """A participant with an open visit and the raw token of its personal link."""

    participant: Participant
    visit: Visit
    token: str

    @property
    def url(self) -> str:
        return f"/s/{self.token}"


def open_visit(
    participant: Participant, *, key: str = "week_4", opened_days_ago: int = 1, closes_in_days: int = 9
) -> Visit:
    now = utcnow()
    visit = Visit(
        participant=participant,
        visit_key=key,
        event_name=f"{key}_arm_1",
        target_date=(now + timedelta(days=2)).date(),
        window_start=(now - timedelta(days=opened_days_ago)).date(),
        window_end=(now + timedelta(days=closes_in_days)).date(),
        opens_at=now - timedelta(days=opened_days_ago),
        closes_at=now + timedelta(days=closes_in_days),
        status="open",
    )
    db.session.add(visit)
    db.session.flush()
    return visit


def invite(language: str = "en", **visit_kw) -> Invite:
    """A fresh participant with an open visit and an issued link (committed)."""
    participant = make_participant(language=language)
    visit = open_visit(participant, **visit_kw)
    token = issue_link(visit, utcnow())
    db.session.commit()
    return Invite(participant, visit, token)


@pytest.fixture
def trial(app):
    """The trial's followup_questionnaire stored as the current REDCap metadata."""
    save_metadata(load_metadata("trial_project"), TRIAL, utcnow())
    return app


@pytest.fixture
def wellbeing(app_factory):
    """An app whose questionnaire is the other project's wellbeing_check (every field type)."""
    app = app_factory(REDCAP_QUESTIONNAIRE_INSTRUMENT=WELLBEING)
    with app.app_context():
        save_metadata(load_metadata("wellbeing_project"), WELLBEING, utcnow())
        yield app


@pytest.fixture
def invited(trial) -> Invite:
    return invite()
