"""The local Twilio server's state: messages, their delivery lifecycle, switches and the webhook log."""

from __future__ import annotations

import itertools
import logging
import secrets
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from devservers.control import FaultQueue, check_control_keys
from devservers.twilio_callbacks import LifecycleAndWebhooks
from devservers.twilio_protocol import (
    _ALPHA_SENDER,
    _MESSAGING_SERVICE_SID,
    _SHORT_CODE,
    CONTROL_KEYS,
    DEFAULT_ACCOUNT_SID,
    DEFAULT_AUTH_TOKEN,
    E164,
    FAULT_KINDS,
    FINAL_STATUSES,
    MAGIC_FROM,
    MAGIC_TO,
    MAX_BODY_CHARS,
    CallbackAttempt,
    Duplicate,
    Message,
    Outcome,
    TwilioError,
    _date_matches,
    _parse_date_filter,
    _utcnow,
    count_segments,
    mask_number,
)
from devservers.worker import DueJobs

# One logger name for the whole fake, whichever module writes.
log = logging.getLogger("devservers.twilio_api")


class TwilioState(LifecycleAndWebhooks):
    """Everything the fake knows: accounts, messages, switches, webhook log. Thread-safe."""

    def __init__(
        self,
        accounts: Mapping[str, str] | None = None,
        *,
        callback_delay: float = 0.0,
        callbacks_enabled: bool = True,
        auto_advance: bool = True,
        callback_timeout: float = 5.0,
        hang_seconds: float = 30.0,
        clock: Callable[[], datetime] = _utcnow,
    ) -> None:
        self.accounts: dict[str, str] = dict(accounts or {DEFAULT_ACCOUNT_SID: DEFAULT_AUTH_TOKEN})
        self.callback_timeout = callback_timeout
        self.hang_seconds = hang_seconds
        self.clock = clock
        self._defaults = {
            "callback_delay": callback_delay,
            "callbacks_enabled": callbacks_enabled,
            "auto_advance": auto_advance,
        }
        self._lock = threading.RLock()
        self._changed = threading.Condition(self._lock)
        self._closing = threading.Event()
        self._seq = itertools.count(1)
        self._jobs: DueJobs[str] = DueJobs(
            self._changed,
            self._closing,
            self._take_step,
            name="twilio-lifecycle",
            log=log,
            failure="lifecycle step failed: %s",
        )
        self._reset_locked()

    # ---- switches -------------------------------------------------------------------------------

    def reset(self) -> None:
        """Forget messages, webhooks, counters, faults and outcomes; keep accounts."""
        with self._lock:
            self._reset_locked()
            self._changed.notify_all()

    def _reset_locked(self) -> None:
        self.callback_delay: float = self._defaults["callback_delay"]
        self.callbacks_enabled: bool = self._defaults["callbacks_enabled"]
        self.auto_advance: bool = self._defaults["auto_advance"]
        self.latency_ms = 0
        self._messages: dict[str, Message] = {}
        self._inbound: list[Message] = []
        self._webhooks: list[CallbackAttempt] = []
        self._faults = FaultQueue(FAULT_KINDS)
        self._outcomes: dict[str, Outcome] = {}
        self._create_times: list[float] = []
        self._counters: Counter[str] = Counter()
        self._jobs.clear()  # a step already running finishes

    def fail_next(self, kind: str, times: int = 1) -> None:
        """Make the next `times` creates fail: "429", "500", "503", or "timeout" (hang, then hang up)."""
        with self._lock:
            self._faults.add(kind, times)

    def set_outcome(
        self,
        number: str,
        *,
        create_error: int | None = None,
        final_status: str | None = None,
        error_code: int | None = None,
    ) -> None:
        """Decide what happens to messages for `number`; a delivery error code alone means undelivered."""
        status = final_status or ("undelivered" if error_code else "delivered")
        if status not in FINAL_STATUSES:
            raise ValueError(f"final_status must be one of {sorted(FINAL_STATUSES)}")
        if status != "delivered" and error_code is None:
            error_code = 30008
        with self._lock:
            self._outcomes[number] = Outcome(create_error, status, error_code)

    def configure(self, settings: Mapping[str, Any]) -> None:
        """Apply a `/_control` JSON document (see `CONTROL_KEYS`)."""
        check_control_keys(settings, CONTROL_KEYS)
        if settings.get("reset"):
            self.reset()
        with self._lock:
            if "latency_ms" in settings:
                self.latency_ms = int(settings["latency_ms"])
            if "hang_seconds" in settings:
                self.hang_seconds = float(settings["hang_seconds"])
            for key in ("callbacks_enabled", "auto_advance"):
                if key in settings:
                    setattr(self, key, bool(settings[key]))
            if "callback_delay" in settings:
                self.callback_delay = float(settings["callback_delay"])
        if "fail" in settings:
            self.fail_next(str(settings["fail"]), int(settings.get("times", 1)))
        for number, outcome in (settings.get("outcomes") or {}).items():
            self.set_outcome(number, **outcome)

    # ---- what tests read -------------------------------------------------------------------------

    @property
    def messages(self) -> list[Message]:
        """Outbound messages created through the API, oldest first (a snapshot)."""
        with self._lock:
            return list(self._messages.values())

    @property
    def inbound(self) -> list[Message]:
        """Inbound messages sent with `simulate_inbound`, oldest first."""
        with self._lock:
            return list(self._inbound)

    @property
    def webhooks(self) -> list[CallbackAttempt]:
        """Every status callback and inbound webhook POSTed, in order, with its result."""
        with self._lock:
            return list(self._webhooks)

    @property
    def create_timestamps(self) -> list[float]:
        """`time.monotonic()` of every authenticated create request, including refused ones."""
        with self._lock:
            return list(self._create_times)

    def get(self, sid: str) -> Message | None:
        """The message (outbound or inbound) with this sid, or None."""
        with self._lock:
            return self._messages.get(sid) or next((m for m in self._inbound if m.sid == sid), None)

    def sent_to(self, number: str) -> list[Message]:
        """Outbound messages created for `number`, oldest first."""
        return [m for m in self.messages if m.to == number]

    def duplicates(self) -> list[Duplicate]:
        """Bodies created more than once for the same recipient."""
        groups: dict[tuple[str, str], list[str]] = {}
        for m in self.messages:
            groups.setdefault((m.to, m.body), []).append(m.sid)
        return [Duplicate(to, body, len(sids), sids) for (to, body), sids in groups.items() if len(sids) > 1]

    def max_creates_per_second(self, window: float = 1.0) -> int:
        """Most create requests seen within any `window` seconds."""
        times, best, start = self.create_timestamps, 0, 0
        for end, moment in enumerate(times):
            while moment - times[start] >= window:
                start += 1
            best = max(best, end - start + 1)
        return best

    def counters(self) -> dict[str, Any]:
        """Counts for `GET /_control` (no numbers, no bodies)."""
        with self._lock:
            messages = list(self._messages.values())
            return {
                "messages": len(messages),
                "inbound": len(self._inbound),
                "by_status": dict(Counter(m.status for m in messages)),
                "creates_attempted": len(self._create_times),
                **dict(self._counters),
                "webhooks_failed": sum(1 for w in self._webhooks if w.error or (w.status_code or 0) >= 400),
                "max_creates_per_second": self.max_creates_per_second(),
                "pending_faults": self._faults.pending,
                "outcomes": len(self._outcomes),
                "latency_ms": self.latency_ms,
                "callbacks_enabled": self.callbacks_enabled,
                "callback_delay": self.callback_delay,
                "auto_advance": self.auto_advance,
            }

    def wait_for_status(self, sid: str, *statuses: str, timeout: float = 5.0) -> Message:
        """Block until message `sid` reaches one of `statuses` (default: any final one)."""
        wanted = set(statuses) or FINAL_STATUSES
        with self._changed:
            if not self._changed.wait_for(
                lambda: (m := self.get(sid)) is not None and m.status in wanted, timeout
            ):
                raise TimeoutError(f"{sid} did not reach {sorted(wanted)}")
            return self.get(sid)  # type: ignore[return-value]

    def wait_idle(self, timeout: float = 5.0) -> None:
        """Block until no lifecycle step or status callback is pending or running."""
        self._jobs.wait_idle(timeout, "status lifecycle still busy")

    def close(self) -> None:
        """Stop the lifecycle thread and wake any request hanging in a "timeout" fault."""
        self._jobs.close()

    # ---- creating messages -----------------------------------------------------------------------

    def take_fault(self) -> str | None:
        with self._lock:
            self._create_times.append(time.monotonic())
            return self._faults.take()

    def create_message(self, account_sid: str, form: Mapping[str, str], media: list[str]) -> dict[str, Any]:
        """Validate a create as Twilio does, store the message, start its lifecycle; return its JSON."""
        try:
            message = self._build_message(account_sid, form, media)
        except TwilioError as err:
            with self._lock:
                self._counters[f"create_error_{err.code}"] += 1
            raise
        with self._lock:
            self._messages[message.sid] = message
            created = message.to_json()  # before the lifecycle thread can move it on
            if self.auto_advance:
                self._jobs.schedule(self.callback_delay, message.sid)
            self._changed.notify_all()
        log.info("message %s to=%s segments=%d", message.sid, mask_number(message.to), message.num_segments)
        return created

    def _build_message(self, account_sid: str, form: Mapping[str, str], media: list[str]) -> Message:
        to, from_ = form.get("To", "").strip(), form.get("From", "").strip() or None
        service, body = form.get("MessagingServiceSid") or None, form.get("Body", "")
        callback = form.get("StatusCallback") or None
        if not to:
            raise TwilioError(21604)
        if not from_ and not service:
            raise TwilioError(21603)
        if not body and not media:
            raise TwilioError(21602)
        if len(body) > MAX_BODY_CHARS:
            raise TwilioError(21617)
        if not E164.match(to):
            raise TwilioError(21211, to=to)
        if from_ and not (E164.match(from_) or _SHORT_CODE.match(from_) or _ALPHA_SENDER.match(from_)):
            raise TwilioError(21212, from_=from_)
        if service and not _MESSAGING_SERVICE_SID.match(service):
            raise TwilioError(21701, mg=service)
        if callback and urlsplit(callback).scheme not in ("http", "https"):
            raise TwilioError(21609, url=callback)
        if to == from_:
            raise TwilioError(21266, to=to)
        if to in MAGIC_TO:
            raise TwilioError(MAGIC_TO[to], to=to, from_=from_ or "")
        if from_ in MAGIC_FROM:
            raise TwilioError(MAGIC_FROM[from_], from_=from_)
        with self._lock:
            outcome = self._outcomes.get(to, Outcome())
        if outcome.create_error:
            raise TwilioError(outcome.create_error, to=to, from_=from_ or "")
        now = self.clock().replace(microsecond=0)
        steps = ["queued"] if service else []
        steps += ["failed"] if outcome.final_status == "failed" else ["sent", outcome.final_status]
        return Message(
            sid="SM" + secrets.token_hex(16),
            account_sid=account_sid,
            to=to,
            from_=from_,
            body=body,
            status="accepted" if service else "queued",
            num_segments=count_segments(body),
            num_media=len(media),
            messaging_service_sid=service,
            status_callback=callback,
            date_created=now,
            date_updated=now,
            seq=next(self._seq),
            steps=steps,
            final_error_code=outcome.error_code,
        )

    def fetch_json(self, account_sid: str, sid: str) -> dict[str, Any] | None:
        """A consistent snapshot of one message's JSON, or None if the account has no such message."""
        with self._lock:
            message = self.get(sid)
            return message.to_json() if message and message.account_sid == account_sid else None

    def list_messages(self, account_sid: str, args: Mapping[str, str]) -> list[Message]:
        """Messages of `account_sid` matching Twilio's list filters, newest first."""
        filters = [
            (key, _parse_date_filter(key, args[key]))
            for key in ("DateSent", "DateSent>", "DateSent<")
            if args.get(key)
        ]
        with self._lock:
            found = [
                m
                for m in itertools.chain(self._messages.values(), self._inbound)
                if m.account_sid == account_sid
            ]
        found = [
            m
            for m in found
            if (not args.get("To") or m.to == args["To"])
            and (not args.get("From") or m.from_ == args["From"])
            and all(_date_matches(m.date_sent, key, value) for key, value in filters)
        ]
        return sorted(found, key=lambda m: (m.date_created, m.seq), reverse=True)
