"""A participation's course: ending it (console and roster), and SMS opt-out and opt-in (every channel)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from app import audit
from app.models import ENDED_STATUSES, Participant, PushedVisitStatus, StudyStatus
from app.models.participant import OPT_OUT_SOURCES
from app.participants.links import revoke_links
from app.participants.pending_texts import cancel_pending_texts
from app.participants.visits import cancel_visit
from app.redcap.push.study_statuses import queue_enrollment_status
from app.redcap.push.visit_statuses import queue_status_push

Source = Literal["console", "redcap"]
OptOutSource = Literal["reply", "web", "coordinator", "provider"]

__all__ = [
    "ENDED_STATUSES",
    "OPT_OUT_SOURCES",
    "OptOutSource",
    "Source",
    "cancel_pending_texts",
    "end_participation",
    "opt_in",
    "opt_out",
]


def end_participation(
    participant: Participant,
    status: str,
    now: datetime,
    *,
    source: Source,
    actor: str,
    reason: str | None = None,
) -> int:
    """Record that the participant is withdrawn, deceased or lost, and stop their follow-up at once.

    The same steps, whoever ends it:

    - the participant's `status` becomes `status` (`status_changed_at` = `now` when it changed) and
      `status_source` becomes `source`;
    - every visit not yet final (scheduled or open) is cancelled with the reason "participant <status>",
      its live links are revoked, and its status "withdrawn" is queued for REDCap's contact form (the
      visit-status push; REDCap has no "deceased" or "lost" visit status);
    - every unsent text to the participant is withdrawn (`cancel_pending_texts`): pending reminders,
      manual reminders and replies. Texts already claimed or with the provider keep their status, and
      on-call alerts about the participant are not touched;
    - one audit entry `participant.<status>` (stamped `now`, with `reason`, the previous status and the
      visits and texts cancelled), written whenever the status changed or anything was cancelled.

    What `source` changes, and why:

    - `"console"`: a coordinator recorded it; REDCap does not know yet. The study status is also queued
      for REDCap's enrollment form (`queue_enrollment_status`), and `status_source = "console"` keeps
      the end in place while REDCap still says "active" (`app.redcap.enrollment.console_end_pending`).
      Only "withdrawn" and "deceased" can be pushed there.
    - `"redcap"`: the roster brought it from REDCap, so nothing is pushed back to the enrollment form.

    Calling it again for an ended participant changes nothing more (the roster does, on every changed
    row). State checks that refuse a coordinator's request (already deceased, same status) belong to the
    caller. Adds to the session; the caller commits. Returns how many visits were cancelled.
    """
    if status not in ENDED_STATUSES:
        raise ValueError(f"not an ended study status: {str(status)!r} (one of {', '.join(ENDED_STATUSES)})")
    ended = StudyStatus(status)
    previous = participant.status
    if previous != ended or participant.status_changed_at is None:
        participant.status_changed_at = now
    participant.status = ended
    participant.status_source = source
    if source == "console":
        queue_enrollment_status(participant, ended, now)  # durable: the push pass sends it
    why = f"participant {ended}"
    texts = cancel_pending_texts(participant, reason=why, actor=actor)  # first: counted once, not per visit
    cancelled = 0
    for visit in participant.visits:
        if cancel_visit(visit, why, actor):
            cancelled += 1
            revoke_links(visit, now)
            queue_status_push(visit, PushedVisitStatus.WITHDRAWN, now)
    if previous != ended or cancelled or texts:
        entry = audit.record(
            actor,
            f"participant.{ended}",
            participant=participant,
            reason=reason,
            source=source,
            previous_status=previous,
            visits_cancelled=cancelled,
            texts_cancelled=texts,
        )
        entry.at = now
    return cancelled


def opt_out(
    participant: Participant,
    now: datetime,
    *,
    source: OptOutSource,
    actor: str,
    detail: str | None = None,
) -> bool:
    """Stop texting the participant, however they asked: a STOP/TD reply, the web page, a coordinator
    told by phone, or a provider's opt-out code. The one implementation every channel calls.

    - `opted_out` set, `opted_out_at` = `now`, `opted_out_via` = `source` (a repeat keeps the first);
    - one audit entry `sms.opted_out` (reason `detail`, e.g. the reply's word; `source` in its detail);
    - every unsent text to the participant withdrawn (`cancel_pending_texts`, audited `sms.cancelled`),
      on a repeat too, so a text queued in between is caught.

    REDCap hears of it through the visit-status push: a visit missed while opted out is pushed as
    `opted_out` (`app.redcap.push.queue`). Consent and study status are untouched. Adds to the session; the
    caller commits. Returns whether the participant was opted in before.
    """
    if source not in OPT_OUT_SOURCES:
        raise ValueError(f"unknown opt-out source {source!r} (one of {', '.join(OPT_OUT_SOURCES)})")
    changed = not participant.opted_out
    if changed:
        participant.opted_out = True
        participant.opted_out_at = now
        participant.opted_out_via = source
        entry = audit.record(actor, "sms.opted_out", participant=participant, reason=detail, source=source)
        entry.at = now
    cancel_pending_texts(participant, reason="participant opted out", actor=actor)
    return changed


def opt_in(
    participant: Participant,
    now: datetime,
    *,
    source: OptOutSource,
    actor: str,
    detail: str | None = None,
    **audit_detail: Any,
) -> bool:
    """Allow texts again (START reply, the web page's "Restart text reminders", or a coordinator after the
    participant asked); audited `sms.opted_in`. Consent and study status still apply. Adds to the session;
    the caller commits. Returns whether the participant was opted out before."""
    if source not in OPT_OUT_SOURCES:
        raise ValueError(f"unknown opt-in source {source!r} (one of {', '.join(OPT_OUT_SOURCES)})")
    if not participant.opted_out:
        return False
    previous = participant.opted_out_via
    participant.opted_out = False
    participant.opted_out_at = None
    participant.opted_out_via = None
    entry = audit.record(
        actor,
        "sms.opted_in",
        participant=participant,
        reason=detail,
        source=source,
        opted_out_via=previous,
        **audit_detail,
    )
    entry.at = now
    return True
