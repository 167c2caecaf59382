"""A submission's answers as the console shows them: labelled from the REDCap metadata it answered."""

from __future__ import annotations

from typing import Any

from flask import current_app

from app.models import Submission
from app.questionnaire.store import current_definition, definition_for_version
from app.questionnaire.translations import choice_label, field_label


def _definition(submission: Submission) -> Any | None:
    """The questionnaire definition the submission answered (else the current one), if known."""
    if submission.instrument_version_id is not None:
        found = definition_for_version(submission.instrument_version_id)
        if found is not None:
            return found
    return current_definition(current_app.config["REDCAP_QUESTIONNAIRE_INSTRUMENT"])


def answer_rows(submission: Submission, language: str) -> list[dict[str, str]]:
    """The submission's answers as (question, answer) rows, labelled from the REDCap metadata.

    Labels and choice texts come from the questionnaire core in the reader's language; a choice
    also shows its raw REDCap code. Columns not in the metadata are shown by their raw name, so
    nothing stored is ever hidden from coordinators.
    """
    answers = dict(submission.answers or {})
    rows: list[dict[str, str]] = []
    done: set[str] = set()
    definition = _definition(submission)
    for fdef in definition.fields if definition is not None else ():
        columns = [c for c in fdef.columns if c in answers]
        if not columns:
            continue
        done.update(columns)
        label = field_label(fdef, language)
        if fdef.is_checkbox:
            ticked = [
                choice_label(fdef, code, language)
                for code in fdef.choice_codes
                if str(answers.get(fdef.column(code), "")) == "1"
            ]
            value = ", ".join(ticked) or "—"
        else:
            raw = "" if answers[fdef.name] is None else str(answers[fdef.name])
            if fdef.has_choices and raw != "":
                value = f"{choice_label(fdef, raw, language)} ({raw})"
            else:
                value = raw or "—"
        rows.append({"field": fdef.name, "label": label, "value": value})
    for name in sorted(set(answers) - done):
        rows.append({"field": name, "label": name, "value": str(answers[name])})
    return rows
