"""The push to REDCap: accepted submissions and visit statuses, in batches, losing nothing.

The queues live in the database (`Submission.sync_status`, `RedcapStatusPush` for missed, opted-out
and withdrawn visits, `RedcapEnrollmentStatusPush` for console withdrawals and deaths), so a crash or an
outage only delays a push. A pass streams due rows by id (keyset
pagination, constant memory), checks every submission against the stored metadata, and imports a batch per
call with `returnContent=ids`. REDCap unavailable: the batch stays queued with exponential backoff and
jitter. REDCap rejects a batch (HTTP 400): the batch is split in halves until the bad record is alone; the
good ones land, the bad one is marked failed with REDCap's text for coordinators and is not retried on its
own. Imports use overwriteBehavior=normal with the same values every time, so a second push changes nothing.
Answers, REDCap's error texts (which may quote a value) and the token are never logged.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

from flask import current_app
from sqlalchemy import select
from sqlalchemy.orm import joinedload

from app.extensions import db
from app.models import Participant, Submission, SystemState, Visit
from app.redcap.client import (
    RedcapAuthError,
    RedcapClient,
    RedcapUnavailable,
    get_client,
)
from app.redcap.conflicts import pre_push_check
from app.redcap.push.pipeline import ImportPipeline, retrying, row_key, split_rejected
from app.redcap.push.queue import PassContext, PushItem, PushQueue, PushReport
from app.redcap.push.study_statuses import EnrollmentStatusQueue
from app.redcap.push.submissions import SubmissionQueue
from app.redcap.push.visit_statuses import StatusQueue, enqueue_missed_visits
from app.redcap.state import CONTACT_STATE_KEY, PROJECT_STATE_KEY, note_redcap_error

log = logging.getLogger(__name__)

# Rows screened together: one checking export (the conflict check, or a status queue's read of REDCap's
# own statuses) covers this many records, as before (20 batches of 100); their imports then go out in
# batches of REDCAP_BATCH_SIZE.
SCREEN_RECORDS = 2000

# ---------------------------------------------------------------- a pass

PrePushCheck = Callable[[list[PushItem], RedcapClient, datetime], set[int]]
# Checks that hold submissions back before import, named here so the rule is on whenever the push runs:
# the conflict check never lets a push overwrite answers staff entered in REDCap.
_PRE_PUSH_CHECKS: list[PrePushCheck] = [pre_push_check]


def push_pending(
    now: datetime,
    *,
    client: RedcapClient | None = None,
    batch_size: int | None = None,
    retry_now: bool = False,
    attempts_per_pass: int = 3,
    max_batches: int | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> PushReport:
    """One push pass over the three queues; stops at the first outage. Commits per batch."""
    config = current_app.config
    report = PushReport()
    report.missed_queued = enqueue_missed_visits(now)
    db.session.commit()
    client = client or get_client()
    ctx = PassContext(client, now, config, max(1, attempts_per_pass), sleep, report)
    project = SystemState.read(PROJECT_STATE_KEY) or {}
    ctx.longitudinal = bool(project.get("longitudinal", True))
    contact = SystemState.read(CONTACT_STATE_KEY)
    ctx.contact_fields = contact if isinstance(contact, dict) else None
    size = batch_size or int(config["REDCAP_BATCH_SIZE"])
    calls_before = client.calls
    try:
        _run_queue(ctx, SubmissionQueue(ctx, retry_now), size, max_batches)
        _run_queue(ctx, EnrollmentStatusQueue(ctx, retry_now), size, max_batches)  # few rows, most urgent
        _run_queue(ctx, StatusQueue(ctx, retry_now), size, max_batches)
    except (RedcapUnavailable, RedcapAuthError) as exc:
        report.unavailable = str(exc)
        note_redcap_error(now)
        db.session.commit()
    report.calls = client.calls - calls_before
    return report


def _run_queue(ctx: PassContext, queue: PushQueue, size: int, max_batches: int | None) -> None:
    """Drain one queue: windows read and screened on this thread, their batches imported by the pipeline.

    The pass reads and screens at most one window ahead of the imports, and never screens a row whose
    record-event an import still in flight writes to (its check must see that import). All of a queue's
    imports are recorded before the next queue starts (the status queues read what the submissions wrote).
    """
    window = _window(size)
    last_id = 0
    with ImportPipeline(ctx) as pipeline:
        try:
            ahead = 0  # batches of the newest window handed over
            while max_batches is None or ctx.report.batches < max_batches:
                pipeline.settle(keep=ahead)  # older windows are recorded before another is read
                items, last_id = queue.next_batch(last_id, window)
                if last_id == 0:
                    break
                if items and pipeline.writes_to(row_key(ctx, item) for item in items):
                    pipeline.settle(keep=0)
                before = ctx.report.batches
                if items:
                    _push_window(ctx, queue, items, size, pipeline)
                ahead = ctx.report.batches - before
                db.session.commit()
        except (RedcapUnavailable, RedcapAuthError):
            if pipeline.outage is None:
                with contextlib.suppress(RedcapUnavailable, RedcapAuthError):
                    pipeline.settle(keep=0)  # record what landed while this thread met the outage
            raise
        pipeline.settle(keep=0)


def _window(size: int) -> int:
    """Rows screened together: whole batches, about SCREEN_RECORDS records per checking export."""
    return size * max(1, SCREEN_RECORDS // size)


def _push_window(
    ctx: PassContext, queue: PushQueue, items: list[PushItem], size: int, pipeline: ImportPipeline
) -> None:
    """Screen the rows, then hand them to the pipeline in batches of `size` (split on rejection there).

    On an outage while screening, the window's rows are deferred with backoff and the outage re-raised.
    """
    rejected: list[tuple[int, str]] = []
    try:
        screened = split_rejected(
            items, lambda part: retrying(ctx, lambda: queue.keep_redcaps(part)), rejected
        )
        for check in _PRE_PUSH_CHECKS if queue.screened else []:
            # mypy cannot type a lambda with a default argument (which binds the loop variable).
            screened = split_rejected(screened, lambda part, check=check: _screen(ctx, check, part), rejected)  # type: ignore[misc]
    except (RedcapUnavailable, RedcapAuthError) as exc:
        queue.mark_rejected(rejected)
        done = {i for i, _ in rejected}
        queue.defer([item.id for item in items if item.id not in done], f"REDCap unavailable: {exc}")
        raise
    queue.mark_rejected(rejected)
    if rejected:
        note_redcap_error(ctx.now)
    db.session.commit()  # conflicts found and rows kept are recorded before their neighbours are sent
    for start in range(0, len(screened), size):
        ctx.report.batches += 1
        try:
            pipeline.submit(queue, screened[start : start + size])
        except (RedcapUnavailable, RedcapAuthError) as exc:  # an earlier batch met it: keep the rest
            queue.defer([item.id for item in screened[start + size :]], f"REDCap unavailable: {exc}")
            raise


def _screen(ctx: PassContext, check: PrePushCheck, items: list[PushItem]) -> list[PushItem]:
    # Checks read each submission's visit and participant: load them here in one query, not 2 per row
    # (the identity map serves their lookups while `loaded` keeps the objects alive). Only the columns
    # the checks read are loaded; any other is loaded if touched (a conflict's audit entry).
    loaded = db.session.scalars(
        select(Submission)
        .where(Submission.id.in_([item.id for item in items]))
        .options(
            joinedload(Submission.visit, innerjoin=True)
            .load_only(Visit.event_name, Visit.participant_id)
            .joinedload(Visit.participant, innerjoin=True)
            .load_only(Participant.record_id)
        )
    ).all()
    held = check(items, ctx.client, ctx.now)
    del loaded
    return [item for item in items if item.id not in held]


def push_step(now: datetime) -> dict[str, Any]:
    """Tick step "push": one push pass; skipped when no REDCap token is configured."""
    if not current_app.config.get("REDCAP_API_TOKEN"):
        return {"skipped": 1}
    return push_pending(now).as_dict()
