"""CSV export of the visit status table: its columns, no answers, phone numbers only for admins."""

from __future__ import annotations

import csv
import io

import pytest

from app.extensions import db
from app.models import Participant, Visit
from tests.console.conftest import NOW, add_visit
from tests.factories import make_participant

COLUMNS = [
    "record_id",
    "visit",
    "event",
    "window_start",
    "window_end",
    "status",
    "completed_via",
    "completed_at",
    "reminders_sent",
    "call_attempts",
    "last_call_outcome",
]


@pytest.fixture(autouse=True)
def _frozen(time_machine):
    time_machine.move_to(NOW, tick=False)


def read(response) -> list[dict[str, str]]:
    assert response.status_code == 200
    assert response.mimetype == "text/csv"
    assert "attachment" in response.headers["Content-Disposition"]
    return list(csv.DictReader(io.StringIO(response.data.decode())))


@pytest.mark.parametrize("role", ["viewer", "coordinator"])
def test_columns_without_phone_numbers_for_non_admins(as_role, study, role):
    response = as_role(role).get("/console/visits.csv")
    header = response.data.decode().splitlines()[0]
    assert header.split(",") == COLUMNS
    rows = read(response)
    assert len(rows) == 9
    text = response.data.decode()
    for participant in db.session.query(Participant).all():
        if participant.phone_e164:
            assert participant.phone_e164 not in text and participant.phone_e164[3:] not in text
    assert "<b>x</b>" not in text and "fu_spo2" not in text  # no answers, ever


def test_admin_gets_the_phone_column(as_role, study):
    rows = read(as_role("admin").get("/console/visits.csv"))
    assert list(rows[0]) == [*COLUMNS, "phone"]
    by_record = {r["record_id"]: r for r in rows}
    assert by_record["BO-005"]["phone"].startswith("+86138001")
    assert by_record["NP-006"]["phone"] == ""


def test_values_filters_and_formula_guard(as_role, study):
    evil = make_participant("=HYPERLINK(1)", commit=False)
    add_visit(evil)
    db.session.commit()
    client = as_role("viewer")
    rows = read(client.get("/console/visits.csv?status=completed"))
    assert {r["record_id"] for r in rows} == {"RF-001", "PF-004"}
    assert all(r["completed_via"] == "questionnaire" and r["completed_at"] for r in rows)
    bounced = read(client.get("/console/visits.csv?q=BO-005"))
    assert len(bounced) == 1 and bounced[0]["reminders_sent"] == "1" and bounced[0]["visit"] == "week_4"
    assert bounced[0]["event"] == "week_4_arm_1"
    assert {r["visit"] for r in read(client.get("/console/visits.csv?visit=month_6"))} == {"month_6"}
    guarded = read(client.get("/console/visits.csv?q==HYPERLINK(1)"))
    assert guarded[0]["record_id"] == "'=HYPERLINK(1)"


def test_export_needs_a_login(client, study):
    response = client.get("/console/visits.csv")
    assert response.status_code == 302 and "/console/login" in response.headers["Location"]


def test_export_streams_calls_and_neutralises_formulas(as_role, study, time_machine):
    """Attempts and the last outcome per visit; the body is streamed; formula-like cells are quoted."""
    from app.models import CallAttempt

    time_machine.move_to(NOW, tick=False)
    visit = db.session.get(Visit, study.closing_visit)
    for n, outcome in enumerate(("no_answer", "busy"), start=1):
        db.session.add(
            CallAttempt(
                visit_id=visit.id,
                participant_id=visit.participant_id,
                attempt_no=n,
                actor="user:1",
                at=NOW,
                outcome=outcome,
            )
        )
    db.session.get(Participant, visit.participant_id).record_id = "=HYPERLINK(1)"
    db.session.commit()
    response = as_role("viewer").get("/console/visits.csv")
    assert response.is_streamed
    rows = list(csv.DictReader(io.StringIO(response.get_data(as_text=True))))
    row = next(r for r in rows if r["record_id"] == "'=HYPERLINK(1)" and r["visit"] == "week_4")
    assert (row["call_attempts"], row["last_call_outcome"]) == ("2", "busy")
    assert all(r["call_attempts"] == "0" for r in rows if r is not row and r["record_id"] != row["record_id"])
