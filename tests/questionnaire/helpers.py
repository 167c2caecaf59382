"""Metadata fixtures and a row builder for the questionnaire tests."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from app.questionnaire.definition import METADATA_KEYS, InstrumentDef
from app.questionnaire.metadata import parse_metadata

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "metadata"
TRIAL = "followup_questionnaire"
WELLBEING = "wellbeing_check"


def load_rows(name: str) -> list[dict[str, Any]]:
    """All rows of a fixture project, as REDCap's export metadata gives them."""
    return json.loads((FIXTURES / name).read_text(encoding="utf-8"))


def trial_rows() -> list[dict[str, Any]]:
    return load_rows("trial_project.json")


def wellbeing_rows() -> list[dict[str, Any]]:
    return load_rows("wellbeing_project.json")


def trial() -> InstrumentDef:
    return parse_metadata(trial_rows(), TRIAL)


def wellbeing() -> InstrumentDef:
    return parse_metadata(wellbeing_rows(), WELLBEING)


def row(name: str, field_type: str = "text", label: str = "A question", form: str = "form_a", **values: str):
    """One export-metadata row with REDCap's 18 keys; `values` use the export key names."""
    out = {key: "" for key in METADATA_KEYS}
    out.update(field_name=name, form_name=form, field_type=field_type, field_label=label)
    for key, value in values.items():
        assert key in METADATA_KEYS, key
        out[key] = value
    return out
