"""The local REDCap server, driven by the real PyCap client over HTTP on loopback.

Each test starts its own server on a free port; the fixtures stop it, even when an assert fails.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redcap
import requests

from devservers.redcap_api import DEV_TOKEN, create_redcap_app, demo_records, get_state
from devservers.redcap_project import METADATA_KEYS, ProjectDefinition, ProjectDefinitionError
from devservers.redcap_state import RedcapState
from devservers.runner import ServerHandle, serve_in_thread

STUDY = Path(__file__).resolve().parents[2] / "study"
BAD_TOKEN = "F" * 32


@dataclass
class RedcapServer:
    """A running local REDCap: its URL, its state, and PyCap clients for it."""

    handle: ServerHandle
    state: RedcapState

    @property
    def api_url(self) -> str:
        return f"{self.handle.url}/api/"

    def project(self, token: str = DEV_TOKEN, **request_kwargs) -> redcap.Project:
        return redcap.Project(self.api_url, token, **request_kwargs)

    def post(self, **data: str) -> requests.Response:
        """A raw API call, for the status codes and bodies PyCap hides."""
        return requests.post(self.api_url, data={"token": DEV_TOKEN, **data}, timeout=5)

    def control(self, payload: dict | None = None) -> dict:
        url = f"{self.handle.url}/_control"
        resp = (
            requests.post(url, json=payload, timeout=5)
            if payload is not None
            else requests.get(url, timeout=5)
        )
        resp.raise_for_status()
        return resp.json()


@pytest.fixture
def redcap_server_factory() -> Iterator[Callable[..., RedcapServer]]:
    """Start servers: `redcap_server_factory(project_dir, seed=False, rate_limit_per_minute=...)`."""
    started: list[RedcapServer] = []

    def start(project: Path | str = STUDY, *, seed: bool = True, **state_kwargs) -> RedcapServer:
        definition = ProjectDefinition.load(project)
        state = RedcapState(definition, DEV_TOKEN, **state_kwargs)
        if seed:
            state.seed_records(demo_records(STUDY / "demo_records.json"))
        server = RedcapServer(serve_in_thread(create_redcap_app(definition, state=state)), state)
        started.append(server)
        return server

    yield start
    for server in started:
        server.state.close()
        server.handle.stop()


@pytest.fixture
def redcap_server(redcap_server_factory) -> RedcapServer:
    """The trial's project with the fictitious demo participants at baseline."""
    return redcap_server_factory()


def redcap_error(call: Callable[..., object], *args: object, **kwargs: object) -> str:
    """Make a PyCap call that must fail and return REDCap's error text (PyCap wraps the JSON body)."""
    with pytest.raises(redcap.RedcapError) as excinfo:
        call(*args, **kwargs)
    body = excinfo.value.args[0]
    return body["error"] if isinstance(body, dict) else str(body)


def week4(record: str = "1001", **values: object) -> dict[str, object]:
    return {"record_id": record, "redcap_event_name": "week_4_arm_1", **values}


# ---------------------------------------------------------------- metadata and structure


def test_metadata_export_uses_redcap_keys_and_filters(redcap_server):
    proj = redcap_server.project()
    metadata = proj.export_metadata()
    assert [m["field_name"] for m in metadata][:3] == ["record_id", "enrol_date", "discharge_date"]
    assert all(tuple(m) == METADATA_KEYS for m in metadata)
    assert not any(m["field_name"].endswith("_complete") for m in metadata)
    mmrc = next(m for m in metadata if m["field_name"] == "fu_mmrc")
    assert mmrc["field_type"] == "radio" and mmrc["select_choices_or_calculations"].startswith("0, Grade 0")
    days = next(m for m in metadata if m["field_name"] == "fu_fever_days")
    assert (days["text_validation_min"], days["text_validation_max"]) == ("1", "60")
    assert days["branching_logic"] == "[fu_fever] = '1'"

    assert [m["field_name"] for m in proj.export_metadata(fields=["fu_ae"])] == ["fu_ae"]
    contact = proj.export_metadata(forms=["followup_contact"])
    assert {m["form_name"] for m in contact} == {"followup_contact"}
    assert len(contact) == 5  # visit status, invited at, reminders sent, red flag, mode
    assert redcap_error(proj.export_metadata, fields=["nope"]) == (
        "The following values in the parameter \"fields\" are not valid: 'nope'"
    )


