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

import logging
import random
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any, TypeVar

from flask import current_app
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from app.backoff import backoff_ceiling
from app.extensions import db
from app.models import Submission, SystemState, Visit
from app.redcap.client import (
    ForbiddenFieldError,
    RedcapAuthError,
    RedcapClient,
    RedcapRejected,
    RedcapUnavailable,
    get_client,
)
from app.redcap.conflicts import pre_push_check
from app.redcap.push.queue import PassContext, PushItem, PushQueue, PushReport
from app.redcap.push.study_statuses import EnrollmentStatusQueue
from app.redcap.push.submissions import SubmissionQueue
from app.redcap.push.visit_statuses import StatusQueue, enqueue_missed_visits
from app.redcap.state import CONTACT_STATE_KEY, PROJECT_STATE_KEY, note_redcap_error

log = logging.getLogger(__name__)

SCREEN_BATCHES = 20
T = TypeVar("T")

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
    """One push pass over both queues; stops at the first outage. Commits per batch."""
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
    # Pre-push checks read REDCap once per window of SCREEN_BATCHES batches, not once per batch.
    window = size * SCREEN_BATCHES if queue.screened and _PRE_PUSH_CHECKS else size
    last_id = 0
    while max_batches is None or ctx.report.batches < max_batches:
        items, last_id = queue.next_batch(last_id, window)
        if last_id == 0:
            return
        if items:
            _push_window(ctx, queue, items, size)
        db.session.commit()


def _push_window(ctx: PassContext, queue: PushQueue, items: list[PushItem], size: int) -> None:
    """Screen the rows, then import them in batches of `size`, splitting on rejection; commits per batch.

    On an outage, whatever is not yet confirmed is deferred with backoff and the outage re-raised.
    """
    confirmed: list[int] = []
    rejected: list[tuple[int, str]] = []
    screened: list[PushItem] = []
    try:
        screened = _split(items, lambda part: _retrying(ctx, lambda: queue.keep_redcaps(part)), rejected)
        for check in _PRE_PUSH_CHECKS if queue.screened else []:
            # mypy cannot type a lambda with a default argument (which binds the loop variable).
            screened = _split(screened, lambda part, check=check: _screen(ctx, check, part), rejected)  # type: ignore[misc]
        for start in range(0, len(screened), size):
            ctx.report.batches += 1
            landed: list[int] = []
            _split(screened[start : start + size], lambda part, out=landed: _import(ctx, part, out), rejected)  # type: ignore[misc]
            queue.mark_pushed(landed)
            confirmed.extend(landed)
            db.session.commit()
    except (RedcapUnavailable, RedcapAuthError) as exc:
        queue.mark_rejected(rejected)
        done = set(confirmed) | {i for i, _ in rejected}
        queue.defer([item.id for item in items if item.id not in done], f"REDCap unavailable: {exc}")
        raise
    queue.mark_rejected(rejected)
    done = set(confirmed) | {i for i, _ in rejected}
    unconfirmed = [item.id for item in screened if item.id not in done]
    if unconfirmed:
        queue.defer(unconfirmed, "REDCap did not confirm these records in its answer; will retry")
    if rejected:
        note_redcap_error(ctx.now)


def _split(
    items: list[PushItem],
    attempt: Callable[[list[PushItem]], list[PushItem]],
    rejected: list[tuple[int, str]],
) -> list[PushItem]:
    """Binary split: a batch REDCap rejects is halved until each bad record stands alone (and fails)."""
    if not items:
        return []
    try:
        return attempt(items)
    except (RedcapRejected, ForbiddenFieldError) as exc:
        if len(items) == 1:
            message = exc.message if isinstance(exc, RedcapRejected) else str(exc)
            rejected.append((items[0].id, message))
            return []
        middle = len(items) // 2
        return _split(items[:middle], attempt, rejected) + _split(items[middle:], attempt, rejected)


def _screen(ctx: PassContext, check: PrePushCheck, items: list[PushItem]) -> list[PushItem]:
    # Checks read each submission's visit and participant: load them here in three queries, not 2 per row
    # (the identity map serves their lookups while `loaded` keeps the objects alive).
    loaded = db.session.scalars(
        select(Submission)
        .where(Submission.id.in_([item.id for item in items]))
        .options(selectinload(Submission.visit).selectinload(Visit.participant))
    ).all()
    held = check(items, ctx.client, ctx.now)
    del loaded
    return [item for item in items if item.id not in held]


def _import(ctx: PassContext, items: list[PushItem], confirmed: list[int]) -> list[PushItem]:
    """One import call (with short in-pass retries); records the items REDCap confirmed by id."""
    ids = set(_retrying(ctx, lambda: ctx.client.import_records([item.row for item in items])))
    landed = [item for item in items if item.row[ctx.record_field] in ids]
    confirmed.extend(item.id for item in landed)
    return landed


def _retrying(ctx: PassContext, call: Callable[[], T]) -> T:
    """Make a REDCap call, retried within the pass (short jittered waits) while REDCap is unavailable."""
    for attempt in range(1, ctx.attempts_per_pass + 1):
        try:
            return call()
        except RedcapUnavailable:
            if attempt == ctx.attempts_per_pass:
                raise
            ctx.sleep(backoff_ceiling(attempt + 1, 0.25, 4.0) * random.uniform(0.5, 1.0))
    raise AssertionError("unreachable")


def push_step(now: datetime) -> dict[str, Any]:
    """Tick step "push": one push pass; skipped when no REDCap token is configured."""
    if not current_app.config.get("REDCAP_API_TOKEN"):
        return {"skipped": 1}
    return push_pending(now).as_dict()
