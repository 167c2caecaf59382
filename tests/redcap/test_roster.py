"""Roster sync against the local REDCap server, through the real PyCap client over HTTP."""

from __future__ import annotations

import json
from datetime import date, timedelta

from sqlalchemy import func, select

from app.extensions import db
from app.models import AuditEntry, OutboundMessage, Participant, Visit, utcnow
from app.models.redcap_sync import RedcapStatusPush
from app.redcap.roster import RowSkipped, normalize_phone, parse_row, roster_fields, sync_roster
from tests.redcap.conftest import baseline_row

TODAY = date.today()


def _days_ago(n: int) -> str:
    return (TODAY - timedelta(days=n)).isoformat()


def _participant(record: str) -> Participant | None:
    return db.session.scalar(select(Participant).where(Participant.record_id == record))


def _count(model) -> int:
    return db.session.scalar(select(func.count()).select_from(model))


def _seed_basic(server) -> None:
    server.state.seed_records(
        [
            baseline_row("2001", _days_ago(26), phone="13800138001", language="2"),
            baseline_row("2002", _days_ago(30), phone="+15550123", language="1"),  # not a real number
            baseline_row("2003", _days_ago(20), phone="13800138003", consent="0"),
            baseline_row("2004", _days_ago(10), phone=""),
            baseline_row("2005", _days_ago(40), phone="13800138005", status="2"),
        ]
    )


def test_sync_creates_participants_with_normalized_phones_consent_and_visits(redcap_server):
    _seed_basic(redcap_server)
    result = redcap_server.cli("roster", "sync")
    assert result.exit_code == 0, result.output
    assert "created 5" in result.output and "updated 0" in result.output
    assert "13800138" not in result.output  # no phone numbers in the output

    ok = _participant("2001")
    assert (ok.phone_e164, ok.phone_status, ok.language, ok.sms_consent) == (
        "+8613800138001",
        "ok",
        "zh",
        True,
    )
    assert ok.timezone == "Asia/Shanghai" and ok.anchor_date == TODAY - timedelta(days=26)
    assert ok.can_receive_sms and ok.roster_problem is None
    assert sorted(v.visit_key for v in ok.visits) == ["month_6", "week_4"]
    assert {v.event_name for v in ok.visits} == {"week_4_arm_1", "month_6_arm_1"}

    invalid = _participant("2002")
    assert invalid.phone_status == "invalid" and invalid.phone_e164 is None
    assert "mobile number" in invalid.phone_error and invalid.sms_block_reason() == "phone invalid"
    assert "mobile number" in invalid.roster_problem

    no_consent = _participant("2003")
    assert no_consent.sms_block_reason() == "no SMS consent" and no_consent.phone_status == "ok"
    assert _participant("2004").phone_status == "missing"
    withdrawn = _participant("2005")
    assert withdrawn.status == "withdrawn" and withdrawn.visits == []  # no visits for the withdrawn


def _snapshot() -> dict:
    """Everything the roster sync could write, except the freshness stamp (roster_synced_at, updated_at)
    that the issue-8 hook sets on every sync so the send-time check knows REDCap was just re-read."""
    people = {
        p.record_id: (p.roster_hash, p.phone_e164, p.phone_status, p.status, p.sms_consent, p.anchor_date)
        for p in db.session.scalars(select(Participant))
    }
    visits = [
        (v.id, v.status, v.opens_at, v.schedule_version, v.updated_at)
        for v in db.session.scalars(select(Visit))
    ]
    return {"people": people, "visits": visits, "audit": _count(AuditEntry)}


def test_rerun_with_redcap_unchanged_writes_nothing(redcap_server):
    _seed_basic(redcap_server)
    first = sync_roster(utcnow())
    assert first.created == 5
    before = _snapshot()
    db.session.expire_all()
    second = sync_roster(utcnow())
    assert (second.created, second.updated, second.unchanged) == (0, 0, 5)
    db.session.expire_all()
    assert _snapshot() == before
    result = redcap_server.cli("roster", "sync")
    assert "created 0; updated 0; unchanged 5; skipped 0" in result.output
    db.session.expire_all()
    assert _snapshot() == before


