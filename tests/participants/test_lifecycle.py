"""Ending a participation: the console's action and REDCap's roster give the same rows.

Two identical participants, with identical visits, a live link and identical texts, are ended once each:
one by a coordinator through the console (test client, real sign-in form), one by a roster sync that
reads the same study status from the local REDCap server. Their rows are then compared table by table,
row by row; only what the source itself explains may differ (`status_source`, and the enrollment-form
push that only the console queues because REDCap does not know yet).
"""

from __future__ import annotations

from datetime import date, timedelta
from itertools import zip_longest

import pytest
from argon2 import PasswordHasher
from sqlalchemy import func, select

from app.extensions import db
from app.models import (
    AuditEntry,
    OutboundMessage,
    Participant,
    RedcapEnrollmentStatusPush,
    RedcapStatusPush,
    SurveyLink,
    User,
    Visit,
    utcnow,
)
from app.participants.links import issue_link
from app.redcap.roster import sync_roster
from tests.console.conftest import PASSWORD, FreshClient, sign_in
from tests.redcap.conftest import baseline_row

DISCHARGE = (date.today() - timedelta(days=26)).isoformat()
BY_CONSOLE, BY_ROSTER = "4101", "4102"
PHONES = {BY_CONSOLE: "13800138101", BY_ROSTER: "13800138102"}
ONCALL = "+8613800138900"
# REDCap's study_status code and the console's URL for each ended status.
PATHS = {"withdrawn": ("2", "withdraw"), "deceased": ("3", "death")}
LIFECYCLE_AUDITS = ("visit.cancelled", "sms.cancelled")


def _participant(record: str) -> Participant:
    return db.session.scalar(select(Participant).where(Participant.record_id == record))


def _text(p: Participant, visit: Visit | None, kind: str, slot: str | None, status: str, **kw) -> None:
    now = utcnow()
    values = {"to_e164": p.phone_e164, "template": "reminder", **kw}
    db.session.add(
        OutboundMessage(
            dedupe_key=f"{p.record_id}:{kind}:{slot}",
            kind=kind,
            participant_id=p.id,
            visit_id=visit.id if visit else None,
            slot=slot,
            status=status,
            due_at=now - timedelta(minutes=5),
            created_at=now - timedelta(minutes=10),
            **values,
        )
    )


def _enroll(server) -> None:
    """Both participants through the real roster sync, then the same open visit, link and texts each."""
    server.state.seed_records([baseline_row(r, DISCHARGE, phone=PHONES[r]) for r in PHONES])
    report = sync_roster(utcnow())
    assert report.created == 2
    for record in PHONES:
        p = _participant(record)
        week4 = next(v for v in p.visits if v.visit_key == "week_4")
        week4.status = "open"
        db.session.flush()
        issue_link(week4, utcnow())
        _text(p, week4, "reminder", "r0", "sent")  # handed to the provider: kept as it is
        _text(p, week4, "reminder", "r1", "sending")  # claimed, may be with the provider: kept
        _text(p, week4, "reminder", "r2", "pending")
        _text(p, week4, "manual", "manual-1", "pending")
        _text(p, None, "reply", None, "pending", template="reply_help")
        _text(p, None, "redflag_alert", None, "pending", to_e164=ONCALL, template="redflag_alert")  # staff
    db.session.commit()


def _end_in_console(server, status: str) -> None:
    app = server.app
    app.test_client_class = FreshClient
    hashed = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1).hash(PASSWORD)
    user = User(email="coordinator@example.org", role="coordinator", password_hash=hashed)
    db.session.add(user)
    db.session.commit()
    client = app.test_client()
    assert sign_in(client, user).status_code == 302
    url = f"/console/participants/{_participant(BY_CONSOLE).id}/{PATHS[status][1]}"
    response = client.post(url, data={"reason": "family phoned"})
    assert response.status_code == 303, response.data[:500]


def _end_in_redcap(server, status: str) -> None:
    code = PATHS[status][0]
    server.state.seed_records([baseline_row(BY_ROSTER, DISCHARGE, phone=PHONES[BY_ROSTER], status=code)])
    report = sync_roster(utcnow())
    assert (report.updated, report.unchanged, report.cancelled_visits) == (1, 1, 2)


