"""Send-time freshness: never text on stale REDCap facts.

Just before a reminder goes out, the SMS sender re-reads the participant and the visit from the
database. Where that participant's last roster sync is older than ROSTER_MAX_AGE_HOURS, the record
is first re-read from REDCap (enrollment and follow-up status, one export) and applied; if REDCap
cannot be reached, the text waits for the next pass instead of going out on old facts.

`app.sms.checks.decide` calls `freshness_check` by name as its last check.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from flask import current_app

from app.models import OutboundMessage, Participant, Visit
from app.redcap.exports import RedcapClientError
from app.redcap.failure_pause import note_failure, recently_failed
from app.redcap.rereads import reread_record
from app.sms.decisions import Decision

log = logging.getLogger(__name__)

CHECKED_KINDS = ("reminder", "manual")  # texts that invite to a visit; replies to STOP/HELP always go


def is_stale(participant: Participant, now: datetime) -> bool:
    """Whether the participant's REDCap facts are older than ROSTER_MAX_AGE_HOURS (or were never synced)."""
    synced = participant.roster_synced_at
    if synced is None:
        return True
    max_age = timedelta(hours=float(current_app.config["ROSTER_MAX_AGE_HOURS"]))
    return now - synced > max_age


def ensure_fresh(participant: Participant, now: datetime) -> bool:
    """Re-read the participant's record from REDCap if their facts are stale; False if REDCap is unreachable.

    Commits what the re-read changed (status, consent, visits completed in REDCap…); a record REDCap
    no longer has changes nothing here and counts as checked.
    """
    if not is_stale(participant, now):
        return True
    if recently_failed():
        return False
    try:
        found = reread_record(participant.record_id, now)
    except RedcapClientError as exc:
        note_failure()
        log.warning(
            "record %s: REDCap re-read before sending failed (%s); text waits", participant.record_id, exc
        )
        return False
    if not found:
        log.warning("record %s: not in REDCap at send time; nothing changed here", participant.record_id)
    return True


def freshness_check(
    msg: OutboundMessage, participant: Participant | None, visit: Visit | None, now: datetime
) -> Decision | None:
    """The SMS sender's extra send-time check: refresh stale facts, then re-check them."""
    if msg.kind not in CHECKED_KINDS or participant is None:
        return None
    if not current_app.config.get("REDCAP_API_TOKEN"):
        return None  # no REDCap configured (demo, unit tests): there is nothing to re-read from
    if not is_stale(participant, now):
        return None
    if not ensure_fresh(participant, now):
        return Decision("defer", "REDCap unreachable: roster facts too old to send on; next pass")
    reason = participant.sms_block_reason()
    if reason:
        return Decision("skip", f"blocked at send time after REDCap re-read: {reason}")
    if visit is not None and visit.is_final:
        where = f" ({visit.completed_via})" if visit.completed_via else ""
        return Decision("skip", f"stale: visit {visit.status}{where} after REDCap re-read")
    return None
