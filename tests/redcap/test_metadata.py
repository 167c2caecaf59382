"""Metadata refresh against the local REDCap: versions, another trial's instrument, bad metadata and config."""

from __future__ import annotations

import json

from sqlalchemy import func, select

from app.extensions import db
from app.models import InstrumentVersion, SystemState
from app.questionnaire.store import current_definition
from devservers.redcap_api import DEV_TOKEN
from tests.redcap.conftest import start_server
from tests.redcap.projects import WELLBEING_SETTINGS, study_variant, wellbeing_project


def _versions(instrument: str = "followup_questionnaire") -> int:
    return db.session.scalar(
        select(func.count()).select_from(InstrumentVersion).where(InstrumentVersion.instrument == instrument)
    )


def test_refresh_stores_the_questionnaire_and_the_contact_fields(redcap_server):
    result = redcap_server.cli("redcap", "refresh-metadata")
    assert result.exit_code == 0, result.output
    assert "followup_questionnaire new version stored" in result.output
    definition = current_definition("followup_questionnaire")
    assert definition is not None
    names = [f.name for f in definition.data_fields]
    assert names[:3] == ["fu_fever", "fu_fever_days", "fu_mmrc"] and "fu_ae" in names
    contact = db.session.get(SystemState, "redcap.contact_fields").value
    assert contact == {
        "fu_visit_status": "",
        "fu_invited_at": "datetime_seconds_ymd",
        "fu_reminders_sent": "integer",
        "fu_red_flag": "",
        "fu_mode": "",
    }
    again = redcap_server.cli("redcap", "refresh-metadata")
    assert again.exit_code == 0 and "unchanged" in again.output and _versions() == 1
    # Only the two service instruments' metadata was asked for, never the enrollment form.
    [*_, last] = redcap_server.calls("metadata")
    assert last["forms"] == ["followup_questionnaire", "followup_contact"]
    assert "randomization_group" not in json.dumps(redcap_server.state.calls)


def test_a_different_trials_instrument_is_loaded_without_code_changes(redcap_env_factory, tmp_path):
    server = redcap_env_factory(wellbeing_project(tmp_path / "wellbeing"), **WELLBEING_SETTINGS)
    result = server.cli("redcap", "refresh-metadata")
    assert result.exit_code == 0, result.output
    definition = current_definition("wellbeing_check")
    assert [f.name for f in definition.data_fields][:3] == ["wb_visit_date", "wb_mobility", "wb_mobility_aid"]
    assert definition.field("wb_support").is_checkbox
    assert current_definition("followup_questionnaire") is None
    contact = db.session.get(SystemState, "redcap.contact_fields").value
    assert contact["vl_invited"] == "datetime_ymd"


def test_a_changed_label_or_added_field_becomes_a_new_version(redcap_server, tmp_path):
    assert redcap_server.cli("redcap", "refresh-metadata").exit_code == 0
    first = current_definition("followup_questionnaire")

    def edit(rows):
        for row in rows:
            if row["field_name"] == "fu_cough":
                row["field_label"] = "How bad was your cough this week?"
        extra = dict(rows[-1], field_name="fu_sleep", form_name="followup_questionnaire", field_type="yesno")
        extra.update(field_label="Do you sleep well?", text_validation_type_or_show_slider_number="")
        index = max(i for i, r in enumerate(rows) if r["form_name"] == "followup_questionnaire")
        return [*rows[: index + 1], extra, *rows[index + 1 :]]

    handle, state = start_server(study_variant(tmp_path / "v2", edit))
    try:
        redcap_server.app.config["REDCAP_API_URL"] = f"{handle.url}/api/"
        result = redcap_server.cli("redcap", "refresh-metadata")
        assert result.exit_code == 0, result.output
        assert "new version stored" in result.output
    finally:
        state.close()
        handle.stop()
    second = current_definition("followup_questionnaire")
    assert second.version_hash != first.version_hash
    assert second.field("fu_cough").label == "How bad was your cough this week?"
    assert second.field("fu_sleep") is not None and _versions() == 2


def test_unsupported_metadata_names_the_field_and_keeps_the_last_good_version(redcap_server, tmp_path):
    assert redcap_server.cli("redcap", "refresh-metadata").exit_code == 0
    good = current_definition("followup_questionnaire").version_hash

    def edit(rows):
        for row in rows:
            if row["field_name"] == "fu_hosp_days":
                row["field_type"], row["select_choices_or_calculations"] = "calc", "[fu_readmitted] * 2"
                row["text_validation_type_or_show_slider_number"] = ""
                row["text_validation_min"] = row["text_validation_max"] = row["field_annotation"] = ""
        return rows

    handle, state = start_server(study_variant(tmp_path / "bad", edit))
    try:
        redcap_server.app.config["REDCAP_API_URL"] = f"{handle.url}/api/"
        result = redcap_server.cli("redcap", "refresh-metadata")
    finally:
        state.close()
        handle.stop()
    assert result.exit_code != 0
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and "fu_hosp_days" in lines[0] and "last good version stays in use" in lines[0]
    assert current_definition("followup_questionnaire").version_hash == good and _versions() == 1