def test_events_arms_mapping_instruments_and_project_info(redcap_server):
    proj = redcap_server.project()
    assert proj.is_longitudinal
    assert [e["unique_event_name"] for e in proj.export_events()] == [
        "baseline_arm_1",
        "week_4_arm_1",
        "month_6_arm_1",
    ]
    assert proj.export_arms() == [{"arm_num": 1, "name": "Arm 1"}]
    mapping = {(m["unique_event_name"], m["form"]) for m in proj.export_instrument_event_mappings()}
    assert mapping == {
        ("baseline_arm_1", "enrollment"),
        ("week_4_arm_1", "followup_questionnaire"),
        ("week_4_arm_1", "followup_contact"),
        ("month_6_arm_1", "followup_questionnaire"),
        ("month_6_arm_1", "followup_contact"),
    }
    assert [i["instrument_name"] for i in proj.export_instruments()] == [
        "enrollment",
        "followup_questionnaire",
        "followup_contact",
    ]
    info = proj.export_project_info()
    assert info["is_longitudinal"] == 1 and "NCT04346368" in info["project_title"]
    assert str(proj.export_version()) == "14.5.0"


def test_export_field_names_expand_checkboxes(redcap_server):
    names = redcap_server.project().export_field_names()
    ae = [n for n in names if n["original_field_name"] == "fu_ae"]
    assert [(n["choice_value"], n["export_field_name"]) for n in ae] == [
        (str(i), f"fu_ae___{i}") for i in range(1, 6)
    ]
    assert {
        "original_field_name": "followup_contact_complete",
        "choice_value": "",
        "export_field_name": "followup_contact_complete",
    } in names


# ---------------------------------------------------------------- export


def test_export_with_fields_events_records_and_filter_logic(redcap_server):
    proj = redcap_server.project()
    rows = proj.export_records(
        fields=["mobile_phone", "sms_consent"],
        events=["baseline_arm_1"],
        filter_logic="[sms_consent] = '1' AND ([study_status] = '1' or [study_status] = '4')",
    )
    assert [r["record_id"] for r in rows] == ["1001", "1002", "1004", "1006", "1007"]
    assert list(rows[0]) == ["record_id", "redcap_event_name", "mobile_phone", "sms_consent"]
    assert "randomization_group" not in rows[0]

    rows = proj.export_records(records=["1003", "1005"], fields=["study_status"])
    assert [(r["record_id"], r["study_status"]) for r in rows] == [("1003", "1"), ("1005", "2")]
    assert proj.export_records(filter_logic="[study_status] <> '1'", fields=["record_id"]) == [
        {"record_id": "1005", "redcap_event_name": "baseline_arm_1"}
    ]


def test_filter_logic_across_events_and_on_checkboxes(redcap_server):
    proj = redcap_server.project()
    proj.import_records(
        [week4("1001", fu_ae___2="1", fu_fever="1", fu_fever_days="2"), week4("1002", fu_fever="0")]
    )
    rows = proj.export_records(
        fields=["mobile_phone"], events=["baseline_arm_1"], filter_logic="[week_4_arm_1][fu_fever] = '1'"
    )
    assert [r["record_id"] for r in rows] == ["1001"]
    rows = proj.export_records(fields=["fu_ae"], filter_logic="[fu_ae(2)] = '1'")
    assert [(r["record_id"], r["redcap_event_name"]) for r in rows] == [("1001", "week_4_arm_1")]
    error = redcap_error(proj.export_records, filter_logic="[no_such_field] = '1'")
    assert error == 'The value of the parameter "filterLogic" is not valid'


def test_flat_export_shape_for_a_followup_event(redcap_server):
    proj = redcap_server.project()
    proj.import_records([week4(fu_cough="2", followup_questionnaire_complete="2")])
    [row] = proj.export_records(records=["1001"], forms=["followup_questionnaire"], events=["week_4_arm_1"])
    assert row["fu_cough"] == "2" and row["fu_fever"] == ""
    assert row["fu_ae___1"] == "0" and row["followup_questionnaire_complete"] == "2"
    [baseline] = proj.export_records(
        records=["1001"], fields=["fu_cough", "mobile_phone"], events=["baseline_arm_1"]
    )
    assert baseline["fu_cough"] == ""  # not designated for baseline: blank, as REDCap exports it


