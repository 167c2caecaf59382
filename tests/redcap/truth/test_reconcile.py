"""Reconciliation: finds edits made in REDCap after the push, missing pushes, pending conflicts; repairs only
when asked."""

from __future__ import annotations

from app.extensions import db
from app.models import AuditEntry, Submission, utcnow
from app.tick import run_tick
from tests.redcap.truth.conftest import staff_questionnaire
from tests.redcap.truth.helpers import scheduled, submitted


def _pushed(records: list[str]) -> list[Submission]:
    subs = [submitted(scheduled(r)) for r in records]
    summary = run_tick(utcnow(), only=["metadata", "push"])
    assert not any(k.endswith(".error") for k in summary), summary
    db.session.expire_all()
    assert all(db.session.get(Submission, s.id).sync_status == "pushed" for s in subs)
    return subs


def test_reconcile_reports_edit_missing_and_conflict_and_changes_nothing(truth_app, redcap):
    app = truth_app()
    with app.app_context():
        _same, _edited, lost = _pushed(["8001", "8002", "8003"])
        # After the push: staff correct a value for 8002 in REDCap; 8003's data disappears from REDCap.
        redcap.state.seed_records(
            [{"record_id": "8002", "redcap_event_name": "week_4_arm_1", "fu_cough": "3"}]
        )
        with redcap.state.lock:
            redcap.state.store.pop(("8003", "week_4_arm_1"), None)
        submitted(scheduled("8004"))
        redcap.state.seed_records([staff_questionnaire("8004", fu_mmrc="4")])
        run_tick(utcnow(), only=["push"])
        redcap.state.clear_calls()

        result = app.test_cli_runner().invoke(args=["redcap", "reconcile"])
        assert result.exit_code == 0, result.output
        lines = {line.split()[0]: line for line in result.output.splitlines() if line[:4].isdigit()}
        assert "edited in REDCap" in lines["8002"] and "fu_cough" in lines["8002"]
        assert "missing in REDCap" in lines["8003"]
        assert "conflict pending" in lines["8004"]
        assert "8001" not in lines
        assert "3" not in lines["8002"].split("fu_cough")[1]  # field names only, never values
        assert "4 completed visits checked in 1 exports" in result.output
        exports = [c for c in redcap.state.calls if c.get("content") == "record"]
        assert len(exports) == 1 and all(c.get("action") == "export" for c in exports)

        db.session.expire_all()
        assert db.session.get(Submission, lost.id).sync_status == "pushed"  # nothing changed without --repair
        assert redcap.state.value("8002", "fu_cough", "week_4_arm_1") == "3"


def test_repair_requeues_missing_push_only_and_the_push_restores_it(truth_app, redcap):
    app = truth_app()
    with app.app_context():
        edited, lost = _pushed(["8101", "8102"])
        redcap.state.seed_records(
            [{"record_id": "8101", "redcap_event_name": "week_4_arm_1", "fu_mmrc": "0"}]
        )
        with redcap.state.lock:
            redcap.state.store.pop(("8102", "week_4_arm_1"), None)

        result = app.test_cli_runner().invoke(args=["redcap", "reconcile", "--repair"])
        assert result.exit_code == 0, result.output
        assert "re-queued 1" in result.output
        db.session.expire_all()
        assert db.session.get(Submission, lost.id).sync_status == "pending"
        assert db.session.get(Submission, edited.id).sync_status == "pushed"
        assert db.session.query(AuditEntry).filter_by(action="redcap.reconcile_requeued").count() == 1

        run_tick(utcnow(), only=["push"])
        assert redcap.state.value("8102", "fu_mmrc", "week_4_arm_1") == "2"
        assert redcap.state.value("8101", "fu_mmrc", "week_4_arm_1") == "0"  # the staff edit stays
        again = app.test_cli_runner().invoke(args=["redcap", "reconcile"])
        assert "missing in REDCap: 0" in again.output and "edited in REDCap: 1" in again.output


def test_reconcile_fails_clearly_when_redcap_is_down(truth_app, redcap):
    app = truth_app()
    with app.app_context():
        _pushed(["8201"])
        redcap.state.fail("500", count=None)
        result = app.test_cli_runner().invoke(args=["redcap", "reconcile", "--repair"])
        assert result.exit_code != 0
        assert "REDCap unavailable" in result.output
