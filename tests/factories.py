"""Test data builders. Phone numbers are fictitious: +86 138 0013 8000–8999 and +1 555 01xx only."""

from __future__ import annotations

import itertools
from datetime import date, timedelta

from app.extensions import db
from app.models import Participant, User, utcnow

_seq = itertools.count(1)

# A complete, valid week-4 questionnaire as the participant's form posts it (no red flag).
GOOD_ANSWERS = {
    "fu_fever": "0",
    "fu_mmrc": "1",
    "fu_cough": "1",
    "fu_sneezing": "0",
    "fu_diarrhea": "0",
    "fu_spo2": "97",
    "fu_readmitted": "0",
    "fu_ae___1": "1",
    "fu_health_today": "80",
    "fu_comments": "Feeling better",
}


def fake_cn_phone(n: int | None = None) -> str:
    """A fictitious Chinese mobile in E.164 (+86 138 0013 8000–8999)."""
    n = next(_seq) if n is None else n
    return f"+86138001380{n % 100:02d}" if n < 100 else f"+861380013{8000 + n % 1000}"


def make_participant(
    record_id: str | None = None,
    *,
    days_since_discharge: int = 26,
    language: str = "en",
    timezone: str = "Asia/Shanghai",
    phone: str | None = None,
    consent: bool = True,
    status: str = "active",
    commit: bool = True,
) -> Participant:
    """An active, consenting participant discharged `days_since_discharge` days ago (local date)."""
    n = next(_seq)
    participant = Participant(
        record_id=record_id or f"R{n:04d}",
        phone_e164=phone or f"+861380013{8000 + n % 1000}",
        phone_status="ok",
        language=language,
        timezone=timezone,
        sms_consent=consent,
        status=status,
        anchor_date=date.today() - timedelta(days=days_since_discharge),
        roster_synced_at=utcnow(),
    )
    db.session.add(participant)
    if commit:
        db.session.commit()
    return participant


def make_user(
    email: str | None = None, role: str = "coordinator", password: str = "correct horse battery"
) -> User:
    user = User(email=email or f"user{next(_seq)}@example.org", role=role)
    user.set_password(password)
    db.session.add(user)
    db.session.commit()
    return user