def test_unknown_field_or_event_on_export_is_a_400(redcap_server):
    assert redcap_server.post(content="record", format="json", **{"fields[0]": "nope"}).status_code == 400
    resp = redcap_server.post(content="record", format="json", **{"events[0]": "week_5_arm_1"})
    assert resp.status_code == 400
    assert resp.json() == {
        "error": "The following values in the parameter \"events\" are not valid: 'week_5_arm_1'"
    }


# ---------------------------------------------------------------- import


def test_import_returns_count_or_ids(redcap_server):
    proj = redcap_server.project()
    rows = [
        week4("1001", fu_cough=1),
        week4("1002", fu_cough=0),
        {**week4("1002"), "redcap_event_name": "month_6_arm_1", "fu_cough": 3},
    ]
    assert proj.import_records(rows) == {"count": 2}
    assert proj.import_records(rows, return_content="ids") == ["1001", "1002"]
    assert redcap_server.state.value("1002", "fu_cough", "month_6_arm_1") == "3"


def test_overwrite_normal_keeps_values_and_overwrite_clears_them(redcap_server):
    proj = redcap_server.project()
    proj.import_records([week4(fu_comments="feeling better", fu_spo2=97)])
    proj.import_records([week4(fu_comments="", fu_spo2="")])
    assert redcap_server.state.value("1001", "fu_comments", "week_4_arm_1") == "feeling better"
    proj.import_records([week4(fu_comments="", fu_spo2="")], overwrite="overwrite")
    assert redcap_server.state.value("1001", "fu_comments", "week_4_arm_1") == ""
    assert redcap_server.state.value("1001", "fu_spo2", "week_4_arm_1") == ""


def test_checkbox_columns_check_and_uncheck(redcap_server):
    proj = redcap_server.project()
    proj.import_records([week4(fu_ae___1="1", fu_ae___4="1")])
    [row] = proj.export_records(records=["1001"], fields=["fu_ae"], events=["week_4_arm_1"])
    assert [row[f"fu_ae___{i}"] for i in range(1, 6)] == ["1", "0", "0", "1", "0"]
    proj.import_records([week4(fu_ae___1="0")])
    [row] = proj.export_records(records=["1001"], fields=["fu_ae"], events=["week_4_arm_1"])
    assert [row[f"fu_ae___{i}"] for i in range(1, 6)] == ["0", "0", "0", "1", "0"]


REJECTIONS = [
    pytest.param(
        [week4(fu_mood="1")],
        "The following fields were not found in the project as real data fields",
        id="unknown-field",
    ),
    pytest.param([week4(fu_ae="1")], "The following fields were not found", id="checkbox-without-code"),
    pytest.param(
        [{**week4(), "redcap_event_name": "week_5_arm_1", "fu_cough": "1"}],
        "One or more of the event names you entered was not valid",
        id="bad-event",
    ),
    pytest.param(
        [{"record_id": "1001", "fu_cough": "1"}], "The record event name cannot be empty", id="no-event"
    ),
    pytest.param(
        [{"record_id": "1001", "redcap_event_name": "baseline_arm_1", "fu_cough": "1"}],
        "This field ('fu_cough') exists on an instrument that is not designated for the event named "
        "'Baseline (Arm 1: Arm 1)'. You are not allowed to import data for this field into this event.",
        id="form-not-designated",
    ),
    pytest.param(
        [week4(fu_cough="7")],
        '"1001","fu_cough","7","The value is not a valid category for fu_cough"',
        id="bad-radio-choice",
    ),
    pytest.param([week4(fu_fever="2")], "The value is not a valid category for fu_fever", id="bad-yesno"),
    pytest.param(
        [week4(fu_ae___2="yes")],
        'fu_ae___2 is a checkbox field and thus can only have a value of "1"',
        id="bad-checkbox-value",
    ),
    pytest.param(
        [week4(fu_fever="1", fu_fever_days="2.5")],
        "could not be validated because it does not follow the expected format",
        id="not-an-integer",
    ),
    pytest.param(
        [week4(fu_spo2="150")],
        "fu_spo2 should not be greater than the field maximum (100)",
        id="integer-above-force-minmax",
    ),
    pytest.param(
        [week4(fu_fever="1", fu_fever_days="0")],
        "fu_fever_days should not be less than the field minimum (1)",
        id="integer-below-force-minmax",
    ),
    pytest.param(
        [{"record_id": "1001", "redcap_event_name": "baseline_arm_1", "enrol_date": "2024-02-30"}],
        "does not follow the expected format",
        id="impossible-date",
    ),
    pytest.param(
        [{"record_id": "1001", "redcap_event_name": "baseline_arm_1", "discharge_date": "03/04/2024"}],
        "does not follow the expected format",
        id="date-not-ymd",
    ),
    pytest.param(
        [week4(fu_invited_at="2024-03-04 10:00")],
        "does not follow the expected format",
        id="datetime-without-seconds",
    ),
    pytest.param(
        [week4(fu_health_today="101")], "does not follow the expected format", id="slider-above-100"
    ),
    pytest.param(
        [week4(followup_questionnaire_complete="3")],
        "The value is not a valid category for followup_questionnaire_complete",
        id="bad-form-status",
    ),
    pytest.param([week4(fu_cough="1"), week4(fu_cough="2")], "occur more than once", id="duplicate-row"),
    pytest.param(
        [{"record_id": "", "redcap_event_name": "week_4_arm_1"}],
        "The record id, record_id, cannot be empty",
        id="empty-record-id",
    ),
]


