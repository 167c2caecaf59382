"""Ending a participation: the one function the console and REDCap's roster both call."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from app import audit
from app.models import ENDED_STATUSES, Participant
from app.participants.links import revoke_links
from app.participants.pending_texts import cancel_pending_texts
from app.participants.visits import cancel_visit
from app.redcap.push.study_statuses import queue_enrollment_status
from app.redcap.push.visit_statuses import queue_status_push

Source = Literal["console", "redcap"]

__all__ = [
    "ENDED_STATUSES",
    "Source",
    "cancel_pending_texts",
    "end_participation",
    "opt_back_in_by_coordinator",
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
        raise ValueError(f"not an ended study status: {status!r} (one of {', '.join(ENDED_STATUSES)})")
    previous = participant.status
    if previous != status or participant.status_changed_at is None:
        participant.status_changed_at = now
    participant.status = status
    participant.status_source = source
    if source == "console":
        queue_enrollment_status(participant, status, now)  # durable: the push pass sends it
    why = f"participant {status}"
    texts = cancel_pending_texts(participant, reason=why, actor=actor)  # first: counted once, not per visit
    cancelled = 0
    for visit in participant.visits:
        if cancel_visit(visit, why, actor):
            cancelled += 1
            revoke_links(visit, now)
            queue_status_push(visit, "withdrawn", now)
    if previous != status or cancelled or texts:
        entry = audit.record(
            actor,
            f"participant.{status}",
            participant=participant,
            reason=reason,
            source=source,
            previous_status=previous,
            visits_cancelled=cancelled,
            texts_cancelled=texts,
        )
        entry.at = now
    return cancelled


def opt_out(people: list[Participant], now: datetime, actor: str, source: str) -> None:
    """Stop texting these participants (STOP, or the provider's 21610): audited, pending texts withdrawn."""
    for person in people:
        if not person.opted_out:
            person.opted_out = True
            person.opted_out_at = now
            audit.record(actor, "sms.opted_out", participant=person, reason=source)
        cancel_pending_texts(person, reason="participant opted out", actor=actor)


def opt_in(people: list[Participant], now: datetime) -> None:
    """Texts allowed again after the participant's START (audited); consent and study status still apply."""
    for person in people:
        if person.opted_out:
            person.opted_out = False
            person.opted_out_at = None
            audit.record("participant:sms", "sms.opted_in", participant=person)


def opt_back_in_by_coordinator(participant: Participant, now: datetime, actor: str, **details: object):
    """A coordinator allows texts again for a participant who texted START (the console's checks first).

    Unlike the participant's own START, the time of the opt-out is kept for the record. Returns the
    audit entry, stamped with `now`.
    """
    participant.opted_out = False
    entry = audit.record(actor, "participant.opted_in", participant=participant, **details)
    entry.at = now
    return entry
