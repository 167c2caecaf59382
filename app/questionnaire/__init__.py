"""The questionnaire as REDCap defines it: metadata parsing, branching logic, answer cleaning, stored
versions and participant-language labels. Pure and REDCap-general: nothing here knows the trial's fields."""

from app.questionnaire.answers import CleanResult, clean_answers, validate_stored
from app.questionnaire.branching import (
    LogicError,
    evaluate,
    parse_logic,
    referenced_fields,
    to_json,
)
from app.questionnaire.definition import (
    Choice,
    FieldDef,
    InstrumentDef,
    MetadataError,
    checkbox_column,
)
from app.questionnaire.metadata import parse_metadata

__all__ = [
    "Choice",
    "CleanResult",
    "FieldDef",
    "InstrumentDef",
    "LogicError",
    "MetadataError",
    "checkbox_column",
    "clean_answers",
    "evaluate",
    "parse_logic",
    "parse_metadata",
    "referenced_fields",
    "to_json",
    "validate_stored",
]
