"""The coordinators' actions as plain domain functions: state checked first, then changed and audited.

Each function either changes the database and records who, when and why, or raises an
`ActionRefused` with a message for the coordinator and changes nothing. The caller commits
on success and rolls back on refusal. Views, tests and (later) CLI commands call these.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from flask_babel import gettext as _
from sqlalchemy import func, select

from app import audit
from app.console.labels import status_label
from app.extensions import db
from app.models import (
    AuditEntry,
    InboundMessage,
    Participant,
    PushedVisitStatus,
    RedcapStatusPush,
    StudyStatus,
    Submission,
    SyncStatus,
    Visit,
    VisitStatus,
)
from app.models.redcap_sync import PUSHED_STUDY_STATUSES
from app.participants import lifecycle, links
from app.participants.pending_texts import cancel_pending_texts
from app.participants.visits import complete_visit, reopen_visit
from app.redcap.push.submissions import retry_submission as requeue_submission
from app.redcap.push.visit_statuses import queue_status_push
from app.schedule import SendWindow
from app.sms.planner import queue_manual_reminder

MANUAL_TEXT_ACTIONS = ("visit.reminder_requested", "visit.link_resent")


class ActionRefused(Exception):
    """The action cannot be done in the current state; `message` says why, `status` is the HTTP code."""

    status = 409

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


class NeedsConfirmation(ActionRefused):
    """Outside the participant's daytime hours: allowed only when the coordinator confirms."""


class TooSoon(ActionRefused):
    """A manual text was sent to this participant too recently."""

    status = 429


def _audit(now: datetime, actor: str, action: str, **kwargs: Any) -> AuditEntry:
    """An audit entry stamped with the action's own `now` (time is an input, also in the log)."""
    entry = audit.record(actor, action, **kwargs)
    entry.at = now
    return entry


# --- texts ------------------------------------------------------------------------------------


def _check_textable(visit: Visit, now: datetime) -> None:
    participant = visit.participant
    if visit.status != VisitStatus.OPEN or not visit.is_open_at(now):
        raise ActionRefused(
            _(
                "The %(visit)s visit is %(status)s, not open: no link can be sent.",
                visit=visit.visit_key,
                status=status_label(visit.status),
            )
        )
    block = participant.sms_block_reason()
    if block:
        raise ActionRefused(
            _("Participant %(id)s cannot be texted: %(why)s.", id=participant.record_id, why=block)
        )


def _check_rate(participant: Participant, now: datetime, interval_minutes: int) -> None:
    since = now - timedelta(minutes=interval_minutes)
    last = db.session.scalar(
        select(func.max(AuditEntry.at)).where(
            AuditEntry.participant_id == participant.id,
            AuditEntry.action.in_(MANUAL_TEXT_ACTIONS),
            AuditEntry.at > since,
        )
    )
    if last is not None:
        allowed = last + timedelta(minutes=interval_minutes)
        raise TooSoon(
            _(
                "A text was already requested for %(id)s at %(at)s UTC; the next one is allowed from "
                "%(next)s UTC.",
                id=participant.record_id,
                at=f"{last:%Y-%m-%d %H:%M}",
                next=f"{allowed:%H:%M}",
            )
        )


def _check_window(participant: Participant, window: SendWindow, now: datetime, confirmed: bool) -> bool:
    local = now.astimezone(ZoneInfo(participant.timezone))
    outside = not window.contains(local.time())
    if outside and not confirmed:
        raise NeedsConfirmation(
            _(
                "It is %(time)s for the participant, outside the send window %(window)s. "
                "Tick the confirmation box to send anyway.",
                time=f"{local:%H:%M}",
                window=str(window),
            )
        )
    return outside


def _queue_text(visit: Visit, now: datetime, actor: str, outside: bool) -> None:
    try:
        queue_manual_reminder(visit, now, actor, outside_window_confirmed=outside)
    except ValueError as exc:  # the SMS engine's own refusal, in its words
        raise ActionRefused(str(exc)) from None


