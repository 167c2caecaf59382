"""Reading one REDCap enrollment row: normalised values, or the reason (with the record id) it is skipped.

Pure functions of the row and the settings, shared by the roster sync and the Data Entry Trigger re-read.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import phonenumbers

from app.models.participant import LANGUAGES, STUDY_STATUSES, StudyStatus
from app.participants.visits import ScheduleInputError, check_anchor


@dataclass
class RosterRow:
    """One enrollment row, normalised; `problems` are shown to coordinators but do not block the row."""

    record_id: str
    anchor: date
    phone_e164: str | None
    phone_status: str
    phone_error: str | None
    language: str
    status: StudyStatus
    consent: bool
    row_hash: str
    problems: list[str] = field(default_factory=list)


class RowSkipped(ValueError):
    """A row that cannot be applied; the message names the record (or the row) and why."""


def roster_fields(config: Mapping[str, Any]) -> dict[str, str]:
    """The configured roster role → REDCap field map (record_id, discharge_date, phone, …)."""
    fields = dict(config["REDCAP_ROSTER_FIELDS"])
    if not fields.get("record_id"):
        raise RowSkipped("REDCAP_ROSTER_FIELDS: has no 'record_id' entry")
    return {role: name for role, name in fields.items() if name}


def settings_fingerprint(config: Mapping[str, Any]) -> str:
    """The settings that shape a participant from a row: a change to one of them re-applies every row."""
    relevant = {
        key: config.get(key)
        for key in (
            "REDCAP_ROSTER_FIELDS",
            "REDCAP_LANGUAGE_CODES",
            "REDCAP_STATUS_CODES",
            "DEFAULT_PHONE_REGION",
            "VISIT_PLAN",
            "SMS_SEND_WINDOW",
        )
    }
    return json.dumps(relevant, sort_keys=True, default=str)


def row_hash(row: Mapping[str, Any], fields: Mapping[str, str], fingerprint: str) -> str:
    """SHA-256 of the roster values of a row and the settings fingerprint."""
    values = {role: str(row.get(name, "") or "").strip() for role, name in sorted(fields.items())}
    text = json.dumps({"row": values, "settings": fingerprint}, sort_keys=True)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def normalize_phone(raw: str, region: str) -> tuple[str | None, str, str | None]:
    """(E.164 or None, phone_status, reason): 'ok', 'missing' or 'invalid' with why."""
    raw = (raw or "").strip()
    if not raw:
        return None, "missing", "no mobile number in REDCap"
    try:
        number = phonenumbers.parse(raw, region)
    except phonenumbers.NumberParseException as exc:
        return None, "invalid", f"not a phone number ({exc._msg})"
    if not phonenumbers.is_valid_number(number):
        reason = phonenumbers.is_possible_number_with_reason(number)
        why = {
            phonenumbers.ValidationResult.TOO_SHORT: "too short",
            phonenumbers.ValidationResult.TOO_LONG: "too long",
            phonenumbers.ValidationResult.INVALID_COUNTRY_CODE: "unknown country code",
            phonenumbers.ValidationResult.INVALID_LENGTH: "wrong length",
        }.get(reason, f"not a valid number for region {region} or its country code")
        return None, "invalid", f"mobile number is {why}"
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164), "ok", None


def parse_row(
    row: Mapping[str, Any],
    fields: Mapping[str, str],
    config: Mapping[str, Any],
    today: date,
    fingerprint: str,
    position: int,
) -> RosterRow:
    """Check and normalise one exported row; raises RowSkipped naming the record when it cannot be used."""

    def value(role: str) -> str:
        name = fields.get(role)
        return str(row.get(name, "") or "").strip() if name else ""

    record_id = value("record_id")
    if not record_id:
        raise RowSkipped(f"row {position}: no record_id")
    raw_anchor = value("discharge_date")
    anchor: date | None = None
    if raw_anchor:
        try:
            anchor = date.fromisoformat(raw_anchor)
        except ValueError:
            raise RowSkipped(f"record {record_id}: discharge date {raw_anchor!r} is not YYYY-MM-DD") from None
    try:
        anchor = check_anchor(record_id, anchor, today)
    except ScheduleInputError as exc:
        raise RowSkipped(str(exc)) from None
    problems: list[str] = []
    raw_status = value("status")
    status_codes = config["REDCAP_STATUS_CODES"]
    if not raw_status:
        status = StudyStatus.ACTIVE
        problems.append("study status blank in REDCap (treated as active)")
    elif raw_status in status_codes and status_codes[raw_status] in STUDY_STATUSES:
        status = StudyStatus(status_codes[raw_status])
    else:
        raise RowSkipped(f"record {record_id}: unknown study status code {raw_status!r}")
    raw_language = value("language")
    language = config["REDCAP_LANGUAGE_CODES"].get(raw_language)
    if language not in LANGUAGES:
        if raw_language:
            problems.append(f"unknown language code {raw_language!r} (using en)")
        language = "en"
    phone, phone_status, phone_error = normalize_phone(value("phone"), config["DEFAULT_PHONE_REGION"])
    if phone_error:
        problems.append(phone_error)
    consent = value("consent") == "1"
    return RosterRow(
        record_id=record_id,
        anchor=anchor,
        phone_e164=phone,
        phone_status=phone_status,
        phone_error=phone_error,
        language=language,
        status=status,
        consent=consent,
        row_hash=row_hash(row, fields, fingerprint),
        problems=problems,
    )
