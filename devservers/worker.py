"""One background thread that runs jobs when they fall due, for the local SMS servers.

Twilio's status steps, Tencent's delivery reports and Aliyun's receipts and retried pushes all wait for a
moment and then call the app over HTTP. Each server had its own copy of the heap, the lazily started
daemon thread, the busy count and the shutdown; they share this one so the three cannot drift apart.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
from collections.abc import Callable
from typing import Any, Generic, TypeVar

Job = TypeVar("Job")


class DueJobs(Generic[Job]):
    """Jobs kept by due time and run one batch at a time on one daemon thread, started when first needed.

    `take` is called with `changed` held once a job is due: it pops what belongs in one batch (`pop`,
    `due`, `peek`) and returns the work to run with the lock released, so a slow app never blocks the
    server's requests. `closing` stops the thread; it is also what requests parked in a fault wait on.
    """

    def __init__(
        self,
        changed: threading.Condition,
        closing: threading.Event,
        take: Callable[[], Callable[[], Any]],
        *,
        name: str,
        log: logging.Logger,
        failure: str,
    ) -> None:
        self.changed, self.closing = changed, closing
        self._take, self._name, self._log, self._failure = take, name, log, failure
        self._heap: list[tuple[float, int, Job]] = []
        self._seq = itertools.count(1)
        self._thread: threading.Thread | None = None
        self._busy = 0  # batches running right now; survives clear()

    def schedule(self, delay: float, job: Job) -> None:
        """Run `job` in `delay` seconds; (re)start the thread if it is not running."""
        with self.changed:
            heapq.heappush(self._heap, (time.monotonic() + delay, next(self._seq), job))
            if self._thread is None or not self._thread.is_alive():
                self.closing.clear()
                self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
                self._thread.start()
            self.changed.notify_all()

    def clear(self) -> None:
        """Forget every job not yet started (a batch already running finishes)."""
        with self.changed:
            self._heap = []
            self.changed.notify_all()

    def due(self) -> bool:
        """Whether the next job's time has come (call with `changed` held)."""
        return bool(self._heap) and self._heap[0][0] <= time.monotonic()

    def peek(self) -> Job:
        """The next job, left in place (call with `changed` held, when `due()`)."""
        return self._heap[0][2]

    def pop(self) -> Job:
        """Remove and return the next job (call with `changed` held, when `due()`)."""
        return heapq.heappop(self._heap)[2]

    @property
    def pending(self) -> int:
        """Jobs waiting for their time."""
        with self.changed:
            return len(self._heap)

    def wait_idle(self, timeout: float, message: str) -> None:
        """Block until no job is waiting or running; TimeoutError(`message`) after `timeout` seconds."""
        with self.changed:
            if not self.changed.wait_for(lambda: not self._heap and not self._busy, timeout):
                raise TimeoutError(message)

    def close(self) -> None:
        """Stop the thread (after the batch it is running) and wake everything waiting on `closing`."""
        with self.changed:
            self.closing.set()
            self.changed.notify_all()
            thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=5)

    def _run(self) -> None:
        while True:
            with self.changed:
                while not self.closing.is_set() and not self.due():
                    self.changed.wait(self._heap[0][0] - time.monotonic() if self._heap else None)
                if self.closing.is_set():
                    return
                work = self._take()
                self._busy += 1
            try:
                work()
            except Exception as exc:  # a fake must never die quietly mid-test; record and go on
                self._log.exception(self._failure, type(exc).__name__)
            finally:
                with self.changed:
                    self._busy -= 1
                    self.changed.notify_all()
