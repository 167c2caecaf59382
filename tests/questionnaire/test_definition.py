"""Parsing REDCap metadata: every supported type from two different instruments, and every refusal."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.questionnaire.definition import Choice, MetadataError
from app.questionnaire.metadata import metadata_hash, parse_metadata
from tests.questionnaire.helpers import TRIAL, WELLBEING, row, trial, trial_rows, wellbeing, wellbeing_rows


def test_trial_questionnaire_is_picked_from_the_whole_project_in_order():
    inst = trial()
    names = [f.name for f in inst.fields]
    assert names[0] == "fu_fever" and names[-1] == "fu_comments"
    assert all(f.form == TRIAL for f in inst.fields)
    assert "record_id" not in names and "fu_visit_status" not in names


def test_only_the_instruments_rows_give_the_same_definition_and_hash():
    own = [r for r in trial_rows() if r["form_name"] == TRIAL]
    assert parse_metadata(own, TRIAL) == trial()
    assert parse_metadata(own, TRIAL).version_hash == trial().version_hash


def test_trial_field_types():
    inst = trial()
    fever = inst.field("fu_fever")
    assert fever.type == "yesno" and fever.choices == (Choice("1", "Yes"), Choice("0", "No"))
    assert fever.required and fever.section_header == "Symptoms since your last visit"
    days = inst.field("fu_fever_days")
    assert (days.validation, days.min, days.max, days.input_kind) == ("integer", "1", "60", "integer")
    assert days.branching == "[fu_fever] = '1'" and days.logic is not None
    mmrc = inst.field("fu_mmrc")
    assert mmrc.choice_codes == ("0", "1", "2", "3", "4")
    # labels keep their commas: only the first comma separates code and label
    assert mmrc.choice_label("2").startswith("Grade 2: On level ground, I walk slower")
    assert inst.field("fu_spo2").required is False
    ae = inst.field("fu_ae")
    assert ae.is_checkbox and ae.columns == tuple(f"fu_ae___{i}" for i in range(1, 6))
    slider = inst.field("fu_health_today")
    assert (
        slider.slider_labels == ("Worst", "", "Best") and slider.bounds == ("0", "100") and slider.show_number
    )
    assert inst.field("fu_comments").input_kind == "textarea"
    assert inst.field("nope") is None


def test_columns_expand_checkboxes_and_end_with_form_status():
    cols = trial().columns()
    assert cols[-1] == "followup_questionnaire_complete"
    assert "fu_ae" not in cols and "fu_ae___3" in cols
    assert len(cols) == len(set(cols))
    assert trial().column_field("fu_ae___3").name == "fu_ae"


def test_second_instrument_types_and_validations():
    inst = wellbeing()
    assert inst.fields[0].name == "wb_intro"
    intro = inst.field("wb_intro")
    assert intro.is_descriptive and intro.columns == () and intro not in inst.data_fields
    assert inst.field("wb_visit_date").input_kind == "date" and inst.field("wb_visit_date").max == "today"
    assert inst.field("wb_mobility").input_kind == "select"
    assert (
        inst.field("wb_mobility").choice_label("3") == "I have moderate problems, some days, in walking about"
    )
    aid = inst.field("wb_mobility_aid")
    assert aid.choice_codes == ("cane", "frame", "chair", "-99")
    assert inst.field("wb_pain").choices == (Choice("1", "True"), Choice("0", "False"))
    pain = inst.field("wb_pain_score")
    assert pain.bounds == ("0", "10") and pain.slider_labels == ("None", "Moderate", "Unbearable")
    support = inst.field("wb_support")
    assert support.columns[-2:] == ("wb_support___other_x", "wb_support____99")
    assert inst.field("wb_weight").validation == "number_1dp"
    assert inst.field("wb_steps").validation == "integer"  # REDCap's legacy 'int'
    assert inst.field("wb_email").input_kind == "email" and inst.field("wb_phone").input_kind == "phone"
    assert inst.field("wb_flag").survey_hidden and not inst.field("wb_flag").participant_answers
    assert inst.field("wb_phq1").matrix_group == "phq"
    assert "wb_intro" not in inst.columns() and inst.columns()[-1] == "wellbeing_check_complete"


def test_hash_changes_with_a_label_and_ignores_other_instruments():
    rows = wellbeing_rows()
    base = wellbeing().version_hash
    rows[-1]["field_label"] = "Changed staff notes"  # another instrument
    assert parse_metadata(rows, WELLBEING).version_hash == base
    rows[5]["field_label"] += "!"
    assert parse_metadata(rows, WELLBEING).version_hash != base
    assert len(metadata_hash([])) == 64


def _refused(rows, instrument="form_a") -> str:
    with pytest.raises(MetadataError) as caught:
        parse_metadata(rows, instrument)
    return str(caught.value)


OK = row("ok_field", "yesno")


@pytest.mark.parametrize(
    ("bad", "words"),
    [
        (row("bad_f", "calc", select_choices_or_calculations="[a]+1"), "'calc' is not supported"),
        (row("bad_f", "file"), "'file' is not supported"),
        (row("bad_f", "sql", select_choices_or_calculations="select 1"), "'sql' is not supported"),
        (row("bad_f", "signature"), "'signature' is not supported"),
        (
            row("bad_f", text_validation_type_or_show_slider_number="datetime_ymd"),
            "validation 'datetime_ymd'",
        ),
        (row("bad_f", text_validation_type_or_show_slider_number="zipcode"), "not supported"),
        (row("bad_f", "radio"), "has no choices"),
        (row("bad_f", "radio", select_choices_or_calculations="Yes | No"), "has no code"),
        (row("bad_f", "radio", select_choices_or_calculations="1, A | 1, B"), "appears twice"),
        (row("bad_f", "checkbox", select_choices_or_calculations="A, a | a, b"), "appears twice"),
        (row("bad_f", "dropdown", select_choices_or_calculations="1 2, A"), "not a REDCap code"),
        (row("bad_f", branching_logic="[ok_field] = '1' and"), "branching logic not supported"),
        (row("bad_f", branching_logic="[nowhere] = '1'"), "unknown field [nowhere]"),
        (row("bad_f", branching_logic="[other_form_f] = '1'"), "another instrument"),
        (row("bad_f", branching_logic="[bad_f] = '1'"), "itself"),
        (row("bad_f", branching_logic="[ok_field(1)] = '1'"), "not a checkbox"),
        (
            row("bad_f", text_validation_type_or_show_slider_number="integer", text_validation_min="1.5"),
            "min '1.5'",
        ),
        (
            row(
                "bad_f",
                text_validation_type_or_show_slider_number="integer",
                text_validation_min="9",
                text_validation_max="1",
            ),
            "greater than max",
        ),
        (
            row(
                "bad_f",
                text_validation_type_or_show_slider_number="date_ymd",
                text_validation_max="01/02/2020",
            ),
            "max '01/02/2020'",
        ),
        (
            row("bad_f", text_validation_type_or_show_slider_number="email", text_validation_max="9"),
            "max '9'",
        ),
        (row("bad_f", text_validation_min="3"), "no validation"),
        (row("bad_f", "radio", select_choices_or_calculations="1, A", text_validation_min="1"), "min/max"),
        (row("bad_f", "slider", text_validation_min="x"), "not a whole number"),
        (row("bad_f", "slider", text_validation_min="10", text_validation_max="5"), "less than its max"),
        (row("bad_f", "slider", select_choices_or_calculations="a | b | c | d"), "slider labels"),
        (row("Bad-F"), "not a valid REDCap field name"),
        (row("bad___f"), "not a valid REDCap field name"),
        ({"field_name": "bad_f", "form_name": "form_a", "field_type": "text"}, "'field_label'"),
        (row("bad_f", field_label=["not", "text"]), "'field_label' must be text"),
    ],
)
def test_each_refusal_names_the_field_and_the_problem(bad, words):
    message = _refused([OK, bad, row("other_form_f", form="form_b")])
    assert bad["field_name"] in message
    assert words in message


def test_branching_to_an_unknown_checkbox_option_is_refused():
    cb = row("cb_f", "checkbox", select_choices_or_calculations="1, A | 2, B")
    message = _refused([cb, row("bad_f", branching_logic="[cb_f(7)] = '1'")])
    assert message.startswith("bad_f:") and "unknown option '7'" in message
    message = _refused([cb, row("bad_f", branching_logic="[cb_f] = '1'")])
    assert "must name an option" in message


def test_duplicate_field_is_refused():
    assert "appears twice" in _refused([OK, row("ok_field")])


def test_empty_and_descriptive_only_instruments_are_refused():
    assert "has no fields" in _refused([row("x", form="form_b")])
    assert "no fields that hold answers" in _refused([row("intro", "descriptive")])
    assert "has no fields" in _refused([], "form_a")


@pytest.mark.parametrize("rows", [{"field_name": "x"}, "text", None, 5, [1, 2]])
def test_metadata_of_the_wrong_shape_is_refused(rows):
    with pytest.raises(MetadataError):
        parse_metadata(rows, "form_a")


def test_a_row_without_keys_names_its_position():
    assert "metadata row 2 has no" in _refused([OK, {"field_type": "text"}])


def test_supported_types_all_parse_together():
    rows = [
        row("t1"),
        row(
            "t2",
            text_validation_type_or_show_slider_number="number",
            text_validation_min="-1.5",
            text_validation_max="2",
        ),
        row("t3", text_validation_type_or_show_slider_number="date_ymd", text_validation_min="today"),
        row("n1", "notes"),
        row("r1", "radio", select_choices_or_calculations="a, A | b, B"),
        row("d1", "dropdown", select_choices_or_calculations="1, One\n| 2, Two"),
        row("y1", "yesno", required_field="y"),
        row("tf", "truefalse"),
        row("c1", "checkbox", select_choices_or_calculations="1, x | 2, y"),
        row("s1", "slider", select_choices_or_calculations="Left | Right"),
        row("s2", "slider"),
        row("ds", "descriptive", section_header="Part 2", branching_logic="[c1(2)] = '1'"),
    ]
    inst = parse_metadata(rows, "form_a")
    assert [f.input_kind for f in inst.fields] == [
        "text",
        "number",
        "date",
        "textarea",
        "radio",
        "select",
        "radio",
        "radio",
        "checkbox",
        "slider",
        "slider",
        "descriptive",
    ]
    assert inst.field("s1").slider_labels == ("Left", "Right", "")
    assert inst.field("s2").slider_labels is None and inst.field("s2").bounds == ("0", "100")
    assert inst.field("d1").choice_codes == ("1", "2")
    assert inst.field("y1").required and not inst.field("t1").required


def test_values_may_be_null_or_numbers_as_some_exports_give_them():
    inst = parse_metadata(
        [
            row(
                "q",
                field_note=None,
                text_validation_type_or_show_slider_number="integer",
                text_validation_max=5,
            )
        ],
        "form_a",
    )
    assert inst.field("q").max == "5" and inst.field("q").note == ""


def test_trial_fixture_is_what_the_shipped_project_exports():
    # The fixture must not drift from study/: it is the local REDCap server's export-metadata of it.
    from devservers.redcap_project import ProjectDefinition

    study = Path(__file__).resolve().parents[2] / "study"
    assert ProjectDefinition.load(study).metadata_rows() == trial_rows()
