"""REDCap text validation types: which ones the service supports, how values are normalized and bounded.

Kept apart from the form so the metadata check (are min/max valid?), the participant's submission and the
pre-push check all use one definition of "valid" — the one REDCap applies on import.
"""

from __future__ import annotations

import re
from datetime import date
from decimal import Decimal, InvalidOperation

SUPPORTED_VALIDATIONS = (
    "integer",
    "number",
    "number_1dp",
    "number_2dp",
    "number_3dp",
    "number_4dp",
    "date_ymd",
    "email",
    "phone",
)
# REDCap's legacy names for the same validations, as older projects still export them.
VALIDATION_ALIASES = {"int": "integer", "float": "number", "date": "date_ymd"}
NUMERIC_VALIDATIONS = frozenset(v for v in SUPPORTED_VALIDATIONS if v == "integer" or v.startswith("number"))

_INTEGER = re.compile(r"[-+]?\d{1,15}", re.ASCII)
_NUMBER = re.compile(r"[-+]?(\d{1,15}\.?\d{0,15}|\.\d{1,15})", re.ASCII)
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}", re.ASCII)
# A conservative subset of what REDCap accepts, so REDCap never rejects what we accept.
_EMAIL = re.compile(
    r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
    r"@[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*"
    r"\.[A-Za-z]{2,63}",
    re.ASCII,
)
# REDCap's phone validation: North American numbers. Area code and exchange as the strictest REDCap
# versions define them (no N11 exchange), so every REDCap version accepts what we store.
_AREA = r"[2-9]0[1-9]|[2-9]1[02-9]|[2-9][2-9][0-9]"
_EXCHANGE = r"[2-9]1[02-9]|[2-9][02-9]1|[2-9][02-9]{2}"
_PHONE_INPUT = re.compile(
    rf"(?:\+?1[\s.-]*)?\(?({_AREA})\)?[\s.-]*({_EXCHANGE})[\s.-]*(\d{{4}})",
    re.ASCII,
)
_PHONE_STORED = re.compile(
    rf"\(?({_AREA})\)?\s*(?:[.-]\s*)?({_EXCHANGE})\s*(?:[.-]\s*)?(\d{{4}})",
    re.ASCII,
)


def canonical_validation(raw: str) -> str:
    """The validation type under its current REDCap name ('int' → 'integer')."""
    return VALIDATION_ALIASES.get(raw, raw)


def decimals(validation: str) -> int | None:
    """The fixed number of decimal places of number_Ndp, or None."""
    m = re.fullmatch(r"number_(\d)dp", validation)
    return int(m.group(1)) if m else None


def normalize(validation: str | None, raw: str) -> str | None:
    """The value as REDCap stores it, or None when it is not valid for the validation type.

    Participants' harmless variations are accepted and normalized: '+5' → '5', '5.' → '5', '.5' → '0.5',
    '36' for number_1dp → '36.0', '212.555.0100' → '(212) 555-0100'.
    """
    value = raw.strip()
    if not validation:
        return value
    if validation == "integer":
        return str(int(value)) if _INTEGER.fullmatch(value) else None
    if validation in NUMERIC_VALIDATIONS:
        if not _NUMBER.fullmatch(value):
            return None
        sign = "-" if value.startswith("-") else ""
        body = value.lstrip("+-")
        whole, _, frac = body.partition(".")
        whole = whole.lstrip("0") or "0"
        places = decimals(validation)
        if places is not None:
            if len(frac) > places:
                return None
            frac = frac.ljust(places, "0")
        text = f"{whole}.{frac}" if frac else whole
        return text if Decimal(text) == 0 else sign + text
    if validation == "date_ymd":
        if not _DATE.fullmatch(value):
            return None
        try:
            return date.fromisoformat(value).isoformat()
        except ValueError:
            return None
    if validation == "email":
        return value if len(value) <= 254 and _EMAIL.fullmatch(value) else None
    if validation == "phone":
        m = _PHONE_INPUT.fullmatch(value)
        return f"({m.group(1)}) {m.group(2)}-{m.group(3)}" if m else None
    return None


def stored_ok(validation: str | None, value: str) -> bool:
    """Whether REDCap would accept this stored value for the validation type (format only)."""
    if not validation:
        return True
    if validation == "phone":
        return _PHONE_STORED.fullmatch(value) is not None
    if validation == "email":
        return _EMAIL.fullmatch(value) is not None
    return normalize(validation, value) is not None and value == value.strip()


def bound_ok(validation: str | None, bound: str) -> bool:
    """Whether a min/max written in the metadata is meaningful for the validation type."""
    if validation == "integer":
        return _INTEGER.fullmatch(bound) is not None
    if validation in NUMERIC_VALIDATIONS:
        return _NUMBER.fullmatch(bound) is not None
    if validation == "date_ymd":
        return bound == "today" or normalize("date_ymd", bound) is not None
    return False


def _comparable(validation: str, value: str, today: date) -> Decimal | str:
    if validation in NUMERIC_VALIDATIONS:
        return Decimal(value)
    return today.isoformat() if value == "today" else value


def resolve_bound(validation: str, bound: str, today: date) -> str:
    """A bound as shown to people: 'today' becomes today's date."""
    return today.isoformat() if bound == "today" and validation == "date_ymd" else bound


def in_range(validation: str, value: str, low: str | None, high: str | None, today: date) -> bool:
    """Whether a normalized value lies within min/max (numbers as numbers, dates as ISO text)."""
    try:
        v = _comparable(validation, value, today)
        if low and v < _comparable(validation, low, today):  # type: ignore[operator]
            return False
        return not (high and v > _comparable(validation, high, today))  # type: ignore[operator]
    except (InvalidOperation, TypeError):
        return False
