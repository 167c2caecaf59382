"""Thin adapters over the SMS engine, the REDCap bridge and the questionnaire core.

Those areas are built alongside the console; these functions call their agreed interfaces and,
where one is not installed, either do the plainly defined part themselves (re-queue a failed push,
read labels from the stored metadata) or refuse with a clear message. Withdrawing pending texts is not
here: the console calls `app.participants.pending_texts.cancel_pending_texts`, the one rule for it.
"""

from __future__ import annotations

import importlib
import logging
from datetime import datetime
from typing import Any

from flask import current_app

from app import audit
from app.models import Submission, Visit

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


def _definition(submission: Submission) -> Any | None:
    """The questionnaire definition the submission answered (else the current one), if known."""
    store = _optional("app.questionnaire.store", "definition_for_version")
    current = _optional("app.questionnaire.store", "current_definition")
    if store is None or current is None:
        return None
    if submission.instrument_version_id is not None:
        found = store(submission.instrument_version_id)
        if found is not None:
            return found
    return current(current_app.config["REDCAP_QUESTIONNAIRE_INSTRUMENT"])


def answer_rows(submission: Submission, language: str) -> list[dict[str, str]]:
    """The submission's answers as (question, answer) rows, labelled from the REDCap metadata.

    Labels and choice texts come from the questionnaire core in the reader's language; a choice
    also shows its raw REDCap code. Columns not in the metadata are shown by their raw name, so
    nothing stored is ever hidden from coordinators.
    """
    from app.questionnaire.translations import choice_label, field_label

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