def _rows(record: str, status: str, audit_after: int) -> dict[str, list[tuple]]:
    """The participant's rows, without ids, record ids, phone numbers and timestamps."""
    p = _participant(record)
    visits = {v.id: v.visit_key for v in p.visits}

    def by_visit(model, *cols):
        found = db.session.scalars(select(model).where(model.visit_id.in_(visits)))
        return sorted((visits[r.visit_id], *(getattr(r, c) for c in cols)) for r in found)

    messages = db.session.scalars(select(OutboundMessage).where(OutboundMessage.participant_id == p.id))
    audits = db.session.scalars(
        select(AuditEntry)
        .where(
            AuditEntry.participant_id == p.id,
            AuditEntry.id > audit_after,
            AuditEntry.action.in_((f"participant.{status}", *LIFECYCLE_AUDITS)),
        )
        .order_by(AuditEntry.id)
    )
    return {
        "participant": [(p.status, p.opted_out, p.phone_status, p.sms_consent, p.can_receive_sms)],
        "visits": sorted((v.visit_key, v.status, v.status_reason) for v in p.visits),
        "links": [(key, revoked is not None) for key, revoked in by_visit(SurveyLink, "revoked_at")],
        "messages": sorted(
            ((m.kind, m.slot or "", m.template, m.status, m.error_message or "") for m in messages),
        ),
        "visit_status_pushes": by_visit(RedcapStatusPush, "status", "sync_status", "sync_attempts"),
        "audit": sorted(
            (
                a.action,
                visits.get(a.visit_id, ""),
                a.detail.get("previous_status"),
                a.detail.get("visits_cancelled"),
                a.detail.get("texts_cancelled"),
                a.detail.get("count"),
            )
            for a in audits
        ),
    }


def _enrollment_push(record: str) -> tuple | None:
    row = db.session.scalar(
        select(RedcapEnrollmentStatusPush).where(
            RedcapEnrollmentStatusPush.participant_id == _participant(record).id
        )
    )
    return None if row is None else (row.status, row.sync_status)


@pytest.mark.parametrize("status", sorted(PATHS))
def test_console_and_roster_end_a_participation_with_the_same_rows(redcap_server, status):
    _enroll(redcap_server)
    mark = db.session.scalar(select(func.max(AuditEntry.id)))
    _end_in_console(redcap_server, status)
    _end_in_redcap(redcap_server, status)
    db.session.expire_all()

    console, roster = _rows(BY_CONSOLE, status, mark), _rows(BY_ROSTER, status, mark)
    differences = [
        f"{table} row {n}: console {by_console} != roster {by_roster}"
        for table in console
        for n, (by_console, by_roster) in enumerate(zip_longest(console[table], roster[table]))
        if by_console != by_roster
    ]
    assert not differences, "\n".join(differences)

    # The one behaviour, spelled out (the same for both, as just compared).
    why = f"participant {status}"
    assert console["participant"] == [(status, False, "ok", True, False)]
    assert console["visits"] == [("month_6", "cancelled", why), ("week_4", "cancelled", why)]
    assert console["links"] == [("week_4", True)]
    assert console["messages"] == [
        ("manual", "manual-1", "reminder", "cancelled", why),
        ("redflag_alert", "", "redflag_alert", "pending", ""),
        ("reminder", "r0", "reminder", "sent", ""),
        ("reminder", "r1", "reminder", "sending", ""),
        ("reminder", "r2", "reminder", "cancelled", why),
        ("reply", "", "reply_help", "cancelled", why),
    ]
    assert console["visit_status_pushes"] == [
        ("month_6", "withdrawn", "pending", 0),
        ("week_4", "withdrawn", "pending", 0),
    ]
    assert console["audit"] == [
        (f"participant.{status}", "", "active", 2, 3, None),
        ("sms.cancelled", "", None, None, None, 3),
        ("visit.cancelled", "month_6", None, None, None, None),
        ("visit.cancelled", "week_4", None, None, None, None),
    ]

    # What the source explains, and nothing else: REDCap must be told only when the console ended it.
    assert (_participant(BY_CONSOLE).status_source, _participant(BY_ROSTER).status_source) == (
        "console",
        "redcap",
    )
    assert _enrollment_push(BY_CONSOLE) == (status, "pending")
    assert _enrollment_push(BY_ROSTER) is None


def test_the_roster_ending_an_ended_participant_again_changes_nothing(redcap_server):
    _enroll(redcap_server)
    _end_in_redcap(redcap_server, "withdrawn")
    db.session.expire_all()
    mark = db.session.scalar(select(func.max(AuditEntry.id)))
    before = _rows(BY_ROSTER, "withdrawn", mark)
    # Staff fix the phone in REDCap: the row changes, the participant stays withdrawn.
    redcap_server.state.seed_records([baseline_row(BY_ROSTER, DISCHARGE, phone="13800138103", status="2")])
    report = sync_roster(utcnow())
    assert (report.updated, report.cancelled_visits) == (1, 0)
    db.session.expire_all()
    assert before["audit"] == [] and _rows(BY_ROSTER, "withdrawn", mark) == before
