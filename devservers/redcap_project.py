"""Load a REDCap project definition (data dictionary, arms, events, instrument-event mapping) from files.

The local REDCap server serves whatever project it is given, so tests can load other instruments from a
temporary directory. Loading validates the files the way REDCap's Data Dictionary upload would, so a
definition that loads here is one a coordinator can also upload to a real REDCap.
"""

from __future__ import annotations

import csv
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

# REDCap's data dictionary columns, in order, with the key each one has in the API metadata export.
DICTIONARY_COLUMNS: tuple[tuple[str, str], ...] = (
    ("Variable / Field Name", "field_name"),
    ("Form Name", "form_name"),
    ("Section Header", "section_header"),
    ("Field Type", "field_type"),
    ("Field Label", "field_label"),
    ("Choices, Calculations, OR Slider Labels", "select_choices_or_calculations"),
    ("Field Note", "field_note"),
    ("Text Validation Type OR Show Slider Number", "text_validation_type_or_show_slider_number"),
    ("Text Validation Min", "text_validation_min"),
    ("Text Validation Max", "text_validation_max"),
    ("Identifier?", "identifier"),
    ("Branching Logic (Show field only if...)", "branching_logic"),
    ("Required Field?", "required_field"),
    ("Custom Alignment", "custom_alignment"),
    ("Question Number (surveys only)", "question_number"),
    ("Matrix Group Name", "matrix_group_name"),
    ("Matrix Ranking?", "matrix_ranking"),
    ("Field Annotation", "field_annotation"),
)
METADATA_KEYS = tuple(key for _, key in DICTIONARY_COLUMNS)
FIELD_TYPES = {
    "text",
    "notes",
    "radio",
    "dropdown",
    "checkbox",
    "yesno",
    "truefalse",
    "slider",
    "calc",
    "descriptive",
    "file",
    "sql",
}
CHOICE_TYPES = {"radio", "dropdown", "checkbox"}
# Validation types this server checks; REDCap's legacy names ("int", "float", "date") are accepted too.
VALIDATION_ALIASES = {
    "int": "integer",
    "float": "number",
    "date": "date_ymd",
    "datetime": "datetime_ymd",
    "datetime_seconds": "datetime_seconds_ymd",
}
VALIDATION_TYPES = {
    "integer",
    "number",
    "date_ymd",
    "date_mdy",
    "date_dmy",
    "datetime_ymd",
    "datetime_mdy",
    "datetime_dmy",
    "datetime_seconds_ymd",
    "datetime_seconds_mdy",
    "datetime_seconds_dmy",
    "time",
    "time_mm_ss",
    "email",
    "phone",
    "alpha_only",
    "zipcode",
    "number_1dp",
    "number_2dp",
    "number_3dp",
    "number_4dp",
}
FORM_STATUS_CHOICES = {"0": "Incomplete", "1": "Unverified", "2": "Complete"}
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
CLASSIC_EVENT = ""  # the one implicit event of a classic (non-longitudinal) project


class ProjectDefinitionError(ValueError):
    """The project files are not a valid REDCap project definition."""


@dataclass(frozen=True)
class Field:
    """One data dictionary row, with its choices parsed."""

    row: dict[str, str]

    @property
    def name(self) -> str:
        return self.row["field_name"]

    @property
    def form(self) -> str:
        return self.row["form_name"]

    @property
    def type(self) -> str:
        return self.row["field_type"]

    @property
    def validation(self) -> str:
        raw = self.row["text_validation_type_or_show_slider_number"]
        return VALIDATION_ALIASES.get(raw, raw) if self.type == "text" else ""

    @property
    def choices(self) -> dict[str, str]:
        """Coded choices; yes/no and true/false have fixed codes as in REDCap."""
        if self.type == "yesno":
            return {"1": "Yes", "0": "No"}
        if self.type == "truefalse":
            return {"1": "True", "0": "False"}
        if self.type not in CHOICE_TYPES:
            return {}
        return parse_choices(self.row["select_choices_or_calculations"])

    @property
    def force_minmax(self) -> bool:
        """REDCap only enforces min/max on import when the field carries the @FORCE-MINMAX action tag."""
        return "@FORCE-MINMAX" in self.row["field_annotation"].upper()

    def export_names(self) -> list[str]:
        """Column names in a flat export: checkboxes become one `field___code` column per choice."""
        if self.type == "descriptive":
            return []
        if self.type == "checkbox":
            return [checkbox_column(self.name, code) for code in self.choices]
        return [self.name]