@pytest.mark.parametrize(("rows", "message"), REJECTIONS)
def test_invalid_imports_are_rejected_whole_with_redcaps_text(redcap_server, rows, message):
    before = redcap_server.state.records()
    valid_first = [week4("1002", fu_cough="1", fu_comments="should not be written")]
    assert message in redcap_error(redcap_server.project().import_records, valid_first + rows)
    assert redcap_server.state.records() == before  # all or nothing


def test_rejected_import_is_http_400_with_json_error(redcap_server):
    resp = redcap_server.post(
        content="record", format="json", type="flat", data=json.dumps([week4(fu_cough="9")])
    )
    assert resp.status_code == 400
    assert resp.json() == {"error": '"1001","fu_cough","9","The value is not a valid category for fu_cough"'}


def test_out_of_range_without_force_minmax_is_accepted_with_a_warning(redcap_server):
    # REDCap only warns on soft range checks; fu_reminders_sent (0-10) has no @FORCE-MINMAX.
    assert redcap_server.project().import_records([week4(fu_reminders_sent="11")]) == {"count": 1}
    assert redcap_server.state.value("1001", "fu_reminders_sent", "week_4_arm_1") == "11"
    assert redcap_server.state.warnings == [
        {
            "record": "1001",
            "field_name": "fu_reminders_sent",
            "message": "fu_reminders_sent should not be greater than the field maximum (10)",
        }
    ]


def test_delete_records(redcap_server):
    proj = redcap_server.project()
    assert proj.delete_records(["1003"]) == 1
    assert "1003" not in {r["record_id"] for r in redcap_server.state.records()}
    assert "The following records do not exist: 9999" in redcap_error(proj.delete_records, ["9999"])


# ---------------------------------------------------------------- auth and protocol


def test_bad_token_is_403_through_pycap_and_raw(redcap_server):
    error = redcap_error(redcap_server.project(BAD_TOKEN).export_records)
    assert error == "You do not have permissions to use the API"
    resp = requests.post(
        redcap_server.api_url, data={"token": BAD_TOKEN, "content": "metadata", "format": "json"}, timeout=5
    )
    assert resp.status_code == 403
    assert resp.json() == {"error": "You do not have permissions to use the API"}
    no_format = requests.post(redcap_server.api_url, data={"content": "version"}, timeout=5)
    assert (
        no_format.status_code == 403
        and "<error>You do not have permissions to use the API</error>" in no_format.text
    )


def test_unknown_content_is_400(redcap_server):
    resp = redcap_server.post(content="surveyQueue", format="json")
    assert resp.status_code == 400
    assert resp.json() == {"error": 'The value of the parameter "content" is not valid'}


def test_import_rights_can_be_withheld(redcap_server_factory):
    server = redcap_server_factory(api_import=False)
    error = redcap_error(server.project().import_records, [week4(fu_cough="1")])
    assert error == "You do not have API Import/Update privileges"


# ---------------------------------------------------------------- faults, latency, rate


def test_latency_switch_over_http(redcap_server):
    proj = redcap_server.project()
    redcap_server.control({"latency_ms": 200})
    started = time.monotonic()
    proj.export_records(fields=["record_id"])
    assert time.monotonic() - started >= 0.2
    assert redcap_server.control({"reset": True})["latency_ms"] == 0