def test_withdrawal_in_redcap_cancels_visits_and_pending_messages_at_once(redcap_server):
    redcap_server.state.seed_records(
        [baseline_row("2101", _days_ago(26)), baseline_row("2102", _days_ago(26))]
    )
    sync_roster(utcnow())
    p = _participant("2101")
    week4 = next(v for v in p.visits if v.visit_key == "week_4")
    week4.status = "open"
    db.session.add(
        OutboundMessage(
            dedupe_key=f"visit:{week4.id}:r0",
            participant_id=p.id,
            visit_id=week4.id,
            slot="r0",
            to_e164=p.phone_e164,
            status="pending",
            due_at=utcnow() + timedelta(minutes=5),
        )
    )
    db.session.commit()

    redcap_server.state.seed_records([{**baseline_row("2101", _days_ago(26)), "study_status": "2"}])
    report = sync_roster(utcnow())
    assert (report.updated, report.unchanged, report.cancelled_visits) == (1, 1, 2)
    db.session.expire_all()
    p = _participant("2101")
    assert p.status == "withdrawn" and not p.can_receive_sms
    assert {v.status for v in p.visits} == {"cancelled"}
    assert db.session.scalar(select(OutboundMessage.status)) == "cancelled"
    actions = set(db.session.scalars(select(AuditEntry.action).where(AuditEntry.participant_id == p.id)))
    assert {"visit.cancelled", "participant.roster_updated"} <= actions
    # The withdrawal is queued for REDCap's contact form of each cancelled visit.
    assert {r.status for r in db.session.scalars(select(RedcapStatusPush))} == {"withdrawn"}
    assert _participant("2102").status == "active"


def test_deceased_and_lost_also_end_follow_up(redcap_server):
    redcap_server.state.seed_records(
        [baseline_row("2201", _days_ago(26)), baseline_row("2202", _days_ago(26))]
    )
    sync_roster(utcnow())
    redcap_server.state.seed_records(
        [
            {**baseline_row("2201", _days_ago(26)), "study_status": "3"},
            {**baseline_row("2202", _days_ago(26)), "study_status": "4"},
        ]
    )
    sync_roster(utcnow())
    db.session.expire_all()
    for record, status in (("2201", "deceased"), ("2202", "lost")):
        p = _participant(record)
        assert p.status == status and {v.status for v in p.visits} == {"cancelled"}


def test_bad_rows_are_reported_with_record_id_and_the_rest_go_on(redcap_server):
    redcap_server.state.seed_records(
        [
            baseline_row("2301", _days_ago(26)),
            baseline_row("2302", (TODAY + timedelta(days=5)).isoformat()),
            baseline_row("2303", _days_ago(800)),
            {**baseline_row("2304", _days_ago(26)), "discharge_date": ""},
        ]
    )
    result = redcap_server.cli("roster", "sync")
    assert result.exit_code == 0, result.output
    assert "record 2302: discharge date" in result.output and "in the future" in result.output
    assert "record 2303: discharge date" in result.output and "two years" in result.output
    assert "record 2304: discharge date is missing" in result.output
    assert "created 1" in result.output and "skipped 3" in result.output
    assert [p.record_id for p in db.session.scalars(select(Participant))] == ["2301"]


def test_a_row_without_record_id_is_skipped_by_position():
    fields = {"record_id": "record_id", "discharge_date": "discharge_date"}
    config = {
        "REDCAP_STATUS_CODES": {"1": "active"},
        "REDCAP_LANGUAGE_CODES": {"1": "en"},
        "DEFAULT_PHONE_REGION": "CN",
    }
    try:
        parse_row({"record_id": " ", "discharge_date": _days_ago(3)}, fields, config, TODAY, "x", 7)
    except RowSkipped as exc:
        assert str(exc) == "row 7: no record_id"
    else:  # pragma: no cover
        raise AssertionError("a row without record_id must be skipped")


def test_phone_normalization_rules():
    assert normalize_phone("138 0013 8042", "CN") == ("+8613800138042", "ok", None)
    assert normalize_phone("+86 138-0013-8042", "US") == ("+8613800138042", "ok", None)
    assert normalize_phone("", "CN")[1] == "missing"
    assert normalize_phone("call me", "CN")[1] == "invalid"
    assert normalize_phone("1380013800", "CN")[1] == "invalid"


def test_unusable_phone_is_kept_until_redcap_changes_the_number(redcap_server):
    redcap_server.state.seed_records([baseline_row("2401", _days_ago(26), phone="13800138041")])
    sync_roster(utcnow())
    p = _participant("2401")
    p.phone_status, p.phone_error = "unusable", "SMS provider: unreachable number"
    db.session.commit()
    redcap_server.state.seed_records(
        [{**baseline_row("2401", _days_ago(26), phone="13800138041"), "sms_consent": "0"}]
    )
    sync_roster(utcnow())
    db.session.expire_all()
    assert _participant("2401").phone_status == "unusable"  # same number: the SMS finding stands
    redcap_server.state.seed_records([baseline_row("2401", _days_ago(26), phone="13800138042")])
    sync_roster(utcnow())
    db.session.expire_all()
    p = _participant("2401")
    assert (p.phone_status, p.phone_e164) == ("ok", "+8613800138042")


