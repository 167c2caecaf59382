"""The local Aliyun server's pushes: receipts when due, replies on demand, each retried a few times."""

from __future__ import annotations

import heapq
import itertools
import json
import logging
import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import requests

from devservers.aliyun_protocol import CallbackAttempt

log = logging.getLogger("devservers.aliyun_sms")
REPORT_BATCH = 100  # receipts per push; Aliyun batches too


class Pusher:
    """One thread: turns due receipts into `SmsReport` pushes and retries refused pushes (bounded)."""

    def __init__(
        self,
        on_reports: Callable[[list[int]], list[dict[str, Any]]],
        report_url: Callable[[], str | None],
        *,
        attempts: int = 3,
        retry_delay: float = 1.0,
        timeout: float = 5.0,
    ) -> None:
        self.on_reports = on_reports  # marks texts delivered/failed, returns their receipts
        self.report_url = report_url  # read when receipts fall due, so a URL set later still applies
        self.attempts, self.retry_delay, self.timeout = attempts, retry_delay, timeout
        self.closing = threading.Event()
        self._changed = threading.Condition(threading.RLock())
        self._seq = itertools.count(1)
        self._worker: threading.Thread | None = None
        self._busy = 0
        self.reset()

    def reset(self) -> None:
        """Forget pending jobs and the push log."""
        with self._changed:
            self._heap: list[tuple[float, int, tuple[Any, ...]]] = []
            self._log: list[CallbackAttempt] = []
            self.counts: Counter[str] = Counter()
            self._changed.notify_all()

    @property
    def log(self) -> list[CallbackAttempt]:
        with self._changed:
            return list(self._log)

    @property
    def pending(self) -> int:
        with self._changed:
            return len(self._heap)

    def schedule_report(self, delay: float, seq: int) -> None:
        """Text `seq` reaches its outcome after `delay` seconds."""
        self._schedule(time.monotonic() + delay, ("report", seq))

    def push_now(self, kind: str, url: str, payload: list[dict[str, Any]]) -> list[CallbackAttempt]:
        """Push in the caller's thread, retrying until accepted or out of attempts; return the attempts."""
        attempts = []
        for attempt in range(1, self.attempts + 1):
            attempts.append(self._post(kind, url, payload, attempt))
            if attempts[-1].accepted or self.closing.wait(self.retry_delay * attempt):
                break
        return attempts

    def run_reports(self, seqs: list[int]) -> None:
        """Bring texts `seqs` to their outcome and push their receipts, in batches."""
        reports = self.on_reports(seqs)
        url = self.report_url()
        for start in range(0, len(reports) if url else 0, REPORT_BATCH):
            self._push_with_retry("SmsReport", url, reports[start : start + REPORT_BATCH], 1)  # type: ignore[arg-type]

    def wait_idle(self, timeout: float = 5.0) -> None:
        """Block until no receipt or push is pending or running."""
        with self._changed:
            if not self._changed.wait_for(lambda: not self._heap and not self._busy, timeout):
                raise TimeoutError("receipts still pending")

    def close(self) -> None:
        with self._changed:
            self.closing.set()
            self._changed.notify_all()
            worker = self._worker
        if worker is not None and worker is not threading.current_thread():
            worker.join(timeout=5)

    def _schedule(self, due: float, job: tuple[Any, ...]) -> None:
        with self._changed:
            heapq.heappush(self._heap, (due, next(self._seq), job))
            if self._worker is None or not self._worker.is_alive():
                self.closing.clear()
                self._worker = threading.Thread(target=self._run, name="aliyun-pushes", daemon=True)
                self._worker.start()
            self._changed.notify_all()

    def _due(self) -> bool:
        return bool(self._heap) and self._heap[0][0] <= time.monotonic()

    def _run(self) -> None:
        while True:
            with self._changed:
                while not self.closing.is_set() and not self._due():
                    self._changed.wait(self._heap[0][0] - time.monotonic() if self._heap else None)
                if self.closing.is_set():
                    return
                jobs = [heapq.heappop(self._heap)[2]]
                while jobs[0][0] == "report" and self._due() and self._heap[0][2][0] == "report":
                    jobs.append(heapq.heappop(self._heap)[2])  # one push carries every receipt due
                self._busy += 1
            try:
                if jobs[0][0] == "report":
                    self.run_reports([job[1] for job in jobs])
                else:
                    self._push_with_retry(*jobs[0][1:])
            except Exception as exc:  # a fake must never die quietly mid-test
                log.exception("push failed: %s", type(exc).__name__)
            finally:
                with self._changed:
                    self._busy -= 1
                    self._changed.notify_all()

    def _push_with_retry(self, kind: str, url: str, payload: list[dict[str, Any]], attempt: int) -> None:
        if not self._post(kind, url, payload, attempt).accepted and attempt < self.attempts:
            due = time.monotonic() + self.retry_delay * attempt
            self._schedule(due, ("post", kind, url, payload, attempt + 1))

    def _post(self, kind: str, url: str, payload: list[dict[str, Any]], attempt: int) -> CallbackAttempt:
        """One POST of a JSON array; accepted only on HTTP 200 with `{"code": 0, ...}`."""
        record = CallbackAttempt(kind=kind, url=url, payload=payload, attempt=attempt)
        try:
            with requests.post(
                url,
                data=json.dumps(payload, ensure_ascii=False).encode(),
                headers={"Content-Type": "application/json;charset=utf-8", "User-Agent": "Aliyun-SMS-Push"},
                timeout=self.timeout,
                allow_redirects=False,
            ) as resp:
                record.status_code = resp.status_code
                record.response_body = resp.content.decode("utf-8", errors="replace")
            answer = json.loads(record.response_body) if record.status_code == 200 else None
            record.accepted = isinstance(answer, dict) and answer.get("code") in (0, "0")
        except (requests.RequestException, ValueError) as exc:
            record.error = f"{type(exc).__name__}: {exc}"
        with self._changed:
            self._log.append(record)
            self.counts[f"{kind}_pushes"] += 1
            self._changed.notify_all()
        if not record.accepted:
            log.warning(
                "%s push attempt %d not accepted (%s)", kind, attempt, record.status_code or record.error
            )
        return record
