"""The server-side truth of a submission: only what the metadata allows, in REDCap's raw codes.

`clean_answers` reads a posted form (or any mapping) by the instrument's own field names, applies branching
the way REDCap does (a field whose logic is false is hidden: neither required nor stored), validates and
normalizes every shown value, and never raises. `validate_stored` is the last check before the REDCap push.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from flask_babel import gettext as _

from app.questionnaire.branching import evaluate
from app.questionnaire.definition import FieldDef, InstrumentDef
from app.questionnaire.validation import decimals, in_range, normalize, resolve_bound, stored_ok

TEXT_MAX = 500
NOTES_MAX = 2000
CHECKED = frozenset({"1", "on", "y", "yes", "true", "checked"})
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ud800-\udfff]")
_LINE_BREAKS = re.compile(r"[\r\n\t]+")


@dataclass
class CleanResult:
    """Cleaned answers keyed by REDCap column (raw codes) and participant-facing errors keyed by field."""

    answers: dict[str, str] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    shown: set[str] = field(default_factory=set)  # field names whose branching shows them

    @property
    def ok(self) -> bool:
        """True when the submission can be accepted."""
        return not self.errors


@dataclass
class _Parsed:
    values: dict[str, str]  # column -> normalized value ({} when blank or invalid)
    blank: bool
    error: str | None = None


def _values(data: Any, key: str) -> list[str]:
    """Every submitted value for `key`, as text, whatever shape the input has."""
    try:
        if hasattr(data, "getlist"):
            raw = data.getlist(key)
        else:
            raw = data.get(key) if isinstance(data, Mapping) else None
    except Exception:  # a hostile mapping must not break the submission path
        return []
    if raw is None:
        return []
    items = raw if isinstance(raw, list | tuple) else [raw]
    return [v if isinstance(v, str) else str(v) for v in items if v is not None]


def _scrub(value: str, single_line: bool) -> str:
    value = _CONTROL.sub("", value)
    if single_line:
        value = _LINE_BREAKS.sub(" ", value)
    return value.strip()


def _range_message(f: FieldDef, low: str | None, high: str | None) -> str:
    kind = f.input_kind
    if kind == "date":
        if low and high:
            return _("Please enter a date between %(min)s and %(max)s.", min=low, max=high)
        if low:
            return _("Please enter a date on or after %(min)s.", min=low)
        return _("Please enter a date on or before %(max)s.", max=high)
    noun = _("a whole number") if kind in ("integer", "slider") else _("a number")
    if low and high:
        return _("Please enter %(what)s between %(min)s and %(max)s.", what=noun, min=low, max=high)
    if low:
        return _("Please enter %(what)s of at least %(min)s.", what=noun, min=low)
    return _("Please enter %(what)s no greater than %(max)s.", what=noun, max=high)


def _format_message(f: FieldDef) -> str:
    validation = f.validation or ""
    places = decimals(validation)
    low, high = f.bounds
    if validation == "integer":
        return _range_message(f, low, high) if (low or high) else _("Please enter a whole number.")
    if places is not None:
        return _("Please enter a number with at most %(n)s digits after the decimal point.", n=places)
    if validation == "number":
        return _range_message(f, low, high) if (low or high) else _("Please enter a number.")
    if validation == "date_ymd":
        return _("Please enter a date as YYYY-MM-DD, for example 2024-03-01.")
    if validation == "email":
        return _("Please enter an email address, like name@example.com.")
    if validation == "phone":
        return _("Please enter a 10-digit North American phone number, like (212) 555-0100.")
    return _("Please check this answer.")


def _parse_single(f: FieldDef, data: Any, today: date) -> _Parsed:
    single_line = f.type != "notes"
    given = [_scrub(v, single_line) for v in _values(data, f.name)]
    given = [v for v in given if v]
    if not given:
        return _Parsed({}, blank=True)
    if len(set(given)) > 1:
        return _Parsed({}, blank=False, error=_("Please give only one answer."))
    value = given[0]
    if f.has_choices:
        if value in f.choice_codes:
            return _Parsed({f.name: value}, blank=False)
        return _Parsed({}, blank=False, error=_("Please choose one of the options."))
    if f.type == "slider":
        low, high = f.bounds
        if len(value) <= 12 and re.fullmatch(r"[-+]?\d+", value, re.ASCII):
            number = str(int(value))
            if in_range("integer", number, low, high, today):
                return _Parsed({f.name: number}, blank=False)
        return _Parsed({}, blank=False, error=_range_message(f, low, high))
    limit = NOTES_MAX if f.type == "notes" else TEXT_MAX
    if len(value) > limit:
        return _Parsed(
            {}, blank=False, error=_("Please shorten your answer to %(max)s characters or fewer.", max=limit)
        )
    if not f.validation:
        return _Parsed({f.name: value}, blank=False)
    normalized = normalize(f.validation, value)
    if normalized is None:
        return _Parsed({}, blank=False, error=_format_message(f))
    low, high = f.bounds
    if not in_range(f.validation, normalized, low, high, today):
        shown_low = resolve_bound(f.validation, low, today) if low else None
        shown_high = resolve_bound(f.validation, high, today) if high else None
        return _Parsed({}, blank=False, error=_range_message(f, shown_low, shown_high))
    return _Parsed({f.name: normalized}, blank=False)


def _parse_checkbox(f: FieldDef, data: Any) -> _Parsed:
    checked: set[str] = set()
    by_column = {f.column(c.code): c.code for c in f.choices}
    for column, code in by_column.items():
        if any(v.strip().lower() in CHECKED for v in _values(data, column)):
            checked.add(code)
    for value in _values(data, f.name):  # a multi-value control named after the field, posting codes
        value = value.strip()
        if value in f.choice_codes:
            checked.add(value)
    values = {column: ("1" if code in checked else "0") for column, code in by_column.items()}
    return _Parsed(values, blank=not checked)


def _visible(instrument: InstrumentDef, parsed: dict[str, _Parsed]) -> set[str]:
    """Fields shown by branching, evaluated in field order on the cleaned values; a hidden field's value
    counts as blank for the fields after it. Repeated until stable (logic may look forward)."""
    fields = [f for f in instrument.data_fields if f.name in parsed]
    env: dict[str, str] = {}
    for f in fields:
        env.update(parsed[f.name].values)
    shown = {f.name for f in fields}
    for _round in range(len(fields) + 1):
        changed = False
        for f in fields:
            now_shown = f.logic is None or evaluate(f.logic, env)
            if now_shown == (f.name in shown):
                continue
            changed = True
            if now_shown:
                shown.add(f.name)
                env.update(parsed[f.name].values)
            else:
                shown.discard(f.name)
                for column in f.columns:
                    env.pop(column, None)
        if not changed:
            return shown
    # Logic that never settles (fields showing each other in a cycle): hide until every shown field's
    # logic holds, which always ends, so a stored answer is never one its logic would hide.
    changed = True
    while changed:
        changed = False
        for f in fields:
            if f.name in shown and f.logic is not None and not evaluate(f.logic, env):
                shown.discard(f.name)
                for column in f.columns:
                    env.pop(column, None)
                changed = True
    return shown


def clean_answers(instrument: InstrumentDef, data: Mapping[str, Any], *, today: date) -> CleanResult:
    """Validate a submission against the metadata: only known fields, branching, required, choices, formats
    and ranges; answers in REDCap raw codes (blank answers are left out; a shown checkbox gives every
    option's column '1'/'0'). `today` (the participant's local date) resolves 'today' in date bounds."""
    result = CleanResult()
    parsed: dict[str, _Parsed] = {}
    for f in instrument.data_fields:
        if not f.participant_answers:
            continue
        try:
            parsed[f.name] = _parse_checkbox(f, data) if f.is_checkbox else _parse_single(f, data, today)
        except Exception:  # never a 500 from odd input; the field is simply not accepted
            parsed[f.name] = _Parsed({}, blank=False, error=_("Please check this answer."))
    result.shown = _visible(instrument, parsed)
    for f in instrument.data_fields:
        if f.name not in result.shown:
            continue
        p = parsed[f.name]
        if p.error:
            result.errors[f.name] = p.error
        elif p.blank and f.required:
            result.errors[f.name] = (
                _("Please choose at least one option.")
                if f.is_checkbox
                else _("Please answer this question.")
            )
        elif f.is_checkbox or not p.blank:
            result.answers.update(p.values)
    return result


def _enforced_bounds(f: FieldDef, low: str | None, high: str | None) -> tuple[str | None, str | None]:
    """The bounds REDCap enforces on import: only with @FORCE-MINMAX, and never a moving 'today' (a date
    valid on the day it was given must not become unpushable later)."""
    if not f.force_minmax:
        return None, None
    return (None if low == "today" else low), (None if high == "today" else high)


def validate_stored(instrument: InstrumentDef, answers: Mapping[str, Any], *, today: date) -> list[str]:
    """Problems REDCap would reject, one per column, naming the field but never the value (values are
    health data). An empty list means the answers can be queued for import. Like REDCap, min/max are
    only enforced for fields tagged @FORCE-MINMAX (otherwise REDCap accepts with a warning), so an
    answer accepted under an older range is never stranded. `today` is the date of the push."""
    problems: list[str] = []
    for column, value in answers.items():
        f = instrument.column_field(column)
        if not isinstance(value, str):
            problems.append(f"{column}: value is not text")
            continue
        if f is None:
            if column == instrument.complete_column:
                if value not in ("", "0", "1", "2"):
                    problems.append(f"{column}: form status must be 0, 1 or 2")
            else:
                problems.append(f"{column}: not a field of instrument {instrument.name}")
            continue
        if value == "":
            continue
        if f.is_checkbox:
            if value not in ("0", "1"):
                problems.append(f"{column}: a checkbox option must be '1' or '0'")
        elif f.has_choices:
            if value not in f.choice_codes:
                problems.append(f"{column}: not one of the field's choice codes")
        elif f.type == "slider":
            low, high = _enforced_bounds(f, *f.bounds)
            if not (
                re.fullmatch(r"-?\d{1,12}", value, re.ASCII) and in_range("integer", value, low, high, today)
            ):
                problems.append(f"{column}: slider value must be a whole number within its range")
        elif f.validation:
            low, high = _enforced_bounds(f, f.min, f.max)
            if not stored_ok(f.validation, value):
                problems.append(f"{column}: not a valid {f.validation} value")
            elif f.validation != "phone" and not in_range(f.validation, value, low, high, today):
                problems.append(
                    f"{column}: outside the field's range ({low or '…'} to {high or '…'}, @FORCE-MINMAX)"
                )
    return problems
