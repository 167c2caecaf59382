"""The local Aliyun SMS server's state: keys, signatures, templates, limits, texts, faults and pushes."""

from __future__ import annotations

import itertools
import logging
import secrets
import threading
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from typing import Any

from devservers.aliyun_gateway import Gateway
from devservers.aliyun_protocol import (
    CONTROL_KEYS,
    DEFAULT_ACCESS_KEY_ID,
    DEFAULT_ACCESS_KEY_SECRET,
    DEFAULT_BANNED_WORDS,
    DEFAULT_LIMITS,
    DEFAULT_SIGN_NAME,
    DEFAULT_TEMPLATES,
    FAULT_KINDS,
    LIMIT_WINDOWS,
    MAX_NUMBERS,
    AliyunError,
    BusinessError,
    CallbackAttempt,
    Outcome,
    SentSms,
    Template,
    china_time,
    new_request_id,
    normalise_mobile,
    parse_template_param,
    utcnow,
)
from devservers.aliyun_pushes import Pusher, ReceiptsAndReplies
from devservers.control import FaultQueue, check_control_keys
from devservers.twilio_protocol import mask_number

log = logging.getLogger("devservers.aliyun_sms")


class AliyunState(ReceiptsAndReplies):
    """Everything the fake knows. Thread-safe; `close()` stops its push thread."""

    def __init__(
        self,
        access_keys: Mapping[str, str] | None = None,
        *,
        sign_names: Iterable[str] = (DEFAULT_SIGN_NAME,),
        templates: Mapping[str, str] | None = None,
        limits: Mapping[str, int] | None = None,
        banned_words: Iterable[str] = DEFAULT_BANNED_WORDS,
        report_url: str | None = None,
        up_url: str | None = None,
        report_delay: float = 0.0,
        callback_attempts: int = 3,
        callback_retry_delay: float = 1.0,
        callback_timeout: float = 5.0,
        hang_seconds: float = 30.0,
        clock: Callable[[], datetime] = utcnow,
        wall_clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.access_keys = dict(access_keys or {DEFAULT_ACCESS_KEY_ID: DEFAULT_ACCESS_KEY_SECRET})
        self.clock = clock  # send dates, frequency windows, SendDate days
        self.gateway = Gateway(self.access_keys, wall_clock)
        self._defaults: dict[str, Any] = {
            "sign_names": set(sign_names),
            "templates": dict(DEFAULT_TEMPLATES if templates is None else templates),
            "limits": dict(DEFAULT_LIMITS if limits is None else limits),
            "banned_words": list(banned_words),
            "report_url": report_url,
            "up_url": up_url,
            "report_delay": report_delay,
            "hang_seconds": hang_seconds,
        }
        self._lock = threading.RLock()
        self._seq = itertools.count(1)
        self.pusher = Pusher(
            self._reports,
            lambda: self.report_url,
            attempts=callback_attempts,
            retry_delay=callback_retry_delay,
            timeout=callback_timeout,
        )
        self._closing = self.pusher.closing  # also wakes requests parked in a "timeout" fault
        self._reset_locked()

    # ---- switches -------------------------------------------------------------------------------

    def reset(self) -> None:
        """Forget texts, pushes, faults, outcomes and switches; keep the access keys."""
        with self._lock:
            self._reset_locked()
        self.pusher.reset()

    def _reset_locked(self) -> None:
        d = self._defaults
        self.sign_names: set[str] = set(d["sign_names"])
        self.templates: dict[str, Template] = {}
        for code, text in d["templates"].items():
            self.add_template(code, text)
        self.limits: dict[str, int] = dict(d["limits"])
        self.banned_words: list[str] = list(d["banned_words"])
        self.report_url: str | None = d["report_url"]
        self.up_url: str | None = d["up_url"]
        self.report_delay: float = d["report_delay"]
        self.hang_seconds: float = d["hang_seconds"]
        self.callbacks_enabled = True
        self.latency = 0.0
        self._sent: list[SentSms] = []
        self._faults = FaultQueue(FAULT_KINDS)
        self._outcomes: dict[str, Outcome] = {}
        self._counters: Counter[str] = Counter()

    def add_template(self, code: str, text: str) -> Template:
        """Register (approve) a template; refuses texts that break Aliyun's template rules."""
        template = Template.parse(code, text)
        with self._lock:
            self.templates[code] = template
        return template

    def fail_next(self, kind: str, times: int = 1) -> None:
        """The next `times` SendSms calls fail with `kind` (see `FAULT_KINDS`; accepted-* store the text)."""
        with self._lock:
            self._faults.add(kind, times)

    def set_outcome(
        self,
        phone: str,
        *,
        send_error: str | None = None,
        status: str | None = None,
        err_code: str | None = None,
    ) -> None:
        """What happens to texts for `phone`: refused with `send_error`, or delivered/failed/pending."""
        number = normalise_mobile(phone) or phone
        status = status or ("failed" if err_code else "delivered")
        if status not in ("delivered", "failed", "pending"):
            raise ValueError("status must be delivered, failed or pending")
        if status == "failed" and not err_code:
            err_code = "MOBILE_NOT_ON_SERVICE"
        with self._lock:
            self._outcomes[number] = Outcome(send_error, status, err_code)

    def configure(self, settings: Mapping[str, Any]) -> None:
        """Apply a `/_control` JSON document (see `CONTROL_KEYS`)."""
        check_control_keys(settings, CONTROL_KEYS)
        if settings.get("reset"):
            self.reset()
        with self._lock:
            for key in ("latency", "hang_seconds", "report_delay"):
                if key in settings:
                    setattr(self, key, float(settings[key]))
            for key in ("report_url", "up_url"):
                if key in settings:
                    setattr(self, key, settings[key] or None)
            if "callbacks_enabled" in settings:
                self.callbacks_enabled = bool(settings["callbacks_enabled"])
            if "limits" in settings:
                self.limits.update(
                    {k: int(v or 0) for k, v in settings["limits"].items() if k in LIMIT_WINDOWS}
                )
            if "banned_words" in settings:
                self.banned_words = [str(w) for w in settings["banned_words"]]
            if "sign_names" in settings:
                self.sign_names = {str(s) for s in settings["sign_names"]}
        for code, text in (settings.get("templates") or {}).items():
            self.add_template(code, text)
        if "fail" in settings:
            self.fail_next(str(settings["fail"]), int(settings.get("times", 1)))
        for phone, outcome in (settings.get("outcomes") or {}).items():
            self.set_outcome(phone, **outcome)

    # ---- what tests read -------------------------------------------------------------------------

    @property
    def messages(self) -> list[SentSms]:
        """Accepted texts, oldest first (a snapshot)."""
        with self._lock:
            return list(self._sent)

    @property
    def callbacks(self) -> list[CallbackAttempt]:
        """Every push made (receipts and replies), in order, with its result."""
        return self.pusher.log

    def sent_to(self, phone: str) -> list[SentSms]:
        number = normalise_mobile(phone) or phone
        return [m for m in self.messages if m.phone == number]

    def find(self, *, biz_id: str | None = None, out_id: str | None = None) -> list[SentSms]:
        return [
            m
            for m in self.messages
            if (biz_id is None or m.biz_id == biz_id) and (out_id is None or m.out_id == out_id)
        ]

    def counters(self) -> dict[str, Any]:
        """Counts for `GET /_control` (no numbers, no bodies)."""
        with self._lock:
            return {
                "messages": len(self._sent),
                "by_status": dict(
                    Counter({1: "waiting", 2: "failed", 3: "delivered"}[m.status] for m in self._sent)
                ),
                **dict(self._counters),
                "signature_mismatches": self.gateway.mismatches,
                **dict(self.pusher.counts),
                "callbacks_refused": sum(1 for c in self.pusher.log if not c.accepted),
                "pending_faults": self._faults.pending,
                "pending_pushes": self.pusher.pending,
                "outcomes": len(self._outcomes),
                "latency": self.latency,
                "report_delay": self.report_delay,
                "callbacks_enabled": self.callbacks_enabled,
                "limits": dict(self.limits),
                "templates": sorted(self.templates),
            }

    def wait_idle(self, timeout: float = 5.0) -> None:
        """Block until no receipt or push is pending or running."""
        self.pusher.wait_idle(timeout)

    def close(self) -> None:
        """Stop the push thread and wake any request hanging in a "timeout" fault."""
        self.pusher.close()

    def verify(self, *args: Any) -> tuple[str, str]:
        """Check the request's signature (see `Gateway.verify`); return (AccessKeyId, Action)."""
        return self.gateway.verify(*args)

    def take_fault(self, action: str) -> str | None:
        with self._lock:
            self._counters[f"{action}_calls"] += 1
            return self._faults.take() if action == "SendSms" else None

    def _count(self, key: str) -> None:
        with self._lock:
            self._counters[key] += 1

    # ---- SendSms ---------------------------------------------------------------------------------

    def send_sms(self, key_id: str, params: Mapping[str, str]) -> dict[str, Any]:
        """Validate a SendSms as Aliyun does; store one text per number; return the answer body."""
        request_id = new_request_id()
        try:
            texts = self._build(key_id, params)
        except BusinessError as err:
            self._count(f"refused_{err.code}")
            return {"Code": err.code, "Message": err.message, "RequestId": request_id}
        with self._lock:
            for text in texts:
                self._sent.append(text)
                if text.outcome.status != "pending":
                    self.pusher.schedule_report(self.report_delay, text.seq)
        log.info(
            "SendSms %s to=%s template=%s",
            texts[0].biz_id,
            ",".join(mask_number(t.phone) for t in texts),
            texts[0].template_code,
        )
        return {"Code": "OK", "Message": "OK", "BizId": texts[0].biz_id, "RequestId": request_id}

    def _build(self, key_id: str, params: Mapping[str, str]) -> list[SentSms]:
        for name in ("PhoneNumbers", "SignName", "TemplateCode"):
            if not params.get(name):
                raise AliyunError("MissingParameter", detail=name)
        raw_numbers = [n for n in params["PhoneNumbers"].split(",") if n.strip()]
        if len(raw_numbers) > MAX_NUMBERS:
            raise BusinessError("isv.MOBILE_COUNT_OVER_LIMIT")
        numbers = [normalise_mobile(n) for n in raw_numbers]
        if not numbers or None in numbers:
            raise BusinessError("isv.MOBILE_NUMBER_ILLEGAL")
        sign = params["SignName"]
        with self._lock:
            if sign not in self.sign_names:
                raise BusinessError("isv.SMS_SIGNATURE_ILLEGAL")
            template = self.templates.get(params["TemplateCode"])
            if template is None:
                raise BusinessError("isv.SMS_TEMPLATE_ILLEGAL")
            values = parse_template_param(params.get("TemplateParam"), template)
            content = f"【{sign}】{template.render(values)}"
            if any(word and word in content for word in self.banned_words):
                raise BusinessError("isv.BLACK_KEY_CONTROL_LIMIT")
            outcomes = [self._outcomes.get(n, Outcome()) for n in numbers]  # type: ignore[arg-type]
            refused = next((o.send_error for o in outcomes if o.send_error), None)
            if refused:
                raise BusinessError(refused, window="天", permits=self.limits.get("day", 0))
            now = self.clock().replace(microsecond=0)
            for number in numbers:
                self._check_frequency(number, sign, now)  # type: ignore[arg-type]
            biz_id = f"{secrets.randbelow(10**18):018d}^0"
            return [
                SentSms(
                    biz_id=biz_id,
                    phone=number,
                    sign_name=sign,
                    template_code=template.code,
                    params=values,  # type: ignore[arg-type]
                    content=content,
                    out_id=params.get("OutId") or None,
                    send_date=now,
                    access_key_id=key_id,
                    outcome=outcome,
                    seq=next(self._seq),
                )
                for number, outcome in zip(numbers, outcomes, strict=True)
            ]

    def _check_frequency(self, number: str, sign: str, now: datetime) -> None:
        for window, (label, span) in LIMIT_WINDOWS.items():
            permits = self.limits.get(window) or 0
            if not permits:
                continue
            recent = sum(
                1
                for m in self._sent
                if m.phone == number and m.sign_name == sign and now - m.send_date < span
            )
            if recent >= permits:
                raise BusinessError("isv.BUSINESS_LIMIT_CONTROL", window=label, permits=permits)

    # ---- QuerySendDetails ------------------------------------------------------------------------

    def query_send_details(self, key_id: str, params: Mapping[str, str]) -> dict[str, Any]:
        """Texts to one number on one Beijing day, newest first, one page; optionally one BizId."""
        request_id = new_request_id()
        for name in ("PhoneNumber", "SendDate", "PageSize", "CurrentPage"):
            if not params.get(name):
                raise AliyunError("MissingParameter", detail=name)
        number = normalise_mobile(params["PhoneNumber"])
        try:
            day = datetime.strptime(params["SendDate"], "%Y%m%d").date()
            size, page = int(params["PageSize"]), int(params["CurrentPage"])
        except ValueError:
            day, size, page = None, 0, 0
        if number is None:
            return {"Code": "isv.MOBILE_NUMBER_ILLEGAL", "Message": "非法手机号", "RequestId": request_id}
        if day is None or not 1 <= size <= 50 or page < 1:
            return {"Code": "isv.INVALID_PARAMETERS", "Message": "参数异常", "RequestId": request_id}
        biz_id = params.get("BizId") or None
        with self._lock:
            found = [
                m
                for m in self._sent
                if m.phone == number
                and m.access_key_id == key_id
                and china_time(m.send_date)[:10] == day.isoformat()
                and (biz_id is None or m.biz_id == biz_id)
            ]
            found.sort(key=lambda m: (m.send_date, m.seq), reverse=True)
            chunk = [m.detail() for m in found[(page - 1) * size : page * size]]
        return {
            "Code": "OK",
            "Message": "OK",
            "RequestId": request_id,
            "TotalCount": str(len(found)),
            "SmsSendDetailDTOs": {"SmsSendDetailDTO": chunk},
        }


__all__ = ["AliyunState"]
