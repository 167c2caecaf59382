"""The console's conflict comparison, its two audited actions, and the reconciliation report page."""

from __future__ import annotations

import re

from flask import g
from flask.testing import FlaskClient

from app.extensions import db
from app.models import AuditEntry, Submission, utcnow
from app.redcap.conflicts import check_batch
from tests.factories import make_user
from tests.redcap.truth.conftest import staff_questionnaire
from tests.redcap.truth.helpers import scheduled, submitted

PASSWORD = "correct horse battery"


class FreshClient(FlaskClient):
    """Requests that do not share Flask-Login's cached user (the test keeps one app context pushed)."""

    def open(self, *args, **kwargs):
        g.pop("_login_user", None)
        return super().open(*args, **kwargs)


def signed_in(app, role: str) -> FlaskClient:
    app.test_client_class = FreshClient
    user = make_user(f"{role}-truth@example.org", role=role, password=PASSWORD)
    client = app.test_client()
    response = client.post("/console/login", data={"email": user.email, "password": PASSWORD})
    assert response.status_code == 302, response.data[:300]
    return client


def _conflict(redcap, record: str = "9001") -> Submission:
    submission = submitted(scheduled(record))
    redcap.state.seed_records([staff_questionnaire(record, fu_mmrc="4", fu_comments="entered at the clinic")])
    check_batch([submission], utcnow())
    db.session.commit()
    return submission


def _shown_hash(html: str) -> str:
    match = re.search(r'name="snapshot_hash"[^>]*value="([0-9a-f]{64})"', html) or re.search(
        r'value="([0-9a-f]{64})"[^>]*name="snapshot_hash"', html
    )
    assert match, "the decision form must carry the hash of the values shown"
    return match.group(1)


def test_side_by_side_and_import_refused_when_redcap_changed_meanwhile(truth_app, redcap):
    app = truth_app()
    with app.app_context():
        submission = _conflict(redcap)
        coordinator = signed_in(app, "coordinator")
        listing = coordinator.get("/console/conflicts")
        assert listing.status_code == 200 and "9001" in listing.get_data(as_text=True)
        page = coordinator.get(f"/console/conflicts/{submission.id}")
        html = page.get_data(as_text=True)
        assert page.status_code == 200
        assert "entered at the clinic" in html and "fu_mmrc" in html
        shown = _shown_hash(html)

        # A staff member edits REDCap again while the coordinator reads the page.
        redcap.state.seed_records(
            [{"record_id": "9001", "redcap_event_name": "week_4_arm_1", "fu_cough": "3"}]
        )
        before = redcap.state.records(records=["9001"])
        refused = coordinator.post(
            f"/console/conflicts/{submission.id}/import",
            data={"snapshot_hash": shown, "reason": "participant sure"},
        )
        assert refused.status_code == 409
        assert "changed since the page was shown" in refused.get_data(as_text=True)
        db.session.expire_all()
        assert db.session.get(Submission, submission.id).sync_status == "conflict"
        assert redcap.state.records(records=["9001"]) == before

        # The page now shows the new values; deciding on them is accepted and audited.
        fresh = _shown_hash(coordinator.get(f"/console/conflicts/{submission.id}").get_data(as_text=True))
        assert fresh != shown
        done = coordinator.post(
            f"/console/conflicts/{submission.id}/import",
            data={"snapshot_hash": fresh, "reason": "participant sure"},
        )
        assert done.status_code == 303
        db.session.expire_all()
        assert db.session.get(Submission, submission.id).sync_status == "pending"
        entry = db.session.query(AuditEntry).filter_by(action="submission.conflict_import").one()
        assert entry.reason == "participant sure" and entry.actor.startswith("user:")


def test_viewer_sees_but_cannot_decide_and_bad_forms_change_nothing(truth_app, redcap):
    app = truth_app()
    with app.app_context():
        submission = _conflict(redcap, "9101")
        viewer = signed_in(app, "viewer")
        page = viewer.get(f"/console/conflicts/{submission.id}")
        assert page.status_code == 200 and "Import anyway" not in page.get_data(as_text=True)
        shown = submission.redcap_snapshot["hash"]
        assert (
            viewer.post(
                f"/console/conflicts/{submission.id}/discard", data={"snapshot_hash": shown, "reason": "x"}
            ).status_code
            == 403
        )
        coordinator = signed_in(app, "coordinator")
        assert (
            coordinator.post(
                f"/console/conflicts/{submission.id}/discard", data={"snapshot_hash": shown}
            ).status_code
            == 400
        )
        assert (
            coordinator.post(
                f"/console/conflicts/{submission.id}/import", data={"snapshot_hash": "zz", "reason": "x"}
            ).status_code
            == 400
        )
        db.session.expire_all()
        assert db.session.get(Submission, submission.id).sync_status == "conflict"
        discarded = coordinator.post(
            f"/console/conflicts/{submission.id}/discard",
            data={"snapshot_hash": shown, "reason": "clinic copy is right"},
        )
        assert discarded.status_code == 303
        db.session.expire_all()
        assert db.session.get(Submission, submission.id).sync_status == "discarded"
        assert db.session.query(AuditEntry).filter_by(action="submission.conflict_discard").count() == 1
        # No longer a conflict: the page sends the coordinator back to the list.
        assert coordinator.get(f"/console/conflicts/{submission.id}").status_code == 302


def test_reconcile_page_shows_the_report_and_survives_an_outage(truth_app, redcap):
    app = truth_app()
    with app.app_context():
        _conflict(redcap, "9201")
        viewer = signed_in(app, "viewer")
        page = viewer.get("/console/reconcile")
        html = page.get_data(as_text=True)
        assert page.status_code == 200 and "9201" in html and "conflict pending" in html
        redcap.state.fail("500", count=None)
        down = viewer.get("/console/reconcile")
        assert down.status_code == 200 and "REDCap cannot be reached" in down.get_data(as_text=True)


def test_participant_page_links_a_conflict_to_the_comparison(truth_app, redcap):
    app = truth_app()
    with app.app_context():
        submission = _conflict(redcap, "9301")
        viewer = signed_in(app, "viewer")
        page = viewer.get(f"/console/participants/{submission.visit.participant_id}")
        assert page.status_code == 200
        assert f"/console/conflicts/{submission.id}" in page.get_data(as_text=True)
