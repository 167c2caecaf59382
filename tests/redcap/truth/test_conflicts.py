"""No import over staff-entered data: conflicts found with one export per batch, decided by coordinators."""

from __future__ import annotations

import pytest

from app.extensions import db
from app.models import AuditEntry, ConflictDecision, Submission, utcnow
from app.redcap.client import get_client
from app.redcap.conflicts import (
    ConflictChanged,
    check_batch,
    comparison,
    discard,
    import_anyway,
    snapshot_hash,
)
from tests.redcap.truth.conftest import staff_questionnaire
from tests.redcap.truth.helpers import ANSWERS, scheduled, submitted, visit_of


def _import(cleared: list[Submission]) -> None:
    """What the push does with cleared submissions (stand-in for the bridge's push in these unit tests)."""
    rows = []
    for s in cleared:
        rows.append(
            {
                "record_id": s.visit.participant.record_id,
                "redcap_event_name": s.visit.event_name,
                **s.answers,
                "followup_questionnaire_complete": "2",
            }
        )
    if rows:
        get_client().import_records(rows)
    for s in cleared:
        s.sync_status, s.pushed_at = "pushed", utcnow()
    db.session.commit()


def test_staff_data_is_never_overwritten_and_batch_costs_one_export(truth_app, redcap):
    app = truth_app()
    with app.app_context():
        mine, staffs, ours_again = scheduled("4001"), scheduled("4002"), scheduled("4003")
        s_mine, s_staff, s_again = submitted(mine), submitted(staffs), submitted(ours_again)
        redcap.state.seed_records(
            [
                staff_questionnaire("4002", fu_mmrc="4", fu_comments="seen in clinic"),
                # 4003: our own earlier import that was not recorded here (crash after import): same values
                {"record_id": "4003", "redcap_event_name": "week_4_arm_1", **ANSWERS},
            ]
        )
        before = redcap.state.records(records=["4002"])
        redcap.state.clear_calls()

        result = check_batch([s_mine, s_staff, s_again], utcnow())
        assert len(redcap.calls()) == 1  # one export for the whole batch
        assert {s.id for s in result.cleared} == {s_mine.id, s_again.id}
        assert [s.id for s in result.conflicts] == [s_staff.id]
        _import(result.cleared)

        db.session.expire_all()
        staff_sub = db.session.get(Submission, s_staff.id)
        assert staff_sub.sync_status == "conflict"
        assert staff_sub.redcap_snapshot["values"]["fu_mmrc"] == "4"
        assert staff_sub.redcap_snapshot["complete"] == "2"
        assert redcap.state.records(records=["4002"]) == before  # REDCap unchanged
        assert redcap.state.value("4001", "fu_mmrc", "week_4_arm_1") == "2"
        rows = {r["column"]: r for r in comparison(staff_sub)}
        assert rows["fu_mmrc"] == {"column": "fu_mmrc", "ours": "2", "redcap": "4", "differs": True}
        assert db.session.query(AuditEntry).filter_by(action="submission.conflict").count() == 1

        # A conflict is not re-checked (or pushed) by later batches until a coordinator decides.
        redcap.state.clear_calls()
        again = check_batch(
            [db.session.get(Submission, s_staff.id), db.session.get(Submission, s_mine.id)], utcnow()
        )
        assert again.cleared == [] and len(again.skipped) == 2 and redcap.calls() == []


def test_pushed_submission_is_never_pushed_again_over_staff_edits(truth_app, redcap):
    app = truth_app()
    with app.app_context():
        participant = scheduled("4101")
        submission = submitted(participant)
        _import(check_batch([submission], utcnow()).cleared)
        redcap.state.seed_records(
            [{"record_id": "4101", "redcap_event_name": "week_4_arm_1", "fu_mmrc": "3"}]
        )
        submission.sync_status = "pending"  # e.g. a bug or an operator re-queueing it
        db.session.commit()
        result = check_batch([submission], utcnow())
        assert result.cleared == [] and result.skipped == [submission]
        assert redcap.state.value("4101", "fu_mmrc", "week_4_arm_1") == "3"