def test_randomization_group_is_never_requested(redcap_server):
    _seed_basic(redcap_server)
    redcap_server.cli("roster", "sync")
    redcap_server.cli("redcap", "refresh-metadata")
    sync_roster(utcnow(), chunk_size=2)
    calls = redcap_server.state.calls
    assert calls, "the sync must have called REDCap"
    assert "randomization_group" not in json.dumps(calls)
    record_exports = redcap_server.calls("record", "export")
    assert all(c["fields"] for c in record_exports)
    roster = set(roster_fields(redcap_server.app.config).values())
    roster_exports = [c for c in record_exports if set(c["fields"]) <= roster]
    assert roster_exports and all(c["events"] == ["baseline_arm_1"] for c in roster_exports)


def test_large_roster_is_exported_in_record_chunks(redcap_server):
    redcap_server.state.seed_records([baseline_row(str(3000 + i), _days_ago(20)) for i in range(12)])
    redcap_server.state.clear_calls()
    seen: list[int] = []
    report = sync_roster(utcnow(), chunk_size=5, progress=seen.append)
    assert report.created == 12 and seen == [5, 5, 2]
    roster = set(roster_fields(redcap_server.app.config).values())
    exports = [c for c in redcap_server.calls("record", "export") if set(c["fields"]) <= roster]
    # one call for the ids (record id only), then one call per chunk of at most 5 records
    assert exports[0]["fields"] == ["record_id"] and exports[0]["records_requested"] == 0
    assert [c["records_requested"] for c in exports[1:]] == [5, 5, 2]
    assert all(c["events"] == ["baseline_arm_1"] for c in exports)


def test_empty_roster_is_reported_and_deletes_nothing(redcap_server):
    redcap_server.state.seed_records([baseline_row("2501", _days_ago(26))])
    sync_roster(utcnow())
    redcap_server.state.clear_records()
    result = redcap_server.cli("roster", "sync")
    assert result.exit_code == 0, result.output
    assert "empty roster" in result.output and "nothing was created, changed or deleted" in result.output
    assert _participant("2501") is not None and len(_participant("2501").visits) == 2


def test_participant_missing_from_redcap_is_kept_and_flagged(redcap_server):
    redcap_server.state.seed_records(
        [baseline_row("2601", _days_ago(26)), baseline_row("2602", _days_ago(26))]
    )
    sync_roster(utcnow())
    redcap_server.state.project  # noqa: B018 (the project stays; one record goes)
    redcap_server.state.clear_records()
    redcap_server.state.seed_records([baseline_row("2601", _days_ago(26))])
    result = redcap_server.cli("roster", "sync")
    assert "not in REDCap (kept, flagged for coordinators): 2602" in result.output
    gone = _participant("2602")
    assert gone is not None and "not found in REDCap" in gone.roster_problem


def test_discharge_date_change_reschedules_visits(redcap_server):
    redcap_server.state.seed_records([baseline_row("2701", _days_ago(10))])
    sync_roster(utcnow())
    before = {v.visit_key: v.target_date for v in _participant("2701").visits}
    redcap_server.state.seed_records([baseline_row("2701", _days_ago(12))])
    report = sync_roster(utcnow())
    db.session.expire_all()
    after = {v.visit_key: v.target_date for v in _participant("2701").visits}
    assert report.updated == 1
    assert after["week_4"] == before["week_4"] - timedelta(days=2)


def test_unreachable_redcap_fails_with_one_line_and_changes_nothing(redcap_server):
    redcap_server.state.seed_records([baseline_row("2801", _days_ago(10))])
    redcap_server.state.fail("500", count=None)
    result = redcap_server.cli("roster", "sync")
    assert result.exit_code != 0
    assert "REDCap unavailable" in result.output and "HTTP 500" in result.output
    assert _count(Participant) == 0
    redcap_server.state.reset()
    redcap_server.state.fail("not_json", count=1)
    result = redcap_server.cli("roster", "sync")
    assert result.exit_code != 0 and "not JSON" in result.output