@dataclass(frozen=True)
class Event:
    """One event as REDCap's Export Events method returns it."""

    unique_event_name: str
    event_name: str
    arm_num: int
    day_offset: int = 0
    offset_min: int = 0
    offset_max: int = 0
    custom_event_label: str = ""
    event_id: int = 0

    def api_row(self) -> dict[str, object]:
        return {
            "event_name": self.event_name,
            "arm_num": self.arm_num,
            "unique_event_name": self.unique_event_name,
            "custom_event_label": self.custom_event_label,
            "event_id": self.event_id,
            "days_offset": self.day_offset,
            "offset_min": self.offset_min,
            "offset_max": self.offset_max,
        }


def parse_choices(raw: str) -> dict[str, str]:
    """Parse REDCap's `code, label | code, label` choices (labels may contain commas)."""
    choices: dict[str, str] = {}
    for part in raw.split("|"):
        part = part.strip()
        if not part:
            continue
        code, _, label = part.partition(",")
        choices[code.strip()] = label.strip()
    return choices


def checkbox_column(field_name: str, code: str) -> str:
    """REDCap's export name for one checkbox choice: lower case, with '.' and '-' made '_'."""
    return f"{field_name}___{code.lower().replace('.', '_').replace('-', '_')}"


@dataclass
class ProjectDefinition:
    """A REDCap project: fields in dictionary order, arms, events and which forms each event collects."""

    fields: list[Field]
    info: dict[str, object] = field(default_factory=dict)
    arms: dict[int, str] = field(default_factory=dict)
    events: list[Event] = field(default_factory=list)
    event_forms: dict[str, list[str]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.by_name = {f.name: f for f in self.fields}
        self.forms: list[str] = list(dict.fromkeys(f.form for f in self.fields))
        self.events_by_name = {e.unique_event_name: e for e in self.events}
        self._check()

    @property
    def record_id_field(self) -> str:
        return self.fields[0].name

    @property
    def longitudinal(self) -> bool:
        return bool(self.events)

    def event_names(self) -> list[str]:
        return [e.unique_event_name for e in self.events] if self.longitudinal else [CLASSIC_EVENT]

    def forms_for_event(self, event: str) -> list[str]:
        return self.event_forms.get(event, []) if self.longitudinal else list(self.forms)

    def instrument_label(self, form: str) -> str:
        labels = self.info.get("instruments") or {}
        assert isinstance(labels, dict)
        return str(labels.get(form) or form.replace("_", " ").capitalize())

    def event_label(self, event: str) -> str:
        """The event name REDCap puts in messages, e.g. 'Week 4 (Arm 1: Arm 1)'."""
        ev = self.events_by_name[event]
        return f"{ev.event_name} (Arm {ev.arm_num}: {self.arms.get(ev.arm_num, f'Arm {ev.arm_num}')})"

    def form_fields(self, form: str) -> list[Field]:
        return [f for f in self.fields if f.form == form]

    def export_columns(self) -> list[tuple[str, str, str]]:
        """(export name, original field name, form) for every exportable column, in REDCap's order."""
        columns: list[tuple[str, str, str]] = []
        for form in self.forms:
            for f in self.form_fields(form):
                columns.extend((name, f.name, form) for name in f.export_names())
            columns.append((f"{form}_complete", f"{form}_complete", form))
        return columns

    def metadata_rows(self) -> list[dict[str, str]]:
        return [dict(f.row) for f in self.fields]

    def _check(self) -> None:
        if not self.fields:
            raise ProjectDefinitionError("The data dictionary has no fields")
        seen: set[str] = set()
        for f in self.fields:
            if not _NAME.match(f.name) or "___" in f.name or f.name in seen:
                raise ProjectDefinitionError(f"Invalid or duplicate variable name: {f.name!r}")
            seen.add(f.name)
            if not _NAME.match(f.form):
                raise ProjectDefinitionError(f"Invalid form name {f.form!r} for {f.name}")
            if f.type not in FIELD_TYPES:
                raise ProjectDefinitionError(f"{f.name}: unknown field type {f.type!r}")
            if f.type in CHOICE_TYPES and not f.choices:
                raise ProjectDefinitionError(f"{f.name}: {f.type} fields need choices")
            if f.validation and f.validation not in VALIDATION_TYPES:
                raise ProjectDefinitionError(f"{f.name}: unsupported validation {f.validation!r}")
        if _forms_interleaved(self.fields):
            raise ProjectDefinitionError("Form names must be contiguous in the data dictionary")
        for event, forms in self.event_forms.items():
            if event not in self.events_by_name:
                raise ProjectDefinitionError(f"Mapping names an unknown event {event!r}")
            unknown = set(forms) - set(self.forms)
            if unknown:
                raise ProjectDefinitionError(f"Mapping names unknown forms {sorted(unknown)} for {event}")

    @classmethod
    def load(cls, directory: str | Path) -> ProjectDefinition:
        """Load `data_dictionary.csv` plus optional project.json, arms, events and mapping (.csv or .json)."""
        root = Path(directory)
        dictionary = root / "data_dictionary.csv"
        if not dictionary.is_file():
            raise ProjectDefinitionError(f"No data_dictionary.csv in {root}")
        info = (
            json.loads((root / "project.json").read_text("utf-8"))
            if (root / "project.json").is_file()
            else {}
        )
        events = [_event(row, i) for i, row in enumerate(_table(root, "events"), start=1)]
        arms = {int(r["arm_num"]): str(r.get("name") or f"Arm {r['arm_num']}") for r in _table(root, "arms")}
        for ev in events:
            arms.setdefault(ev.arm_num, f"Arm {ev.arm_num}")
        mapping: dict[str, list[str]] = {}
        for row in _table(root, "instrument_event_mapping"):
            mapping.setdefault(str(row["unique_event_name"]), []).append(str(row["form"]))
        if events and not mapping:
            raise ProjectDefinitionError("A longitudinal project needs instrument_event_mapping")
        info = {**info, "is_longitudinal": 1 if events else 0}
        return cls(
            fields=read_dictionary(dictionary), info=info, arms=arms, events=events, event_forms=mapping
        )


def read_dictionary(path: Path) -> list[Field]:
    """Read a REDCap data dictionary CSV (by column position, as REDCap does) into Fields."""
    with path.open(newline="", encoding="utf-8-sig") as fh:
        rows = list(csv.reader(fh))
    if not rows or len(rows[0]) < 4:
        raise ProjectDefinitionError(f"{path} is not a REDCap data dictionary")
    fields = []
    for raw in rows[1:]:
        if not any(cell.strip() for cell in raw):
            continue
        cells = [c.strip() for c in raw] + [""] * (len(METADATA_KEYS) - len(raw))
        row = dict(zip(METADATA_KEYS, cells[: len(METADATA_KEYS)], strict=True))
        row["text_validation_type_or_show_slider_number"] = VALIDATION_ALIASES.get(
            row["text_validation_type_or_show_slider_number"],
            row["text_validation_type_or_show_slider_number"],
        )
        for flag in ("identifier", "required_field", "matrix_ranking"):
            row[flag] = "y" if row[flag].lower() in {"y", "yes", "1"} else ""
        fields.append(Field(row))
    return fields


def _forms_interleaved(fields: list[Field]) -> bool:
    finished: set[str] = set()
    current = ""
    for f in fields:
        if f.form != current:
            if f.form in finished:
                return True
            finished.add(current)
            current = f.form
    return False


def _table(root: Path, stem: str) -> list[dict[str, object]]:
    """Rows of `stem.json` (REDCap's API export shape) or `stem.csv` (REDCap's upload shape), if present."""
    if (root / f"{stem}.json").is_file():
        data = json.loads((root / f"{stem}.json").read_text("utf-8"))
        if not isinstance(data, list):
            raise ProjectDefinitionError(f"{stem}.json must hold a JSON list")
        return data
    if (root / f"{stem}.csv").is_file():
        with (root / f"{stem}.csv").open(newline="", encoding="utf-8-sig") as fh:
            return list(csv.DictReader(fh))
    return []


def _event(row: dict[str, object], event_id: int) -> Event:
    def num(key: str, *alt: str) -> int:
        for k in (key, *alt):
            if str(row.get(k, "")).strip():
                return int(str(row[k]))
        return 0

    name = str(row.get("unique_event_name") or "").strip()
    if not _NAME.match(name):
        raise ProjectDefinitionError(f"Invalid unique event name {name!r}")
    return Event(
        unique_event_name=name,
        event_name=str(row.get("event_name") or name),
        arm_num=num("arm_num") or 1,
        day_offset=num("day_offset", "days_offset"),
        offset_min=num("offset_min"),
        offset_max=num("offset_max"),
        custom_event_label=str(row.get("custom_event_label") or ""),
        event_id=num("event_id") or event_id,
    )
