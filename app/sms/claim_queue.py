"""The rows one send pass has claimed, handed out one at a time to whichever sender thread is free.

Claiming is a write transaction, so rows are claimed in batches; before this queue each sender thread
claimed its own batch and had to send all of it. A pass that started with many senders (before it had
timed the provider) then kept them all busy until every batch was through, and the number of senders
could only change at batch boundaries. Shared, a batch goes to whoever is free, and a sender the rate
no longer needs stops after the text in hand.
"""

from __future__ import annotations

import threading
from collections import deque
from datetime import datetime

from app.sms.claims import claim, release, worker_id


class ClaimQueue:
    """Claimed outbox ids under one worker id for the pass; `take` claims the next batch when empty."""

    def __init__(self, now: datetime, batch: int) -> None:
        self.now = now
        self.batch = batch
        self.worker = worker_id(0)
        # Set once no more rows will be handed out: nothing due is left, or a sender ended the pass (stop,
        # halt, an error); idle senders wait on it, so the pass never outlives its active senders.
        self.closed = threading.Event()
        self._ids: deque[int] = deque()
        self._lock = threading.Lock()

    def take(self) -> int | None:
        """The next claimed id, claiming a batch first if none is held; None once the pass is closed
        (nothing due is left, or a sender ended it).

        Runs in the caller's thread and database session: the claim commits there.
        """
        with self._lock:
            if self.closed.is_set():
                return None
            if not self._ids:
                claimed = claim(self.now, self.worker, limit=self.batch)
                if claimed:
                    self._ids.extend(claimed)
                else:
                    self.closed.set()
            return self._ids.popleft() if self._ids else None

    def close(self) -> None:
        """No more rows for this pass (a sender stopped, halted or failed): `take` returns None from now."""
        self.closed.set()

    def release_unsent(self, now: datetime) -> int:
        """Hand back every id still held (the pass stopped or halted before a sender took it); commits."""
        with self._lock:
            ids, self._ids = list(self._ids), deque()
        return release(ids, self.worker, now)
