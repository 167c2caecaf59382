"""The push's imports on one worker thread, in queue order, while the pass reads and screens the next rows.

Why: a pass spends most of its time waiting for REDCap. With the imports handed to a worker, the pass's
own thread reads, validates and screens the next window (its conflict-check export included) while an
import is in flight. What does not change: every call still goes through the client's process-wide
ceiling (REDCAP_MAX_CALLS_PER_SECOND), so overlapping never adds a call or exceeds it; imports stay one
at a time and in the order the rows were queued (REDCap never gets two writes from us at once); the
database is touched only by the pass's thread, which records each batch's outcome and commits it as the
batch comes back. An outage stops the worker before its next batch; what was not confirmed is deferred.
"""

from __future__ import annotations

import random
import threading
from collections import deque
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TypeVar

from app.backoff import backoff_ceiling
from app.extensions import db
from app.redcap.client import (
    ForbiddenFieldError,
    RedcapAuthError,
    RedcapRejected,
    RedcapUnavailable,
)
from app.redcap.push.queue import PassContext, PushItem, PushQueue
from app.redcap.state import note_redcap_error

T = TypeVar("T")
Outage = RedcapUnavailable | RedcapAuthError
Key = tuple[str, str]


def split_rejected(
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
        return split_rejected(items[:middle], attempt, rejected) + split_rejected(
            items[middle:], attempt, rejected
        )


def retrying(ctx: PassContext, call: Callable[[], T]) -> T:
    """Make a REDCap call, retried within the pass (short jittered waits) while REDCap is unavailable."""
    for attempt in range(1, ctx.attempts_per_pass + 1):
        try:
            return call()
        except RedcapUnavailable:
            if attempt == ctx.attempts_per_pass:
                raise
            ctx.sleep(backoff_ceiling(attempt + 1, 0.25, 4.0) * random.uniform(0.5, 1.0))
    raise AssertionError("unreachable")


def import_part(ctx: PassContext, items: list[PushItem], landed: list[int]) -> list[PushItem]:
    """One import call (with short in-pass retries); records the items REDCap confirmed by id."""
    ids = set(retrying(ctx, lambda: ctx.client.import_records([item.row for item in items])))
    confirmed = [item for item in items if item.row[ctx.record_field] in ids]
    landed.extend(item.id for item in confirmed)
    return confirmed


def row_key(ctx: PassContext, item: PushItem) -> Key:
    """The REDCap record-event a row writes to."""
    return item.row[ctx.record_field], item.row.get("redcap_event_name", "")


@dataclass
class BatchOutcome:
    """What REDCap did with one batch: confirmed ids, rejected ids with REDCap's text, or the outage."""

    landed: list[int] = field(default_factory=list)
    rejected: list[tuple[int, str]] = field(default_factory=list)
    outage: Outage | None = None


@dataclass
class _Batch:
    queue: PushQueue
    items: list[PushItem]
    keys: set[Key]
    future: Future[BatchOutcome]


class ImportPipeline:
    """Batches handed to one worker thread; outcomes recorded, oldest first, by the pass's thread."""

    def __init__(self, ctx: PassContext) -> None:
        self.ctx = ctx
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="redcap-import")
        self._batches: deque[_Batch] = deque()
        self._stop = threading.Event()
        self._stopped_by: Outage | None = None  # set by the worker, read after its future is done
        self.outage: Outage | None = None

    def __enter__(self) -> ImportPipeline:
        return self

    def __exit__(self, *exc: object) -> None:
        # Normally empty here (the pass settles first). On an unexpected error, batches not started are
        # dropped: their rows are still pending in the database and the next pass sends them.
        self._stop.set()
        self._executor.shutdown(wait=True, cancel_futures=True)

    @property
    def outstanding(self) -> int:
        """Batches handed over whose outcome is not recorded yet."""
        return len(self._batches)

    def writes_to(self, keys: Iterable[Key]) -> bool:
        """Whether a batch not yet recorded writes to any of these record-events."""
        wanted = set(keys)
        return any(batch.keys & wanted for batch in self._batches)

    def submit(self, queue: PushQueue, items: list[PushItem]) -> None:
        """Hand a batch to the worker (it runs after the ones before it), then record finished ones."""
        keys = {row_key(self.ctx, item) for item in items}
        future = self._executor.submit(self._run, items)
        self._batches.append(_Batch(queue, items, keys, future))
        self.settle()

    def settle(self, keep: int | None = None) -> None:
        """Record finished batches, oldest first; with `keep`, wait until at most `keep` are outstanding.

        Once a batch met an outage, waits for and records every outstanding batch, then raises it.
        """
        while self._batches:
            head = self._batches[0]
            waiting_allowed = keep is None or len(self._batches) <= keep
            if not head.future.done() and self.outage is None and waiting_allowed:
                break
            self._batches.popleft()
            self._record(head)
        if self.outage is not None:
            raise self.outage

    def _record(self, batch: _Batch) -> None:
        outcome = batch.future.result()  # anything but REDCap's answers (a bug) propagates here
        queue = batch.queue
        queue.mark_pushed(outcome.landed)
        queue.mark_rejected(outcome.rejected)
        done = set(outcome.landed) | {item_id for item_id, _ in outcome.rejected}
        rest = [item.id for item in batch.items if item.id not in done]
        if outcome.outage is not None:
            queue.defer(rest, f"REDCap unavailable: {outcome.outage}")
            self.outage = self.outage or outcome.outage
        elif rest:
            queue.defer(rest, "REDCap did not confirm these records in its answer; will retry")
        if outcome.rejected:
            note_redcap_error(self.ctx.now)
        db.session.commit()

    def _run(self, items: list[PushItem]) -> BatchOutcome:
        """On the worker: import one batch, splitting on rejection; never touches the database."""
        outcome = BatchOutcome()
        if self._stop.is_set():
            outcome.outage = self._stopped_by or RedcapUnavailable("push stopped before this batch")
            return outcome
        try:
            split_rejected(items, lambda part: import_part(self.ctx, part, outcome.landed), outcome.rejected)
        except (RedcapUnavailable, RedcapAuthError) as exc:
            self._stopped_by = exc
            self._stop.set()
            outcome.outage = exc
        except BaseException:
            self._stop.set()
            raise
        return outcome
