"""The local Aliyun server's pushes: receipts when due, replies on demand, each retried a few times.

`Pusher` carries them (one thread, bounded retries); `ReceiptsAndReplies`, split from `aliyun_state` along
the line of what happens after a text is accepted, decides what they say. `AliyunState` mixes it in, as
`TencentState` and `TwilioState` mix in their callbacks.
"""

from __future__ import annotations

import json
import logging
import threading
from collections import Counter
from collections.abc import Callable
from typing import Any

import requests

from devservers.aliyun_protocol import (
    SEND_DELIVERED,
    SEND_FAILED,
    SEND_WAITING,
    CallbackAttempt,
    china_time,
    normalise_mobile,
)
from devservers.worker import DueJobs

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
        self._jobs: DueJobs[tuple[Any, ...]] = DueJobs(
            self._changed, self.closing, self._take, name="aliyun-pushes", log=log, failure="push failed: %s"
        )
        self.reset()

    def reset(self) -> None:
        """Forget pending jobs and the push log."""
        with self._changed:
            self._jobs.clear()  # a push already running finishes
            self._log: list[CallbackAttempt] = []
            self.counts: Counter[str] = Counter()
            self._changed.notify_all()

    @property
    def log(self) -> list[CallbackAttempt]:
        with self._changed:
            return list(self._log)

    @property
    def pending(self) -> int:
        return self._jobs.pending

    def schedule_report(self, delay: float, seq: int) -> None:
        """Text `seq` reaches its outcome after `delay` seconds."""
        self._jobs.schedule(delay, ("report", seq))

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
        self._jobs.wait_idle(timeout, "receipts still pending")

    def close(self) -> None:
        """Stop the push thread and wake everything waiting on `closing`."""
        self._jobs.close()

    def _take(self) -> Callable[[], None]:
        """The next due job, for the push thread; one push carries every receipt due (lock held)."""
        jobs = [self._jobs.pop()]
        while jobs[0][0] == "report" and self._jobs.due() and self._jobs.peek()[0] == "report":
            jobs.append(self._jobs.pop())
        if jobs[0][0] == "report":
            return lambda: self.run_reports([job[1] for job in jobs])
        return lambda: self._push_with_retry(*jobs[0][1:])

    def _push_with_retry(self, kind: str, url: str, payload: list[dict[str, Any]], attempt: int) -> None:
        if not self._post(kind, url, payload, attempt).accepted and attempt < self.attempts:
            self._jobs.schedule(self.retry_delay * attempt, ("post", kind, url, payload, attempt + 1))

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


class ReceiptsAndReplies:
    """Receipts and replies of the Aliyun fake; expects the attributes `AliyunState` sets."""

    def report_now(self, biz_id: str) -> None:
        """Deliver (or fail) every waiting text of `biz_id` now and push its receipt."""
        with self._lock:
            seqs = [m.seq for m in self._sent if m.biz_id == biz_id and m.status == SEND_WAITING]
        self.pusher.run_reports(seqs)

    def simulate_reply(
        self,
        phone: str,
        content: str,
        *,
        sign_name: str | None = None,
        dest_code: str = "",
        url: str | None = None,
    ) -> list[CallbackAttempt]:
        """A participant answers: push an `SmsUp` to the up URL, retried; return the attempts."""
        number = normalise_mobile(phone) or phone
        with self._lock:
            target = url or self.up_url
            last = next((m for m in reversed(self._sent) if m.phone == number), None)
            sign = sign_name or (last.sign_name if last else min(self.sign_names, default=""))
            payload = [
                {
                    "phone_number": number,
                    "send_time": china_time(self.clock()),
                    "content": content,
                    "sign_name": sign,
                    "dest_code": dest_code,
                    "sequence_id": next(self._seq),
                }
            ]
        if not target:
            raise ValueError("no up URL configured")
        return self.pusher.push_now("SmsUp", target, payload)

    def _reports(self, seqs: list[int]) -> list[dict[str, Any]]:
        """Texts `seqs` reach their outcome now; their receipts (none while callbacks are off)."""
        with self._lock:
            wanted = set(seqs)
            texts = [m for m in self._sent if m.seq in wanted and m.status == SEND_WAITING]
            now = self.clock().replace(microsecond=0)
            for text in texts:
                delivered = text.outcome.status == "delivered"
                text.status = SEND_DELIVERED if delivered else SEND_FAILED
                text.err_code = (
                    "DELIVERED" if delivered else (text.outcome.err_code or "MOBILE_NOT_ON_SERVICE")
                )
                text.receive_date = max(now, text.send_date)
            return [t.report() for t in texts] if self.callbacks_enabled else []