def test_500_fault_for_a_number_of_calls(redcap_server):
    redcap_server.control({"fail": "500", "count": 2})
    assert redcap_server.post(content="version").status_code == 500
    with pytest.raises(redcap.RedcapError):
        redcap_server.project().export_records()
    assert redcap_server.post(content="version").text == "14.5.0"
    assert redcap_server.control()["counters"]["outcome.fault:500"] == 2


def test_timeout_fault_hangs_past_the_client_timeout_then_recovers(redcap_server):
    redcap_server.state.fail("timeout", count=2, hang_s=0.6)
    proj = redcap_server.project(timeout=0.2)
    for _ in range(2):
        with pytest.raises(requests.exceptions.Timeout):
            proj.export_records(fields=["record_id"])
    assert len(proj.export_records(fields=["record_id"])) == 7


def test_ban_is_429_plain_text_until_reset(redcap_server):
    redcap_server.control({"fail": "ban"})
    resp = redcap_server.post(content="record", format="json")
    assert resp.status_code == 429
    assert re.fullmatch(
        r"Your IP address \(127\.0\.0\.1\) has been banned due to suspected abuse\.", resp.text
    )
    with pytest.raises(redcap.RedcapError):  # not JSON, so PyCap's decoding fails
        redcap_server.project().export_records()
    redcap_server.control({"reset": True})
    assert redcap_server.post(content="version").status_code == 200


def test_rate_limit_bans_after_the_threshold(redcap_server_factory):
    server = redcap_server_factory(seed=False, rate_limit_per_minute=3)
    statuses = [server.post(content="version").status_code for _ in range(5)]
    assert statuses == [200, 200, 200, 200, 429]  # the call that crosses the line is still served


def test_not_json_fault_returns_an_html_page(redcap_server):
    redcap_server.control({"fail": "not_json"})
    resp = redcap_server.post(content="metadata", format="json")
    assert resp.status_code == 200 and resp.text.startswith("<html>")
    redcap_server.state.fail("not_json", count=1)
    with pytest.raises(redcap.RedcapError):
        redcap_server.project().export_metadata()


def test_call_log_has_names_and_times_but_no_token_or_values(redcap_server):
    proj = redcap_server.project()
    proj.import_records([week4(fu_comments="private words", fu_cough="1")])
    proj.export_records(fields=["mobile_phone"], filter_logic="[mobile_phone] = '13800138001'")
    logged = json.dumps(redcap_server.state.calls)
    for secret in (DEV_TOKEN, "private words", "13800138001"):
        assert secret not in logged
    record_calls = [c for c in redcap_server.state.calls if c["content"] == "record"]
    assert [(c["action"], c["record_count"]) for c in record_calls] == [("import", 1), ("export", 1)]
    assert record_calls[1]["fields"] == ["mobile_phone", "record_id"] and record_calls[1]["has_filter_logic"]
    assert 1 <= redcap_server.state.max_calls_in_window(1.0) <= len(redcap_server.state.calls)


# ---------------------------------------------------------------- other projects and the study files


def _write_classic_project(root: Path) -> None:
    (root / "data_dictionary.csv").write_text(
        "Variable / Field Name,Form Name,Section Header,Field Type,Field Label,"
        '"Choices, Calculations, OR Slider Labels",Field Note,Text Validation Type OR Show Slider Number,'
        "Text Validation Min,Text Validation Max,Identifier?,Branching Logic (Show field only if...),"
        "Required Field?,Custom Alignment,Question Number (surveys only),Matrix Group Name,Matrix Ranking?,"
        "Field Annotation\n"
        "study_id,screening,,text,Study ID,,,,,,,,,,,,,\n"
        "age,screening,,text,Age,,,integer,18,75,,,y,,,,,\n"
        'colour,screening,,dropdown,Colour,"r, Red | g, Green",,,,,,,,,,,,\n'
        "notes_intro,screening,,descriptive,Read this,,,,,,,,,,,,,\n"
        'symptoms,screening,,checkbox,Symptoms,"a, Ache | b, Burn",,,,,,,,,,,,\n',
        encoding="utf-8",
    )


def test_loads_a_different_classic_project_from_a_directory(redcap_server_factory, tmp_path):
    _write_classic_project(tmp_path)
    server = redcap_server_factory(tmp_path, seed=False)
    proj = server.project()
    assert not proj.is_longitudinal and proj.def_field == "study_id"
    assert proj.import_records([{"study_id": "S-1", "age": 40, "colour": "g", "symptoms___b": 1}]) == {
        "count": 1
    }
    assert proj.export_records() == [
        {
            "study_id": "S-1",
            "age": "40",
            "colour": "g",
            "symptoms___a": "0",
            "symptoms___b": "1",
            "screening_complete": "0",
        }
    ]
    error = redcap_error(proj.import_records, [{"study_id": "S-2", "colour": "blue"}])
    assert error == '"S-2","colour","blue","The value is not a valid category for colour"'
    resp = server.post(content="formEventMapping", format="json")
    assert resp.json() == {"error": "You cannot export form/event mappings for classic projects"}