def test_unknown_event_in_configuration_is_a_clear_message(redcap_server):
    redcap_server.rebuild(REDCAP_ENROLLMENT_EVENT="intake_arm_1")
    result = redcap_server.cli("redcap", "refresh-metadata")
    assert result.exit_code != 0
    assert "REDCAP_ENROLLMENT_EVENT: event 'intake_arm_1' does not exist in REDCap" in result.output
    assert "baseline_arm_1, week_4_arm_1, month_6_arm_1" in result.output
    assert current_definition("followup_questionnaire") is None
    # The roster sync names the setting's value too (REDCap's own error text).
    sync = redcap_server.cli("roster", "sync")
    assert sync.exit_code != 0 and "intake_arm_1" in sync.output

    plan = json.dumps([{"key": "week_4", "event": "week_5_arm_1", "target_day": 28, "window": [25, 35]}])
    redcap_server.rebuild(VISIT_PLAN=plan)
    result = redcap_server.cli("redcap", "refresh-metadata")
    assert (
        result.exit_code != 0
        and "VISIT_PLAN visit 'week_4': event 'week_5_arm_1' does not exist" in result.output
    )


def test_instrument_not_designated_for_a_visit_event_is_refused(redcap_server):
    redcap_server.rebuild(REDCAP_QUESTIONNAIRE_INSTRUMENT="enrollment")
    result = redcap_server.cli("redcap", "refresh-metadata")
    assert result.exit_code != 0
    assert "instrument 'enrollment' is not designated for event 'week_4_arm_1'" in result.output


def test_answer_that_is_not_json_and_bad_token_are_clear_and_store_nothing(redcap_server):
    redcap_server.state.fail("not_json", count=1)
    result = redcap_server.cli("redcap", "refresh-metadata")
    assert result.exit_code != 0 and "REDCap unavailable" in result.output and "not JSON" in result.output
    assert db.session.get(SystemState, "redcap.last_error_at") is not None
    bad_token = "F" * 32
    redcap_server.rebuild(REDCAP_API_TOKEN=bad_token)
    result = redcap_server.cli("redcap", "refresh-metadata")
    assert result.exit_code != 0 and "You do not have permissions to use the API" in result.output
    assert (
        "REDCAP_API_TOKEN" in result.output
        and bad_token not in result.output
        and DEV_TOKEN not in result.output
    )
    redcap_server.rebuild(REDCAP_API_TOKEN="not-a-token-but-a-secret")
    result = redcap_server.cli("redcap", "refresh-metadata")
    assert result.exit_code != 0 and "REDCAP_API_TOKEN: expected 32" in result.output
    assert "not-a-token-but-a-secret" not in result.output
    assert _versions() == 0


def test_a_classic_project_without_events_works_end_to_end(redcap_env_factory, tmp_path):
    """No events at all: the roster, the refresh and the push leave events out of every call."""
    from datetime import date, timedelta

    from app.models import Participant, Submission, utcnow
    from app.redcap.push.run import push_pending
    from app.redcap.roster import sync_roster
    from tests.redcap.projects import wellbeing_project

    root = wellbeing_project(tmp_path / "classic")
    for name in ("events.json", "instrument_event_mapping.json"):
        (root / name).unlink()
    server = redcap_env_factory(root, **WELLBEING_SETTINGS)
    discharge = (date.today() - timedelta(days=6)).isoformat()
    server.state.seed_records([{"study_id": "W-1", "reg_date": discharge, "reg_site": "A1"}])
    assert server.cli("redcap", "refresh-metadata").exit_code == 0
    report = sync_roster(utcnow())
    assert report.created == 1
    participant = db.session.scalar(select(Participant))
    visit = next(v for v in participant.visits if v.visit_key == "day_7")
    db.session.add(
        Submission(visit_id=visit.id, answers={"wb_mobility": "1", "wb_support___1": "1"}, red_flag=True)
    )
    db.session.commit()
    assert push_pending(utcnow()).pushed == 1
    assert server.state.value("W-1", "wb_mobility", "") == "1"
    assert server.state.value("W-1", "vl_flag", "") == "1"
    records = [c for c in server.state.calls if c["content"] == "record"]
    ours = [c for c in records if c["action"] == "import" or set(c["fields"]) <= {"study_id", "reg_date"}]
    assert len(ours) == 3 and all(not c["events"] for c in ours)  # ids, roster chunk, import