def test_import_anyway_rechecks_redcap_and_refuses_when_it_changed(truth_app, redcap):
    app = truth_app()
    with app.app_context():
        participant = scheduled("4201")
        submission = submitted(participant)
        redcap.state.seed_records([staff_questionnaire("4201", fu_mmrc="4")])
        check_batch([submission], utcnow())
        db.session.commit()
        shown = submission.redcap_snapshot["hash"]

        # Staff change REDCap again while the coordinator is looking at the comparison.
        redcap.state.seed_records(
            [{"record_id": "4201", "redcap_event_name": "week_4_arm_1", "fu_cough": "3"}]
        )
        with pytest.raises(ConflictChanged, match="changed since this page was shown"):
            import_anyway(submission, shown, actor="coord@example.org", now=utcnow())
        db.session.expire_all()
        submission = db.session.get(Submission, submission.id)
        assert submission.sync_status == "conflict"
        assert submission.redcap_snapshot["values"]["fu_cough"] == "3"
        assert db.session.query(ConflictDecision).count() == 0

        # Deciding on the values now shown works, and the push then imports over exactly those.
        import_anyway(submission, submission.redcap_snapshot["hash"], actor="coord@example.org", now=utcnow())
        assert submission.sync_status == "pending"
        result = check_batch([submission], utcnow())
        assert result.cleared == [submission]
        _import(result.cleared)
        assert redcap.state.value("4201", "fu_mmrc", "week_4_arm_1") == "2"
        assert db.session.query(AuditEntry).filter_by(action="submission.conflict_import").count() == 1


def test_import_anyway_requeues_due_now_and_keeps_the_attempts(truth_app, redcap):
    app = truth_app()
    with app.app_context():
        participant = scheduled("4251")
        submission = submitted(participant)
        submission.sync_attempts = 2  # deferred twice by REDCap outages before the conflict was found
        redcap.state.seed_records([staff_questionnaire("4251", fu_mmrc="4")])
        check_batch([submission], utcnow())
        db.session.commit()
        assert (submission.sync_status, submission.next_attempt_at) == ("conflict", None)

        now = utcnow()
        import_anyway(submission, submission.redcap_snapshot["hash"], actor="coord@example.org", now=now)
        db.session.expire_all()
        submission = db.session.get(Submission, submission.id)
        assert (submission.sync_status, submission.sync_attempts) == ("pending", 2)
        assert submission.next_attempt_at == now and submission.last_error is None
        assert submission.pushed_at is None


def test_import_decision_lapses_if_redcap_changes_before_the_push(truth_app, redcap):
    app = truth_app()
    with app.app_context():
        participant = scheduled("4301")
        submission = submitted(participant)
        redcap.state.seed_records([staff_questionnaire("4301", fu_mmrc="4")])
        check_batch([submission], utcnow())
        import_anyway(submission, submission.redcap_snapshot["hash"], actor="coord@example.org", now=utcnow())
        redcap.state.seed_records(
            [{"record_id": "4301", "redcap_event_name": "week_4_arm_1", "fu_mmrc": "0"}]
        )
        result = check_batch([submission], utcnow())
        assert result.conflicts == [submission] and submission.sync_status == "conflict"
        assert redcap.state.value("4301", "fu_mmrc", "week_4_arm_1") == "0"


def test_discard_keeps_redcap_and_is_audited(truth_app, redcap):
    app = truth_app()
    with app.app_context():
        participant = scheduled("4401")
        submission = submitted(participant)
        redcap.state.seed_records([staff_questionnaire("4401")])
        check_batch([submission], utcnow())
        discard(
            submission,
            submission.redcap_snapshot["hash"],
            actor="coord@example.org",
            now=utcnow(),
            note="clinic copy",
        )
        assert submission.sync_status == "discarded"
        assert check_batch([submission], utcnow()).skipped == [submission]
        entry = db.session.query(AuditEntry).filter_by(action="submission.conflict_discard").one()
        assert entry.actor == "coord@example.org" and entry.reason == "clinic copy"
        assert snapshot_hash(submission.redcap_snapshot) == submission.redcap_snapshot["hash"]