def test_loads_events_and_mapping_in_api_json_shape(redcap_server_factory, tmp_path):
    _write_classic_project(tmp_path)
    (tmp_path / "events.json").write_text(
        json.dumps(
            [
                {"event_name": "Screen", "arm_num": 1, "unique_event_name": "screen_arm_1"},
                {"event_name": "Day 7", "arm_num": 1, "unique_event_name": "day_7_arm_1", "days_offset": 7},
            ]
        )
    )
    (tmp_path / "instrument_event_mapping.json").write_text(
        json.dumps([{"arm_num": 1, "unique_event_name": "screen_arm_1", "form": "screening"}])
    )
    proj = redcap_server_factory(tmp_path, seed=False).project()
    assert proj.is_longitudinal
    error = redcap_error(
        proj.import_records, [{"study_id": "S-1", "redcap_event_name": "day_7_arm_1", "age": 30}]
    )
    assert "not designated for the event named 'Day 7 (Arm 1: Arm 1)'" in error


def test_invalid_dictionaries_are_refused(tmp_path):
    _write_classic_project(tmp_path)
    text = (tmp_path / "data_dictionary.csv").read_text()
    (tmp_path / "data_dictionary.csv").write_text(text.replace("dropdown,Colour", "picker,Colour"))
    with pytest.raises(ProjectDefinitionError, match="unknown field type"):
        ProjectDefinition.load(tmp_path)


def test_study_translations_cover_the_questionnaire():
    project = ProjectDefinition.load(STUDY)
    zh = json.loads((STUDY / "translations_zh.json").read_text("utf-8"))
    for field in project.form_fields("followup_questionnaire"):
        assert zh[field.name]["label"], field.name
        if field.choices:
            assert set(zh[field.name]["choices"]) == set(field.choices), field.name
        if field.row["section_header"]:
            assert zh[field.name]["section_header"], field.name
        if field.row["field_note"]:
            assert zh[field.name]["note"], field.name


def test_demo_records_are_fictitious_and_dated_relative_to_today():
    import datetime as dt

    rows = demo_records(STUDY / "demo_records.json", today=dt.date(2025, 1, 31))
    assert rows[0]["discharge_date"] == "2025-01-05" and rows[0]["enrol_date"] == "2024-12-22"
    for row in rows:
        assert re.fullmatch(r"13800138\d{3}|\+120255501\d\d|1380013800", row["mobile_phone"]), row
    assert {r["sms_consent"] for r in rows} == {"0", "1"} and "2" in {r["study_status"] for r in rows}
    assert {r["preferred_language"] for r in rows} == {"1", "2"}


def test_app_factory_loads_a_directory_and_starts_empty():
    app = create_redcap_app(STUDY)
    assert get_state(app).records() == []
    resp = app.test_client().get("/_control")
    assert resp.json["records"] == 0 and resp.json["fault"] is None


def test_csv_eav_and_xml_error_formats(redcap_server):
    csv_body = redcap_server.post(
        content="record",
        format="csv",
        **{"records[0]": "1001", "fields[0]": "sms_consent", "fields[1]": "record_id"},
    ).text
    assert csv_body == "record_id,redcap_event_name,sms_consent\n1001,baseline_arm_1,1\n"
    eav = redcap_server.post(
        content="record", format="json", type="eav", **{"records[0]": "1001", "fields[0]": "sms_consent"}
    ).json()
    assert eav == [
        {"record": "1001", "redcap_event_name": "baseline_arm_1", "field_name": "sms_consent", "value": "1"}
    ]
    imported = redcap_server.post(
        content="record",
        format="csv",
        returnContent="ids",
        data="record_id,redcap_event_name,fu_cough\n1001,week_4_arm_1,2\n",
    )
    assert imported.text == "id\n1001"
    xml_error = redcap_server.post(content="record", format="xml", **{"fields[0]": "bogus"})
    assert xml_error.status_code == 400 and "<error>The following values in the parameter" in xml_error.text
