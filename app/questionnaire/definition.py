"""A questionnaire as REDCap defines it: fields, choices, validations and branching, nothing hard-coded.

The model lives here; `parse_metadata` (in metadata.py, re-exported here) builds it from REDCap's
export-metadata JSON and refuses anything the service cannot show or validate faithfully (with a
MetadataError naming the field), so a bad refresh never replaces the last good definition.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import cached_property

from app.questionnaire.branching import Node, checkbox_column

# REDCap's export-metadata keys, in the data dictionary's column order.
METADATA_KEYS = (
    "field_name",
    "form_name",
    "section_header",
    "field_type",
    "field_label",
    "select_choices_or_calculations",
    "field_note",
    "text_validation_type_or_show_slider_number",
    "text_validation_min",
    "text_validation_max",
    "identifier",
    "branching_logic",
    "required_field",
    "custom_alignment",
    "question_number",
    "matrix_group_name",
    "matrix_ranking",
    "field_annotation",
)
REQUIRED_KEYS = ("field_name", "form_name", "field_type", "field_label")
SUPPORTED_TYPES = (
    "text",
    "notes",
    "radio",
    "dropdown",
    "yesno",
    "truefalse",
    "checkbox",
    "slider",
    "descriptive",
)
_REFUSED_TYPES = {
    "calc": "calculated fields are computed by REDCap, not asked; move it to another instrument",
    "file": "file upload fields are not supported on the participant's page",
    "sql": "SQL fields are not supported",
}
CHOICE_TYPES = frozenset({"radio", "dropdown", "checkbox"})
YESNO = (("1", "Yes"), ("0", "No"))
TRUEFALSE = (("1", "True"), ("0", "False"))
SLIDER_DEFAULT = ("0", "100")
_NAME = re.compile(r"[a-z][a-z0-9_]*", re.ASCII)
_CODE = re.compile(r"-?[A-Za-z0-9_.]+", re.ASCII)
_HIDDEN_TAGS = re.compile(r"@HIDDEN(?:-SURVEY)?(?![-A-Z])")
_READONLY_TAGS = re.compile(r"@READONLY(?:-SURVEY)?(?![-A-Z])")


class MetadataError(ValueError):
    """REDCap metadata the service cannot use; the message names the field and the problem."""

    def __init__(self, message: str, field_name: str | None = None):
        self.field_name = field_name
        super().__init__(f"{field_name}: {message}" if field_name else message)


@dataclass(frozen=True)
class Choice:
    """One option of a choice field: its raw REDCap code and REDCap's (English) label."""

    code: str
    label: str


@dataclass(frozen=True)
class FieldDef:
    """One REDCap field of the instrument, as the page shows it and the server validates it."""

    name: str
    form: str
    type: str
    label: str
    note: str = ""
    section_header: str = ""
    choices: tuple[Choice, ...] = ()
    validation: str | None = None
    min: str | None = None
    max: str | None = None
    required: bool = False
    branching: str | None = None
    logic: Node | None = field(default=None, compare=False)
    slider_labels: tuple[str, str, str] | None = None
    annotation: str = ""
    identifier: bool = False
    show_number: bool = False  # slider: REDCap's "show number" option
    matrix_group: str = ""

    @property
    def is_checkbox(self) -> bool:
        """Checkbox fields are stored as one '1'/'0' column per option."""
        return self.type == "checkbox"

    @property
    def is_descriptive(self) -> bool:
        """Descriptive fields show text and hold no data."""
        return self.type == "descriptive"

    @property
    def has_choices(self) -> bool:
        """Radio, dropdown, yesno, truefalse and checkbox fields answer with choice codes."""
        return bool(self.choices)

    @property
    def columns(self) -> tuple[str, ...]:
        """The field's REDCap import/export columns (`name___code` per checkbox option)."""
        if self.is_descriptive:
            return ()
        if self.is_checkbox:
            return tuple(checkbox_column(self.name, c.code) for c in self.choices)
        return (self.name,)

    def column(self, code: str) -> str:
        """The column of one checkbox option."""
        return checkbox_column(self.name, code)

    @property
    def choice_codes(self) -> tuple[str, ...]:
        """The raw codes, in REDCap's order."""
        return tuple(c.code for c in self.choices)

    def choice_label(self, code: str) -> str | None:
        """REDCap's label for a code, or None for an unknown code."""
        return next((c.label for c in self.choices if c.code == code), None)

    @property
    def survey_hidden(self) -> bool:
        """@HIDDEN / @HIDDEN-SURVEY: REDCap never shows the field to a participant."""
        return bool(_HIDDEN_TAGS.search(self.annotation))

    @property
    def survey_readonly(self) -> bool:
        """@READONLY / @READONLY-SURVEY: shown, but the participant cannot change it."""
        return bool(_READONLY_TAGS.search(self.annotation))

    @property
    def force_minmax(self) -> bool:
        """@FORCE-MINMAX: REDCap refuses out-of-range values on import too, not just warns."""
        return "@FORCE-MINMAX" in self.annotation.upper()

    @property
    def participant_answers(self) -> bool:
        """Whether a participant's submission may set this field."""
        return not (self.is_descriptive or self.survey_hidden or self.survey_readonly)

    @property
    def bounds(self) -> tuple[str | None, str | None]:
        """(min, max) as written in REDCap; a slider without them runs 0–100."""
        if self.type == "slider":
            return (self.min or SLIDER_DEFAULT[0], self.max or SLIDER_DEFAULT[1])
        return (self.min, self.max)

    @property
    def input_kind(self) -> str:
        """What control the page should render: descriptive, radio, select, checkbox, slider, textarea,
        integer, number, date, email, phone or text."""
        if self.type in ("radio", "yesno", "truefalse"):
            return "radio"
        if self.type == "dropdown":
            return "select"
        if self.type in ("checkbox", "slider", "descriptive"):
            return self.type
        if self.type == "notes":
            return "textarea"
        if self.validation == "integer":
            return "integer"
        if self.validation and self.validation.startswith("number"):
            return "number"
        if self.validation == "date_ymd":
            return "date"
        return self.validation or "text"


@dataclass(frozen=True)
class InstrumentDef:
    """One REDCap instrument: its fields in REDCap's order and the hash of the metadata it came from."""

    name: str
    fields: tuple[FieldDef, ...]
    version_hash: str

    @cached_property
    def _by_name(self) -> dict[str, FieldDef]:
        return {f.name: f for f in self.fields}

    @cached_property
    def _by_column(self) -> dict[str, FieldDef]:
        return {col: f for f in self.fields for col in f.columns}

    def field(self, name: str) -> FieldDef | None:
        """The field called `name`, or None."""
        return self._by_name.get(name)

    def column_field(self, column: str) -> FieldDef | None:
        """The field a REDCap column belongs to (`f___code` → checkbox f), or None."""
        return self._by_column.get(column)

    @property
    def data_fields(self) -> tuple[FieldDef, ...]:
        """The fields that hold data (all but descriptive), in order."""
        return tuple(f for f in self.fields if not f.is_descriptive)

    @property
    def complete_column(self) -> str:
        """REDCap's form-status column for this instrument."""
        return f"{self.name}_complete"

    def columns(self) -> list[str]:
        """Every import/export column of the instrument, checkboxes expanded, then `{name}_complete`."""
        return [col for f in self.fields for col in f.columns] + [self.complete_column]


__all__ = [
    "CHOICE_TYPES",
    "METADATA_KEYS",
    "SUPPORTED_TYPES",
    "Choice",
    "FieldDef",
    "InstrumentDef",
    "MetadataError",
    "checkbox_column",
]
