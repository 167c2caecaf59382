"""The Data Entry Trigger endpoint: secret, project, record checks, flood limits, and the re-read queue."""

from __future__ import annotations

from datetime import timedelta

from app.extensions import db
from app.models import OutboundMessage, Participant, RecordRefresh, utcnow
from app.redcap.rereads import drain, wait_for_worker
from app.tick import run_tick
from tests.redcap.truth.conftest import DET_SECRET, PROJECT_ID, baseline_row
from tests.redcap.truth.helpers import pending_message, scheduled, visit_of


def det_form(record: str = "5001", project_id: str = PROJECT_ID, **extra: str) -> dict[str, str]:
    """The form REDCap posts (instrument, event, URLs, username, form status)."""
    form = {
        "project_id": project_id,
        "record": record,
        "instrument": "enrollment",
        "redcap_event_name": "baseline_arm_1",
        "redcap_url": "https://redcap.example.org/",
        "project_url": f"https://redcap.example.org/redcap_v14/index.php?pid={project_id}",
        "username": "coordinator1",
        "enrollment_complete": "2",
    }
    form.update(extra)
    return form


def post(client, form: dict[str, str], secret: str | None = DET_SECRET):
    url = "/redcap/det" if secret is None else f"/redcap/det?secret={secret}"
    return client.post(url, data=form)


def _refreshes() -> list[RecordRefresh]:
    return list(db.session.query(RecordRefresh).order_by(RecordRefresh.id))


FORGED = [
    (None, det_form()),
    ("wrong-secret", det_form()),
    (DET_SECRET[:-1], det_form()),
    (DET_SECRET + "x", det_form()),
    (DET_SECRET, det_form(project_id="999")),
    (DET_SECRET, {k: v for k, v in det_form().items() if k != "project_id"}),
    (DET_SECRET, det_form(record="9999")),  # not a participant of this service
]


def test_forged_or_foreign_posts_are_refused_and_change_nothing(truth_app, redcap):
    app = truth_app()
    with app.app_context():
        scheduled("5001")
        client = app.test_client()
        for secret, form in FORGED:
            response = post(client, form, secret)
            assert response.status_code == 403, (secret, form)
        assert _refreshes() == []
        assert redcap.state.calls == []  # the endpoint never calls REDCap


def test_no_secret_configured_refuses_everything(truth_app, redcap):
    app = truth_app(REDCAP_DET_SECRET="")
    with app.app_context():
        scheduled("5001")
        assert post(app.test_client(), det_form(), "").status_code == 403
        assert post(app.test_client(), det_form(), "anything").status_code == 403
        assert _refreshes() == []


def test_missing_or_malformed_record_is_400(truth_app, redcap):
    app = truth_app()
    with app.app_context():
        client = app.test_client()
        for record in [None, "", "   ", "1001; DROP TABLE", "../../etc", "x" * 101, "a b", "<script>"]:
            form = det_form()
            if record is None:
                del form["record"]
            else:
                form["record"] = record
            response = post(client, form)
            assert response.status_code == 400, record
            assert "record" in response.get_data(as_text=True)
        assert _refreshes() == []


def test_valid_post_answers_at_once_and_dedupes_while_pending(truth_app, redcap):
    app = truth_app()
    with app.app_context():
        scheduled("5001")
        redcap.state.set_latency(2000)  # a slow REDCap must not slow the endpoint: it is never called
        client = app.test_client()
        for _ in range(3):
            response = post(client, det_form())
            assert response.status_code == 200 and response.get_data(as_text=True).strip() == "queued"
        alias = client.post(f"/redcap/det?token={DET_SECRET}", data=det_form())
        assert alias.status_code == 200
        rows = _refreshes()
        assert len(rows) == 1 and rows[0].record_id == "5001" and rows[0].done_at is None
        assert redcap.state.calls == []


def test_flood_is_limited_per_client_and_by_queue_size(truth_app, redcap):
    app = truth_app(RATELIMIT_ENABLED="true", REDCAP_DET_LIMIT="5 per minute", REDCAP_DET_MAX_PENDING="2")
    with app.app_context():
        for n in range(4):
            scheduled(f"510{n}")
        client = app.test_client()
        codes = [post(client, det_form(record=f"510{n % 4}")).status_code for n in range(8)]
        # Two re-reads fit in the queue; the third distinct record finds it full; from the 6th post on, the
        # client is over its rate.
        assert codes[:2] == [200, 200]
        assert codes[2] == 429 and codes[3] == 429
        assert codes[5:] == [429, 429, 429]
        assert len(_refreshes()) == 2
        assert codes[4] == 200  # 5100 again: already queued, so the full queue does not refuse it


def test_det_for_withdrawal_cancels_pending_reminder_before_next_pass(truth_app, redcap):
    app = truth_app()
    with app.app_context():
        now = utcnow()
        participant = scheduled("5201", days=26)
        redcap.state.seed_records([baseline_row("5201", participant.anchor_date)])
        visit = visit_of(participant)
        message = pending_message(visit, due=now + timedelta(minutes=5))
        # 10:00 withdrawn in REDCap; REDCap posts the trigger.
        redcap.state.seed_records([{**baseline_row("5201", participant.anchor_date), "study_status": "2"}])
        assert post(app.test_client(), det_form(record="5201")).status_code == 200
        summary = run_tick(now, only=["det"])
        assert summary["det.applied"] == 1, summary
        db.session.expire_all()
        assert db.session.get(Participant, participant.id).status == "withdrawn"
        assert db.session.get(OutboundMessage, message.id).status == "cancelled"
        exported = [c for c in redcap.state.calls if c.get("content") == "record"]
        assert exported and all("randomization_group" not in c.get("fields", []) for c in exported)


