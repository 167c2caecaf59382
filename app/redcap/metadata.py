"""Metadata refresh: REDCap's questionnaire definition stored as a new version, and the project checked.

Before anything is stored, the configured events are checked against REDCap's (an unknown event name
in configuration is a clear error, not a stream of rejected imports later) and the questionnaire and contact
instruments must be designated for every visit event. The questionnaire core's `save_metadata` parses
first and stores only what parses, so a bad refresh leaves the last good version current.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from flask import current_app

from app.extensions import db
from app.models import SystemState
from app.redcap.client import RedcapClient, get_client
from app.redcap.state import CONTACT_STATE_KEY, PROJECT_STATE_KEY, note_redcap_error
from app.schedule.study_plan import visit_plan


class RefreshError(ValueError):
    """The REDCap project does not match the configuration; the message names the setting or field."""


@dataclass
class RefreshResult:
    """What a refresh stored: the questionnaire version and whether it changed; warnings for the operator."""

    instrument: str
    version_hash: str
    is_new: bool
    fields: int
    contact_fields: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def summary(self) -> str:
        state = "new version stored" if self.is_new else "unchanged"
        line = (
            f"metadata refresh: {self.instrument} {state} ({self.fields} fields, version "
            f"{self.version_hash[:12]}); contact fields {', '.join(self.contact_fields) or 'none'}"
        )
        return line + "".join(f"; warning: {w}" for w in self.warnings)


def check_events(client: RedcapClient, config: Mapping[str, Any]) -> list[str]:
    """Raise RefreshError for an unknown configured event or an undesignated instrument; else warnings."""
    events = [str(e.get("unique_event_name", "")) for e in client.export_events()]
    known = set(events)
    wanted: list[tuple[str, str]] = [("REDCAP_ENROLLMENT_EVENT", config["REDCAP_ENROLLMENT_EVENT"])]
    wanted += [(f"VISIT_PLAN visit {spec.key!r}", spec.event_name) for spec in visit_plan().visits]
    for setting, event in wanted:
        if event not in known:
            raise RefreshError(
                f"{setting}: event {event!r} does not exist in REDCap "
                f"(its events: {', '.join(events) or 'none'})"
            )
    designated = {
        (str(m.get("unique_event_name")), str(m.get("form"))) for m in client.export_form_event_mapping()
    }
    questionnaire = config["REDCAP_QUESTIONNAIRE_INSTRUMENT"]
    contact = config.get("REDCAP_CONTACT_INSTRUMENT")
    for spec in visit_plan().visits:
        for setting, form in (
            ("REDCAP_QUESTIONNAIRE_INSTRUMENT", questionnaire),
            ("REDCAP_CONTACT_INSTRUMENT", contact),
        ):
            if form and (spec.event_name, form) not in designated:
                raise RefreshError(
                    f"{setting}: instrument {form!r} is not designated for event {spec.event_name!r} "
                    "in REDCap "
                    "(Project Setup > Designate instruments for my events)"
                )
    warnings = []
    enrollment = config.get("REDCAP_ENROLLMENT_INSTRUMENT")
    if enrollment and (config["REDCAP_ENROLLMENT_EVENT"], enrollment) not in designated:
        warnings.append(
            f"instrument {enrollment!r} is not designated for event {config['REDCAP_ENROLLMENT_EVENT']!r}"
        )
    return warnings


def refresh_metadata(now: datetime, *, client: RedcapClient | None = None) -> RefreshResult:
    """Fetch and store the questionnaire's metadata and the contact instrument's field list; commits.

    Raises RefreshError (configuration vs. project), the questionnaire core's MetadataError (naming the
    field), or the client's exceptions; in each case nothing is stored.
    """
    from app.questionnaire.store import save_metadata

    config = current_app.config
    client = client or get_client()
    questionnaire = config["REDCAP_QUESTIONNAIRE_INSTRUMENT"]
    contact = config.get("REDCAP_CONTACT_INSTRUMENT") or ""
    longitudinal = client.is_longitudinal()
    warnings = check_events(client, config) if longitudinal else []
    rows = client.export_metadata(forms=[f for f in (questionnaire, contact) if f])
    forbidden = {f.lower() for f in config.get("REDCAP_FORBIDDEN_FIELDS") or []}
    for row in rows:
        name = str(row.get("field_name", ""))
        if name.lower() in forbidden:
            raise RefreshError(
                f"{name}: forbidden field found on instrument {row.get('form_name')!r}; the service exports "
                "that instrument's data and must never receive this field"
            )
    if not any(row.get("form_name") == questionnaire for row in rows):
        raise RefreshError(
            f"REDCAP_QUESTIONNAIRE_INSTRUMENT: instrument {questionnaire!r} "
            "has no fields in REDCap's metadata"
        )
    contact_fields = {
        str(r["field_name"]): str(r.get("text_validation_type_or_show_slider_number") or "")
        for r in rows
        if contact and r.get("form_name") == contact and r.get("field_type") != "descriptive"
    }
    if contact and not contact_fields:
        raise RefreshError(
            f"REDCAP_CONTACT_INSTRUMENT: instrument {contact!r} has no fields in REDCap's metadata"
        )
    configured = {role: name for role, name in (config.get("REDCAP_CONTACT_FIELDS") or {}).items() if name}
    for role, name in configured.items():
        if contact and name not in contact_fields:
            warnings.append(f"REDCAP_CONTACT_FIELDS {role}: field {name!r} is not on instrument {contact!r}")
    version = save_metadata(
        rows, questionnaire, now
    )  # commits, or raises MetadataError having written nothing
    SystemState.write(CONTACT_STATE_KEY, contact_fields if contact else None)
    SystemState.write(PROJECT_STATE_KEY, {"longitudinal": longitudinal})
    db.session.commit()
    return RefreshResult(
        instrument=questionnaire,
        version_hash=version.version_hash,
        is_new=bool(getattr(version, "is_new", False)),
        fields=len(version.fields or []),
        contact_fields=sorted(contact_fields),
        warnings=warnings,
    )


def metadata_step(now: datetime) -> dict[str, Any]:
    """Tick step "metadata": refresh the questionnaire definition; skipped without a REDCap token."""
    if not current_app.config.get("REDCAP_API_TOKEN"):
        return {"skipped": 1}
    from app.redcap.client import RedcapClientError

    try:
        result = refresh_metadata(now)
    except RedcapClientError:
        db.session.rollback()
        note_redcap_error(now)
        db.session.commit()
        raise
    return {"new_version": int(result.is_new)}