def test_push_pass_holds_staff_entered_visit_as_conflict(truth_app, redcap):
    """Through the bridge's real push pass: the clean one lands, the staff-entered one is held."""
    from app.tick import run_tick

    app = truth_app()
    with app.app_context():
        assert "metadata.error" not in run_tick(utcnow(), only=["metadata"])
        clean, staffs = scheduled("4501"), scheduled("4502")
        s_clean, s_staff = submitted(clean), submitted(staffs)
        redcap.state.seed_records([staff_questionnaire("4502", fu_mmrc="4", fu_comments="phone visit")])
        before = redcap.state.records(records=["4502"])
        redcap.state.clear_calls()
        summary = run_tick(utcnow(), only=["push"])
        assert not any(k.endswith(".error") for k in summary), summary
        db.session.expire_all()
        assert db.session.get(Submission, s_clean.id).sync_status == "pushed"
        held = db.session.get(Submission, s_staff.id)
        assert (
            held.sync_status == "conflict" and held.redcap_snapshot["values"]["fu_comments"] == "phone visit"
        )
        assert redcap.state.records(records=["4502"]) == before
        assert redcap.state.value("4501", "fu_mmrc", "week_4_arm_1") == "2"
        assert len([c for c in redcap.calls() if "fu_mmrc" in c.get("fields", [])]) == 1  # one check export
        assert len(redcap.calls("record", "import")) == 1  # only the clean one, in one batch

        # A second pass does not touch the conflict (nor re-import the pushed one).
        redcap.state.clear_calls()
        run_tick(utcnow(), only=["push"])
        assert redcap.calls("record", "import") == []
        assert redcap.state.records(records=["4502"]) == before


def test_check_refused_by_redcap_fails_the_record_instead_of_importing_blind(truth_app, redcap, monkeypatch):
    import app.redcap.conflicts as conflicts
    from app.tick import run_tick

    app = truth_app()
    with app.app_context():
        assert "metadata.error" not in run_tick(utcnow(), only=["metadata"])
        submission = submitted(scheduled("4601"))
        monkeypatch.setattr(conflicts, "questionnaire_fields", lambda: ["no_such_field"])
        summary = run_tick(utcnow(), only=["push"])
        assert "push.error" not in summary, summary
        db.session.expire_all()
        failed = db.session.get(Submission, submission.id)
        assert failed.sync_status == "failed" and "no_such_field" in failed.last_error  # REDCap's own text
        assert redcap.calls("record", "import") == []
        assert redcap.state.value("4601", "fu_mmrc", "week_4_arm_1") == ""


def test_one_record_refused_by_the_check_does_not_hold_the_others(truth_app, redcap):
    from app.tick import run_tick

    app = truth_app()
    with app.app_context():
        assert "metadata.error" not in run_tick(utcnow(), only=["metadata"])
        goods = [submitted(scheduled(rid)) for rid in ("4701", "4702", "4704", "4705")]
        bad_participant = scheduled("4703")
        bad = submitted(bad_participant)
        visit_of(bad_participant).event_name = "week_4_old_arm_1"  # an event REDCap no longer has
        db.session.commit()
        redcap.state.clear_calls()

        summary = run_tick(utcnow(), only=["push"])
        assert "push.error" not in summary, summary
        db.session.expire_all()
        for good in goods:
            assert db.session.get(Submission, good.id).sync_status == "pushed"
        for rid in ("4701", "4702", "4704", "4705"):
            assert redcap.state.value(rid, "fu_mmrc", "week_4_arm_1") == "2"
        failed = db.session.get(Submission, bad.id)
        assert failed.sync_status == "failed"
        assert "REDCap rejected this record" in failed.last_error and "week_4_old_arm_1" in failed.last_error
        assert redcap.state.records(records=["4703"]) == []

        # The next pass has nothing left to hold: no check export, no import, the bad record stays failed.
        redcap.state.clear_calls()
        run_tick(utcnow(), only=["push"])
        assert redcap.calls("record", "import") == []
        assert db.session.get(Submission, bad.id).sync_status == "failed"
