"""Graceful stop: SIGTERM (or Ctrl-C) lets the job in progress finish, then the process exits 0.

systemd, the Procfile runner and `make run` all stop the scheduler with SIGTERM. A job is a database
transaction plus maybe a provider call; cutting it short would leave work for the crash reconciler, so
the handler only asks the scheduler to stop starting jobs and lets the running ones end.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

log = logging.getLogger(__name__)


class GracefulStop:
    """A stop request set by a signal, and a count of jobs still running to wait for."""

    def __init__(self) -> None:
        self.requested = threading.Event()
        self._running = 0
        self._idle = threading.Condition()

    def install(self, on_stop: Callable[[], None]) -> None:
        """Handle SIGTERM and SIGINT in the main thread; `on_stop` runs in a helper thread.

        The helper thread matters: the handler interrupts the scheduler's own main loop, which may hold
        the scheduler's locks; shutting it down from another thread takes them in the normal way.
        """

        def handler(signum: int, _frame: object) -> None:
            name = signal.Signals(signum).name
            if self.requested.is_set():
                log.info("%s again: still finishing the job in progress", name)
                return
            log.info("%s received: finishing the job in progress, then exiting", name)
            self.requested.set()
            threading.Thread(target=on_stop, name="scheduler-stop", daemon=True).start()

        signal.signal(signal.SIGTERM, handler)
        signal.signal(signal.SIGINT, handler)

    @contextmanager
    def job(self) -> Iterator[None]:
        """Count a job as running for the duration of the block."""
        with self._idle:
            self._running += 1
        try:
            yield
        finally:
            with self._idle:
                self._running -= 1
                self._idle.notify_all()

    @property
    def running(self) -> int:
        """How many jobs are inside `job()` right now."""
        with self._idle:
            return self._running

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Block until no job is running (or the timeout passes); True when idle."""
        with self._idle:
            return self._idle.wait_for(lambda: self._running == 0, timeout=timeout)