def send_reminder_now(
    visit: Visit,
    now: datetime,
    actor: str,
    reason: str,
    window: SendWindow,
    interval_minutes: int,
    outside_window_confirmed: bool = False,
) -> None:
    """Text the visit's link now: open visit, textable participant, inside daytime hours or confirmed."""
    participant = visit.participant
    _check_textable(visit, now)
    _check_rate(participant, now, interval_minutes)
    outside = _check_window(participant, window, now, outside_window_confirmed)
    _queue_text(visit, now, actor, outside)
    _audit(now, actor, "visit.reminder_requested", visit=visit, reason=reason, outside_window=outside)


def resend_link(
    visit: Visit,
    now: datetime,
    actor: str,
    reason: str,
    window: SendWindow,
    interval_minutes: int,
    outside_window_confirmed: bool = False,
) -> int:
    """After a new phone number: revoke the links sent to the old one and text a new link. Returns revoked."""
    participant = visit.participant
    _check_textable(visit, now)
    _check_rate(participant, now, interval_minutes)
    outside = _check_window(participant, window, now, outside_window_confirmed)
    revoked = links.revoke_links(visit, now)
    _queue_text(visit, now, actor, outside)
    _audit(
        now,
        actor,
        "visit.link_resent",
        visit=visit,
        reason=reason,
        links_revoked=revoked,
        outside_window=outside,
    )
    return revoked


# --- visits -----------------------------------------------------------------------------------


def mark_done_in_clinic(visit: Visit, now: datetime, actor: str, reason: str) -> bool:
    """The visit was done in clinic: complete it, stop its texts and links, push the status to REDCap."""
    if visit.status == VisitStatus.COMPLETED:
        when = f"{visit.completed_at:%Y-%m-%d}" if visit.completed_at else "?"
        raise ActionRefused(
            _(
                "The %(visit)s visit is already completed (%(via)s, %(when)s).",
                visit=visit.visit_key,
                via=visit.completed_via or "?",
                when=when,
            )
        )
    if visit.status == VisitStatus.CANCELLED:
        raise ActionRefused(
            _("The %(visit)s visit is cancelled; it cannot be marked done.", visit=visit.visit_key)
        )
    complete_visit(visit, "clinic", now, actor, reason=reason)
    links.revoke_links(visit, now)
    cancel_pending_texts(visit=visit, reason="visit completed in clinic", actor=actor)
    queue_status_push(visit, PushedVisitStatus.COMPLETED, now)
    return True


def reopen_missed_visit(visit: Visit, days: int, now: datetime, actor: str, reason: str) -> None:
    """Give a missed visit a new window of `days` days; the participant must still be active."""
    if visit.status != VisitStatus.MISSED:
        raise ActionRefused(
            _(
                "Only a missed visit can be reopened; the %(visit)s visit is %(status)s.",
                visit=visit.visit_key,
                status=status_label(visit.status),
            )
        )
    if visit.participant.status != StudyStatus.ACTIVE:
        raise ActionRefused(
            _(
                "Participant %(id)s is %(status)s.",
                id=visit.participant.record_id,
                status=status_label(visit.participant.status),
            )
        )
    if not 1 <= days <= 60:
        raise ActionRefused(_("The new window must be between 1 and 60 days."))
    reopen_visit(visit, days, now, actor, reason=reason)


# --- submissions ------------------------------------------------------------------------------


def acknowledge_red_flag(submission: Submission, note: str, now: datetime, actor: str) -> None:
    """Record that a person has seen and acted on a red flag, with their note."""
    if not submission.red_flag:
        raise ActionRefused(_("This submission has no red flag."))
    if submission.red_flag_acknowledged_at is not None:
        raise ActionRefused(
            _(
                "This red flag was already acknowledged at %(at)s UTC.",
                at=f"{submission.red_flag_acknowledged_at:%Y-%m-%d %H:%M}",
            )
        )
    submission.red_flag_acknowledged_at = now
    submission.red_flag_acknowledged_by = actor
    submission.red_flag_note = note
    _audit(
        now, actor, "redflag.acknowledged", visit=submission.visit, reason=note, submission_id=submission.id
    )


