"""Stored instrument versions: unchanged metadata adds nothing, bad metadata keeps the last good version."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from app.extensions import db
from app.models import InstrumentVersion
from app.questionnaire import store
from app.questionnaire.definition import MetadataError
from app.questionnaire.store import (
    current_definition,
    current_version,
    current_version_id,
    definition_for_version,
    save_metadata,
)
from tests.questionnaire.helpers import TRIAL, WELLBEING, trial_rows, wellbeing_rows

NOW = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)


def count(instrument: str) -> int:
    return db.session.scalar(select(func.count()).where(InstrumentVersion.instrument == instrument))


def test_nothing_before_the_first_refresh(app):
    assert current_definition(TRIAL) is None and current_version(TRIAL) is None
    assert current_version_id(TRIAL) is None and definition_for_version(12345) is None


def test_first_refresh_stores_the_instruments_rows_as_current(app):
    version = save_metadata(trial_rows(), TRIAL, NOW)
    assert version.is_new and version.is_current and version.fetched_at == NOW
    assert {r["form_name"] for r in version.fields} == {TRIAL}
    definition = current_definition(TRIAL)
    assert definition.version_hash == version.version_hash
    assert definition.field("fu_spo2").max == "100"
    assert definition_for_version(version.id) == definition
    assert current_version_id(TRIAL) == version.id


def test_unchanged_metadata_stores_nothing_new(app):
    first = save_metadata(trial_rows(), TRIAL, NOW)
    again = save_metadata(trial_rows(), TRIAL, NOW + timedelta(hours=1))
    assert again.id == first.id and again.is_new is False
    assert count(TRIAL) == 1
    assert again.fetched_at == NOW


def test_a_changed_label_becomes_current_and_reaches_the_definition(app):
    first = save_metadata(trial_rows(), TRIAL, NOW)
    rows = trial_rows()
    for r in rows:
        if r["field_name"] == "fu_cough":
            r["field_label"] = "How bad was your cough this week?"
    second = save_metadata(rows, TRIAL, NOW + timedelta(hours=1))
    assert second.id != first.id and second.is_new
    assert current_definition(TRIAL).field("fu_cough").label == "How bad was your cough this week?"
    db.session.refresh(first)
    assert first.is_current is False
    assert definition_for_version(first.id).field("fu_cough").label.startswith("How would you rate")
    # going back to metadata seen before re-activates that version instead of adding one
    back = save_metadata(trial_rows(), TRIAL, NOW + timedelta(hours=2))
    assert back.id == first.id and back.is_new and count(TRIAL) == 2
    assert current_definition(TRIAL).field("fu_cough").label.startswith("How would you rate")


def test_an_added_field_reaches_the_definition(app):
    save_metadata(trial_rows(), TRIAL, NOW)
    rows = trial_rows()
    extra = copy.deepcopy(next(r for r in rows if r["field_name"] == "fu_comments"))
    extra.update(field_name="fu_sleep", field_label="How did you sleep?", field_type="text")
    rows.append(extra)
    save_metadata(rows, TRIAL, NOW + timedelta(hours=1))
    assert current_definition(TRIAL).field("fu_sleep").label == "How did you sleep?"


def test_bad_metadata_raises_and_keeps_the_last_good_version(app):
    good = save_metadata(trial_rows(), TRIAL, NOW)
    rows = trial_rows()
    for r in rows:
        if r["field_name"] == "fu_hosp_days":
            r["branching_logic"] = "[fu_readmitted] = '1' and datediff([x], 'today', 'd') > 1"
    with pytest.raises(MetadataError, match="fu_hosp_days"):
        save_metadata(rows, TRIAL, NOW + timedelta(hours=1))
    assert count(TRIAL) == 1
    assert current_version(TRIAL).id == good.id
    assert current_definition(TRIAL).version_hash == good.version_hash


def test_instruments_are_versioned_independently(app):
    trial_version = save_metadata(trial_rows(), TRIAL, NOW)
    wb_version = save_metadata(wellbeing_rows(), WELLBEING, NOW)
    assert trial_version.is_current and wb_version.is_current
    assert current_definition(WELLBEING).field("wb_pain").type == "truefalse"
    assert current_definition(TRIAL).field("fu_fever").type == "yesno"
    assert current_definition("no_such_form") is None


def test_a_stored_version_that_no_longer_parses_gives_none_not_an_error(app, caplog):
    store._cache.clear()  # the parse cache is per process; this test needs the first parse
    rows = trial_rows()
    bad = [
        dict(r, field_type="calc") if r["field_name"] == "fu_spo2" else r
        for r in rows
        if r["form_name"] == TRIAL
    ]
    db.session.add(
        InstrumentVersion(
            instrument=TRIAL, version_hash="f" * 64, fields=bad, is_current=True, fetched_at=NOW
        )
    )
    db.session.commit()
    assert current_definition(TRIAL) is None
    assert "no longer parses" in caplog.text and "fu_spo2" in caplog.text
    # a good refresh replaces it
    save_metadata(rows, TRIAL, NOW)
    assert current_definition(TRIAL).field("fu_spo2").type == "text"
