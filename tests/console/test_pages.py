"""Work list order, overview counts and chart, the participant page (labels, escaping), search, language."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from sqlalchemy import select

from app.extensions import db
from app.models import InboundMessage, Participant, Submission
from app.questionnaire.store import save_metadata
from tests.console.conftest import NOW, add_submission, add_visit
from tests.factories import make_participant
from tests.questionnaire.helpers import trial_rows


@pytest.fixture(autouse=True)
def _frozen(time_machine):
    time_machine.move_to(NOW, tick=False)


def kinds(html: bytes) -> list[str]:
    return re.findall(r'data-kind="([a-z_]+)"', html.decode())


def records(html: bytes) -> list[str]:
    return re.findall(r'class="record" href="[^"]+">([^<]+)<', html.decode())


def test_work_list_most_urgent_first(as_role, study):
    html = as_role("viewer").get("/console/").data
    assert kinds(html) == [
        "red_flag",
        "closing",
        "undelivered",
        "push_failed",
        "status_push_failed",
        "no_phone",
    ]
    assert records(html) == ["RF-001", "CL-002", "BO-005", "PF-004", "MS-003", "NP-006"]
    assert b"Window closes in 20 h with no answer" in html
    assert b"Last text undelivered (error 30003)" in html
    assert b"outside the range (50-100)" in html  # REDCap's own words
    # a viewer sees no action forms
    assert b"/acknowledge" not in html


def test_work_list_orders_within_a_kind_and_drops_worked_items(as_role, study):
    later = make_participant("RF-010", commit=False)
    visit = add_visit(later, status="completed", completed_at=NOW, completed_via="questionnaire")
    add_submission(
        visit, red_flag=True, red_flag_reasons=["chest pain reported"], submitted_at=NOW - timedelta(hours=1)
    )
    soon = make_participant("CL-011", commit=False)
    add_visit(soon, closes=NOW + timedelta(hours=3))
    db.session.commit()
    client = as_role("coordinator")
    html = client.get("/console/").data
    assert records(html)[:4] == ["RF-001", "RF-010", "CL-011", "CL-002"]  # oldest flag, soonest closing
    client.post(f"/console/submissions/{study.red_flag_submission}/acknowledge", data={"note": "called"})
    assert "RF-001" not in records(client.get("/console/").data)
    withdrawn = db.session.get(Participant, study.no_phone_participant)
    withdrawn.status = "withdrawn"
    db.session.commit()
    assert "NP-006" not in records(client.get("/console/").data)


def test_empty_work_list_says_so(as_role):
    assert b"Nothing needs action right now." in as_role("viewer").get("/console/").data


def test_overview_counts_rate_and_inline_svg(as_role, study):
    html = as_role("viewer").get("/console/overview").data.decode()
    row = re.search(r'<tr data-visit="week_4">(.*?)</tr>', html, re.S).group(1)
    cells = re.findall(r">(\d+)</a>", row)
    # scheduled, open, completed, missed, cancelled
    assert cells == ["2", "2", "2", "1", "0"]
    assert "67 %" in row  # 2 completed of 3 with a known outcome
    month6 = re.search(r'<tr data-visit="month_6">(.*?)</tr>', html, re.S).group(1)
    assert "—" in month6
    svg = re.search(r"<svg.*?</svg>", html, re.S).group(0)
    assert svg.count("<rect") == 12
    assert re.search(r"<title>\d{4}-\d{2}-\d{2}: 2</title>", svg)
    assert "<script" not in html and "http://" not in svg.replace("http://www.w3.org/2000/svg", "")


def test_participant_page_shows_everything_escaped_with_metadata_labels(app, as_role, study):
    save_metadata(trial_rows(), "followup_questionnaire", NOW)
    submission = db.session.get(Submission, study.red_flag_submission)
    submission.answers = {
        "fu_spo2": "91",
        "fu_mmrc": "4",
        "fu_ae___1": "0",
        "fu_ae___3": "1",
        "fu_comments": "<script>alert('x')</script>",
    }
    participant = db.session.get(Participant, study.red_flag_participant)
    db.session.add(
        InboundMessage(
            provider_sid="SM" + "1" * 32,
            participant_id=participant.id,
            from_e164=participant.phone_e164,
            body="<img src=x onerror=alert(1)>",
            received_at=NOW - timedelta(hours=1),
        )
    )
    db.session.commit()
    client = as_role("coordinator")
    client.post(f"/console/submissions/{submission.id}/acknowledge", data={"note": "<b>called</b>"})
    html = client.get(f"/console/participants/{participant.id}").data.decode()
    assert "Oxygen saturation (SpO2) measured at rest" in html  # label from the REDCap metadata
    assert "Grade 4: I am too breathless" in html and "(4)" in html  # choice label and raw code
    assert "Chest pain" in html and "Rash or itching" not in html  # ticked checkbox options only
    assert "<script>alert" not in html and "&lt;script&gt;alert" in html
    assert "<img src=x" not in html and "&lt;img src=x onerror=alert(1)&gt;" in html
    assert "<b>called</b>" not in html and "&lt;b&gt;called&lt;/b&gt;" in html
    assert "coordinator@example.org" in html  # who acknowledged, by name
    assert "redflag.acknowledged" in html  # the audit entry in the timeline
    assert participant.phone_e164 not in html  # masked for a coordinator
    assert (
        participant.phone_e164
        in as_role("admin").get(f"/console/participants/{participant.id}").data.decode()
    )


def test_participant_page_shows_sms_errors_and_redcap_error_text(as_role, study):
    client = as_role("viewer")
    html = client.get(f"/console/participants/{study.bounced_participant}").data.decode()
    assert "30003" in html and "Unreachable destination handset" in html
    failed = db.session.get(Submission, study.failed_submission)
    html = client.get(f"/console/participants/{failed.visit.participant_id}").data.decode()
    assert "PF-004" in html and "outside the range (50-100)" in html


def test_answers_in_chinese_when_the_console_is_in_chinese(as_role, study):
    save_metadata(trial_rows(), "followup_questionnaire", NOW)
    submission = db.session.get(Submission, study.red_flag_submission)
    submission.answers = {"fu_mmrc": "4"}
    db.session.commit()
    client = as_role("viewer")
    client.post("/console/language", data={"lang": "zh", "next": "/console/"})
    html = client.get(f"/console/participants/{study.red_flag_participant}").data.decode()
    assert "以下哪一项最符合您目前的气促" in html and "4 级" in html
    assert 'lang="zh-CN"' in html
    assert "工作清单" in client.get("/console/").data.decode()


def test_search_by_record_id(as_role, study):
    client = as_role("viewer")
    response = client.get("/console/search?q=MS-003")
    missed = db.session.scalar(select(Participant).where(Participant.record_id == "MS-003"))
    assert response.status_code == 302 and response.headers["Location"].endswith(f"/participants/{missed.id}")
    response = client.get("/console/search?q=<nope>", follow_redirects=True)
    assert b"No participant with record id &lt;nope&gt;" in response.data


def test_visit_table_filters(as_role, study):
    client = as_role("viewer")

    def shown(query: str) -> list[str]:
        html = client.get("/console/visits" + query).data.decode()
        return re.findall(r'<th scope="row" data-label="[^"]+"><a href="[^"]+">([^<]+)</a>', html)

    assert shown("?status=missed") == ["MS-003"]
    assert set(shown("?visit=month_6")) == {"CL-002", "MS-003"}
    assert shown("?q=BO-005") == ["BO-005"]
    assert shown("?status=bogus") != []  # an unknown status is ignored, with a message
    start = (NOW + timedelta(days=140)).date().isoformat()
    assert set(shown(f"?date_from={start}")) == {"CL-002", "MS-003"}
    assert "MS-003" not in shown(f"?date_to={(NOW - timedelta(days=20)).date().isoformat()}")


def test_work_list_rows_carry_their_action_for_coordinators(as_role, study):
    html = as_role("coordinator").get("/console/").data.decode()
    assert f'action="/console/submissions/{study.red_flag_submission}/acknowledge"' in html
    assert f'action="/console/visits/{study.closing_visit}/remind"' in html
    assert f'action="/console/submissions/{study.failed_submission}/retry"' in html
    assert f'action="/console/status-pushes/{study.failed_status_push}/retry"' in html
    viewer = as_role("viewer").get("/console/").data.decode()
    assert 'method="post" action="/console/visits' not in viewer and "/acknowledge" not in viewer


def test_redcap_conflicts_appear_after_failed_pushes(as_role, study):
    participant = make_participant("CF-012", commit=False)
    visit = add_visit(participant, status="completed", completed_at=NOW, completed_via="questionnaire")
    submission = add_submission(visit, sync_status="conflict", redcap_snapshot={"fu_spo2": "97"})
    db.session.commit()
    html = as_role("viewer").get("/console/").data
    assert kinds(html).index("conflict") == kinds(html).index("status_push_failed") + 1
    assert f'href="/console/conflicts/{submission.id}"'.encode() in html
