"""Chinese labels from the study's translation file, with REDCap's English as the fallback."""

from __future__ import annotations

import json
import logging

from app.extensions import db
from app.questionnaire import translations as tr
from tests.conftest import build_app
from tests.questionnaire.helpers import trial, trial_rows, wellbeing

TRIAL = trial()


def test_shipped_file_gives_chinese_labels(plain_app):
    fever = TRIAL.field("fu_fever")
    assert tr.field_label(fever, "zh").startswith("自上次随访以来")
    assert tr.section_header(fever, "zh") == "自上次随访以来的症状"
    assert tr.choice_label(fever, "1", "zh") == "是"
    assert tr.field_note(TRIAL.field("fu_spo2"), "zh").startswith("单位为")
    assert tr.slider_labels(TRIAL.field("fu_health_today"), "zh") == ("最差", "", "最好")
    assert tr.instrument_label("followup_questionnaire", "zh", "Follow-up") == "随访问卷"


def test_english_is_redcaps_text(plain_app):
    fever = TRIAL.field("fu_fever")
    assert tr.field_label(fever, "en") == fever.label
    assert tr.choice_label(fever, "1", "en") == "Yes"
    assert tr.section_header(fever, None) == fever.section_header
    assert tr.instrument_label("followup_questionnaire", "en", "Follow-up") == "Follow-up"


def test_untranslated_fields_fall_back_to_english(plain_app):
    wb = wellbeing()
    field = wb.field("wb_mobility")
    assert tr.field_label(field, "zh") == field.label
    assert tr.choice_label(field, "3", "zh") == field.choice_label("3")
    assert tr.choice_label(field, "zzz", "zh") == "zzz"
    assert tr.field_note(wb.field("wb_weight"), "zh-CN") == "kg, one decimal"


def test_file_from_settings_and_partial_entries(tmp_path):
    path = tmp_path / "zh.json"
    path.write_text(
        json.dumps({"fu_cough": {"label": "咳嗽", "choices": {"0": "", "1": "轻"}}}), encoding="utf-8"
    )
    app = build_app("sqlite", tmp_path, STUDY_TRANSLATIONS_FILE=str(path))
    cough = TRIAL.field("fu_cough")
    with app.app_context():
        assert tr.field_label(cough, "zh") == "咳嗽"
        assert tr.choice_label(cough, "1", "zh") == "轻"
        assert tr.choice_label(cough, "0", "zh") == "None"  # empty translation falls back
        db.engine.dispose()


def test_missing_or_broken_file_logs_a_warning_and_falls_back(tmp_path, caplog):
    cough = TRIAL.field("fu_cough")
    broken = tmp_path / "broken.json"
    broken.write_text("{not json", encoding="utf-8")
    with caplog.at_level(logging.WARNING, logger="app.questionnaire.translations"):
        assert tr.field_label(cough, "zh", path=str(broken)) == cough.label
        assert tr.field_label(cough, "zh", path=str(tmp_path / "missing.json")) == cough.label
    assert "unreadable" in caplog.text and "not found" in caplog.text
    odd = tmp_path / "odd.json"
    odd.write_text(
        json.dumps({"fu_cough": ["x"], "fu_fever": {"choices": ["x"], "label": 5}}), encoding="utf-8"
    )
    assert tr.field_label(cough, "zh", path=str(odd)) == cough.label
    assert tr.choice_label(TRIAL.field("fu_fever"), "1", "zh", path=str(odd)) == "Yes"
    assert tr.field_label(TRIAL.field("fu_fever"), "zh", path=str(odd)) == TRIAL.field("fu_fever").label


def test_stored_metadata_rows_are_accepted_too(plain_app):
    rows = {r["field_name"]: r for r in trial_rows()}
    assert tr.field_label(rows["fu_cough"], "zh") == "您如何评价过去一周的咳嗽情况？"
    assert tr.choice_label(rows["fu_fever"], "0", "zh") == "否"
    assert tr.choice_label(rows["fu_fever"], "0", "en") == "No"
    odd = {"field_name": "fu_cough", "field_type": "calc", "field_label": "Cough score"}
    assert tr.field_label(odd, "en") == "Cough score"
    assert tr.field_label(odd, "zh") == "您如何评价过去一周的咳嗽情况？"