def test_worker_thread_applies_within_seconds(truth_app, redcap):
    app = truth_app(REDCAP_DET_WORKER="true")
    with app.app_context():
        participant = scheduled("5301")
        redcap.state.seed_records(
            [
                baseline_row("5301", participant.anchor_date),
                {
                    "record_id": "5301",
                    "redcap_event_name": "week_4_arm_1",
                    "followup_questionnaire_complete": "2",
                },
            ]
        )
        assert post(app.test_client(), det_form(record="5301")).status_code == 200
        wait_for_worker(app, timeout=10)
        db.session.expire_all()
        row = _refreshes()[0]
        assert row.done_at is not None and row.note == "applied"
        week4 = visit_of(db.session.get(Participant, participant.id))
        assert week4.status == "completed" and week4.completed_via == "redcap"


def test_record_missing_in_redcap_is_done_with_a_note(truth_app, redcap):
    app = truth_app()
    with app.app_context():
        participant = scheduled("5401")  # known here, deleted (or renamed) in REDCap
        assert post(app.test_client(), det_form(record="5401")).status_code == 200
        result = drain(utcnow())
        assert result.not_found == 1
        row = _refreshes()[0]
        assert row.done_at is not None and "not found in REDCap" in row.note
        assert db.session.get(Participant, participant.id) is not None  # nothing deleted


def test_redcap_error_during_reread_is_retried_and_nothing_lost(truth_app, redcap):
    app = truth_app()
    with app.app_context():
        now = utcnow()
        participant = scheduled("5501")
        redcap.state.seed_records([{**baseline_row("5501", participant.anchor_date), "study_status": "2"}])
        assert post(app.test_client(), det_form(record="5501")).status_code == 200
        redcap.state.fail("500", count=1)
        first = drain(now)
        assert first.failed == 1
        row = _refreshes()[0]
        assert row.done_at is None and row.attempts == 1 and "500" in row.last_error
        assert row.next_attempt_at > now
        assert drain(now).as_dict()["applied"] == 0  # not due yet: backoff
        # A new post while it waits is folded into the same pending row.
        assert post(app.test_client(), det_form(record="5501")).status_code == 200
        assert len(_refreshes()) == 1
        later = drain(row.next_attempt_at + timedelta(seconds=1))
        assert later.applied == 1
        db.session.expire_all()
        assert db.session.get(Participant, participant.id).status == "withdrawn"


def test_det_is_csrf_exempt_and_old_trail_rows_are_pruned(truth_app, redcap):
    app = truth_app(WTF_CSRF_ENABLED="true")
    with app.app_context():
        participant = scheduled("5601")
        redcap.state.seed_records([baseline_row("5601", participant.anchor_date)])
        assert post(app.test_client(), det_form(record="5601")).status_code == 200
        now = utcnow()
        assert run_tick(now, only=["det"])["det.applied"] == 1
        assert run_tick(now + timedelta(days=31), only=["det"])["det.pruned"] == 1
        assert _refreshes() == []
        assert db.session.get(Participant, participant.id) is not None


def test_worker_picks_up_posts_arriving_while_it_runs(truth_app, redcap):
    app = truth_app(REDCAP_DET_WORKER="true")
    with app.app_context():
        records = [f"57{n:02d}" for n in range(6)]
        people = [scheduled(r) for r in records]
        redcap.state.seed_records(
            [{**baseline_row(p.record_id, p.anchor_date), "study_status": "2"} for p in people]
        )
        redcap.state.set_latency(50)  # each re-read takes a moment, so posts overlap the worker
        client = app.test_client()
        for record in records:
            assert post(client, det_form(record=record)).status_code == 200
        for _ in range(3):
            wait_for_worker(app, timeout=10)
        db.session.expire_all()
        assert all(r.done_at is not None for r in _refreshes())
        assert {p.status for p in db.session.query(Participant)} == {"withdrawn"}


def test_an_error_applying_a_reread_backs_off_instead_of_wedging_the_queue(truth_app, redcap, monkeypatch):
    import app.redcap.rereads as refresh

    app = truth_app()
    with app.app_context():
        participant = scheduled("5801")
        redcap.state.seed_records([baseline_row("5801", participant.anchor_date)])
        assert post(app.test_client(), det_form(record="5801")).status_code == 200

        def broken(rows, now):
            raise RuntimeError("bug")

        monkeypatch.setattr(refresh, "_apply_roster_rows", broken)
        summary = run_tick(utcnow(), only=["det"])
        assert "det.error" not in summary and summary["det.failed"] == 1
        row = _refreshes()[0]
        assert row.done_at is None and row.attempts == 1 and "RuntimeError" in row.last_error
        monkeypatch.undo()
        assert drain(row.next_attempt_at + timedelta(seconds=1)).applied == 1
