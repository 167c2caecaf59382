"""Thin adapters over the SMS engine, the REDCap bridge and the questionnaire core.

Those areas are built alongside the console; these functions call their agreed interfaces and,
where one is not installed, either do the plainly defined part themselves (cancel pending texts,
re-queue a failed push, read labels from the stored metadata) or refuse with a clear message.
"""

from __future__ import annotations

import importlib
import logging
from datetime import datetime
from typing import Any

from sqlalchemy import select, update

from app import audit
from app.extensions import db
from app.models import InstrumentVersion, OutboundMessage, Participant, Submission, Visit

log = logging.getLogger(__name__)


class Unavailable(RuntimeError):
    """A collaborating area needed for this action is not installed; the message says which."""


def _optional(module: str, name: str) -> Any | None:
    try:
        return getattr(importlib.import_module(module), name, None)
    except ImportError:
        return None


# --- SMS engine -------------------------------------------------------------------------------


def queue_manual_reminder(visit: Visit, now: datetime, actor: str, outside_window_confirmed: bool) -> Any:
    """Ask the SMS engine to text the visit's link now (it issues the link and applies its own checks)."""
    planner = _optional("app.sms.planner", "queue_manual_reminder")
    if planner is None:
        raise Unavailable("the SMS engine (app.sms.planner) is not installed, so no text can be queued")
    return planner(visit, now, actor, outside_window_confirmed=outside_window_confirmed)


def cancel_pending(
    *, participant: Participant | None = None, visit: Visit | None = None, reason: str, actor: str
) -> int:
    """Withdraw every pending text of a participant or visit; the SMS engine's version when installed."""
    engine = _optional("app.sms.planner", "cancel_pending")
    if engine is not None:
        result = engine(participant=participant, visit=visit, reason=reason, actor=actor)
        return int(result or 0)
    query = update(OutboundMessage).where(OutboundMessage.status == "pending")
    if participant is not None:
        query = query.where(OutboundMessage.participant_id == participant.id)
    if visit is not None:
        query = query.where(OutboundMessage.visit_id == visit.id)
    result = db.session.execute(query.values(status="cancelled", error_message=reason[:500]))
    return result.rowcount or 0


def sms_engine_installed() -> bool:
    """Whether manual reminders can be queued (shown in the page so no one clicks in vain)."""
    return _optional("app.sms.planner", "queue_manual_reminder") is not None


# --- REDCap bridge ----------------------------------------------------------------------------


def queue_status_push(visit: Visit, status: str, now: datetime) -> bool:
    """Queue the visit's status (completed, withdrawn…) for REDCap's contact form. False if no bridge."""
    push = _optional("app.redcap_push", "queue_status_push")
    if push is None:
        log.warning("REDCap status push for visit %s not queued: app.redcap_push is not installed", visit.id)
        return False
    push(visit, status, now)
    return True


def retry_submission(submission: Submission, now: datetime, actor: str, reason: str) -> None:
    """Put a failed push back in the queue: pending, due now, audited (the bridge's version if it has one)."""
    bridge = _optional("app.redcap_push", "retry_submission")
    if bridge is not None:
        bridge(submission, now, actor=actor, reason=reason)
        return
    submission.sync_status = "pending"
    submission.next_attempt_at = now
    audit.record(
        actor,
        "redcap.push_retried",
        visit=submission.visit,
        reason=reason,
        submission_id=submission.id,
        previous_error=(submission.last_error or "")[:300],
    )


# --- questionnaire core -----------------------------------------------------------------------


def _metadata_fields(submission: Submission) -> list[dict[str, Any]]:
    version = submission.instrument_version
    if version is None:
        version = db.session.scalar(select(InstrumentVersion).where(InstrumentVersion.is_current.is_(True)))
    return list(version.fields) if version is not None else []


def _parse_choices(text: str | None) -> dict[str, str]:
    """REDCap's "1, Yes | 0, No" choice text as {code: label}."""
    choices: dict[str, str] = {}
    for part in (text or "").split("|"):
        code, sep, label = part.partition(",")
        if sep:
            choices[code.strip()] = label.strip()
    return choices


def answer_rows(submission: Submission, language: str) -> list[dict[str, str]]:
    """The submission's answers as (question, answer) rows, labelled from the REDCap metadata.

    Uses the questionnaire core's translations when installed; otherwise REDCap's own labels.
    Fields not in the metadata are shown by their raw name, so nothing is ever hidden.
    """
    field_label = _optional("app.questionnaire.translations", "field_label")
    choice_label = _optional("app.questionnaire.translations", "choice_label")
    fields = {f.get("field_name"): f for f in _metadata_fields(submission) if f.get("field_name")}
    answers = dict(submission.answers or {})
    rows: list[dict[str, str]] = []
    done: set[str] = set()
    for name, meta in fields.items():
        kind = meta.get("field_type")
        choices = _parse_choices(meta.get("select_choices_or_calculations"))
        if kind == "yesno":
            choices = {"1": "Yes", "0": "No"}
        elif kind == "truefalse":
            choices = {"1": "True", "0": "False"}
        label = _label(field_label, meta, name, language)
        if kind == "checkbox":
            ticked = []
            for code, text in choices.items():
                key = f"{name}___{code}"
                done.add(key)
                if str(answers.get(key, "")) == "1":
                    ticked.append(_choice(choice_label, meta, name, code, text, language))
            if any(f"{name}___{code}" in answers for code in choices):
                rows.append({"field": name, "label": label, "value": ", ".join(ticked) or "—"})
            continue
        if name not in answers:
            continue
        done.add(name)
        raw = "" if answers[name] is None else str(answers[name])
        value = _choice(choice_label, meta, name, raw, choices[raw], language) if raw in choices else raw
        rows.append({"field": name, "label": label, "value": value})
    for name in sorted(set(answers) - done):
        rows.append({"field": name, "label": name, "value": str(answers[name])})
    return rows


def _label(field_label: Any, meta: dict[str, Any], name: str, language: str) -> str:
    if field_label is not None:
        try:
            return str(field_label(meta, language))
        except Exception:  # an interface mismatch must not hide the answers
            log.debug("field_label failed for %s", name)
    return str(meta.get("field_label") or name)


def _choice(choice_label: Any, meta: dict[str, Any], name: str, code: str, text: str, language: str) -> str:
    if choice_label is not None:
        try:
            return str(choice_label(meta, code, language))
        except Exception:
            log.debug("choice_label failed for %s", name)
    return f"{text} ({code})"
