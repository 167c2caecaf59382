"""The local Tencent Cloud SMS server after a text is accepted: report thread, status and reply pushes.

Split from `tencent_state` along one line: what happens after a text is accepted. `TencentState` mixes it in.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import requests

from devservers.tencent_protocol import CallbackAttempt, Outcome, mainland_number

log = logging.getLogger("devservers.tencent_sms")


class ReportsAndCallbacks:
    """Report scheduling and callback pushing; expects the attributes `TencentState.__init__` sets."""

    # ---- delivery reports -------------------------------------------------------------------------

    def _take_reports(self) -> Callable[[], object]:
        """Every report now due, made under the lock; one status push carries them (`DueJobs` runs it)."""
        due = []
        while self._jobs.due():
            due.append(self._jobs.pop())
        batch = self._report_locked(due)
        url = self.status_url if self.callbacks_enabled else None
        return lambda: self._deliver("status", url, batch) if url and batch else None

    def _report_locked(self, serials: list[str]) -> list[dict[str, Any]]:
        """Turn due texts into delivery reports; one status callback carries them all."""
        batch, now = [], int(self.clock())
        for sent in (s for s in self._sent if s.serial_no in set(serials)):
            outcome = self._outcomes.get(sent.subscriber, Outcome())
            sent.report_status, sent.errmsg, sent.description = (
                outcome.report_status,
                outcome.errmsg,
                outcome.description,
            )
            sent.user_receive_time = now
            batch.append(sent.report_json())
        self._changed.notify_all()
        return batch

    def _deliver(self, kind: str, url: str, payload: Any) -> list[CallbackAttempt]:
        """POST `payload` as JSON until the app answers {"result": 0}; at most `callback_attempts` times."""
        attempts = []
        for n in range(1, self.callback_attempts + 1):
            attempt = CallbackAttempt(
                kind=kind, url=url, payload=payload, attempt=n, sent_at=time.monotonic()
            )
            try:
                with requests.post(
                    url, json=payload, timeout=self.callback_timeout, allow_redirects=False
                ) as resp:
                    attempt.status_code, attempt.body = resp.status_code, resp.text
                    try:
                        answer = resp.json()
                    except ValueError:
                        answer = None
                    attempt.accepted = (
                        resp.status_code == 200 and isinstance(answer, dict) and answer.get("result") == 0
                    )
            except requests.RequestException as exc:
                attempt.error = type(exc).__name__
            with self._lock:
                self._callbacks.append(attempt)
                self._counters[f"{kind}_callbacks"] += 1
                self._changed.notify_all()
            attempts.append(attempt)
            if attempt.accepted or self._closing.wait(self.retry_delay * n):
                break
        return attempts

    # ---- replies ------------------------------------------------------------------------------------

    def simulate_reply(
        self, mobile: str, text: str, *, sign: str | None = None, extend: str = "", url: str | None = None
    ) -> list[CallbackAttempt]:
        """A participant answers: push Tencent's reply callback to `url` (default: the reply URL)."""
        target = url or self.reply_url
        if not target:
            raise ValueError("no reply URL configured")
        subscriber = mainland_number(mobile)
        if subscriber is None:
            raise ValueError("not a mainland mobile number")
        payload = {
            "extend": extend,
            "mobile": subscriber,
            "nationcode": "86",
            "sign": sign if sign is not None else next(iter(sorted(self.signs)), ""),
            "text": text,
            "time": int(self.clock()),
        }
        with self._lock:
            self._replies.append(payload)
        return self._deliver("reply", target, payload)