def retry_push(submission: Submission, now: datetime, actor: str, reason: str) -> None:
    """Queue a push that REDCap refused once more (after the data or the project was fixed)."""
    if submission.sync_status != SyncStatus.FAILED:
        raise ActionRefused(
            _(
                "Only a failed push can be retried; this one is %(status)s.",
                status=status_label(submission.sync_status),
            )
        )
    requeue_submission(submission, now, actor=actor, reason=reason)


def retry_status_push(row: RedcapStatusPush, now: datetime, actor: str, reason: str) -> None:
    """Queue a visit status that REDCap refused once more (after the project was fixed)."""
    if row.sync_status != SyncStatus.FAILED:
        raise ActionRefused(
            _(
                "Only a failed status push can be retried; this one is %(status)s.",
                status=status_label(row.sync_status),
            )
        )
    previous_error = (row.last_error or "")[:300]
    row.requeue(now)  # a retry, not a new queueing (`queue_anew`): queued_at is kept
    _audit(
        now,
        actor,
        "redcap.status_push_retried",
        visit=row.visit,
        reason=reason,
        status=row.status,
        previous_error=previous_error,
    )


# --- participants -----------------------------------------------------------------------------


def end_participation(participant: Participant, status: str, now: datetime, actor: str, reason: str) -> int:
    """Withdraw a participant or record a death, after the console's own checks; returns visits cancelled.

    What ending does is `app.participants.lifecycle.end_participation` (the roster calls it too); from
    the console it also queues the study status for REDCap's enrollment form, so a roster sync cannot
    undo it.
    """
    if status not in PUSHED_STUDY_STATUSES:  # the ends the console records (and REDCap can hold)
        raise ActionRefused(_("Unknown status %(status)s.", status=repr(str(status))))
    if participant.status == StudyStatus.DECEASED:
        raise ActionRefused(
            _("Participant %(id)s is already recorded as deceased.", id=participant.record_id)
        )
    if participant.status == status:
        raise ActionRefused(
            _(
                "Participant %(id)s is already %(status)s.",
                id=participant.record_id,
                status=status_label(status),
            )
        )
    return lifecycle.end_participation(participant, status, now, source="console", actor=actor, reason=reason)


def start_message_after_opt_out(participant: Participant) -> InboundMessage | None:
    """The participant's START text received after they opted out, if any."""
    query = select(InboundMessage).where(
        InboundMessage.participant_id == participant.id, InboundMessage.keyword == "start"
    )
    if participant.opted_out_at is not None:
        query = query.where(InboundMessage.received_at > participant.opted_out_at)
    return db.session.scalar(query.order_by(InboundMessage.received_at.desc()).limit(1))


def opt_back_in(participant: Participant, now: datetime, actor: str, reason: str) -> None:
    """Allow texts again, only for a participant who opted out and has since texted START, or whose
    opt-out a coordinator recorded (the participant asked the team; they ask it again to undo it)."""
    if not participant.opted_out:
        raise ActionRefused(_("Participant %(id)s is not opted out.", id=participant.record_id))
    start = start_message_after_opt_out(participant)
    if start is None and participant.opted_out_via == "coordinator":
        lifecycle.opt_in(participant, now, source="coordinator", actor=actor, detail=reason)
        return
    if start is None:
        raise ActionRefused(
            _(
                "Participant %(id)s has not texted START since opting out; only the participant can "
                "opt back in.",
                id=participant.record_id,
            )
        )
    lifecycle.opt_in(
        participant, now, source="coordinator", actor=actor, detail=reason, inbound_message_id=start.id
    )


def opt_out_of_texts(participant: Participant, now: datetime, actor: str, reason: str) -> None:
    """Stop texting a participant who asked the study team (by phone, in clinic): the same opt-out as a
    STOP reply or the web page, recorded as arriving through a coordinator."""
    if participant.opted_out:
        raise ActionRefused(_("Participant %(id)s is already opted out.", id=participant.record_id))
    lifecycle.opt_out(participant, now, source="coordinator", actor=actor, detail=reason)
