"""The local Tencent Cloud SMS server's state: account set-up, texts, limits, reports, replies, switches."""

from __future__ import annotations

import logging
import secrets
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from devservers.control import FaultQueue, check_control_keys
from devservers.tencent_callbacks import ReportsAndCallbacks
from devservers.tencent_protocol import (
    BANNED_WORDS,
    DEFAULT_APP_ID,
    DEFAULT_SECRET_ID,
    DEFAULT_SECRET_KEY,
    DEFAULT_SIGN,
    FAIL_DEFAULTS,
    FAULT_KINDS,
    MAX_NUMBERS,
    CallbackAttempt,
    Outcome,
    Sent,
    Template,
    TencentError,
    beijing_day,
    fee,
    fits,
    has_url,
    mainland_number,
    mask_number,
    placeholders,
    render,
    request_id,
    required_int,
    required_str,
    status_entry,
    string_list,
)
from devservers.worker import DueJobs

log = logging.getLogger("devservers.tencent_sms")

DEFAULT_TEMPLATES = {
    "2000001": Template("您好，您的{1}随访已开放，请于{2}前完成：https://followup.example.cn/s/{3}"),
    "2000002": Template("提醒：您的{1}随访将于{2}截止，请尽快完成：https://followup.example.cn/s/{3}"),
    "2000003": Template("随访系统提示：记录{1}出现需关注的回答，请及时查看。"),
}
# The SMS_TEMPLATES that maps the service's kinds onto the demo templates above (tests, benchmarks).
DEMO_SMS_TEMPLATES = {
    "invite": {"zh": "2000001"},
    "reminder": {"zh": "2000002"},
    "redflag_alert": {"zh": "2000003"},
}
LIMIT_KEYS = frozenset({"same_content_30s", "hourly", "daily", "max_param_chars"})
CONTROL_KEYS = frozenset(
    {
        "reset",
        "latency_ms",
        "hang_seconds",
        "callbacks_enabled",
        "report_delay",
        "status_url",
        "reply_url",
        "fail",
        "times",
        "action",
        "outcomes",
        "limits",
        "templates",
        "signs",
        "apps",
        "banned_words",
    }
)


class TencentState(ReportsAndCallbacks):
    """All the fake knows, thread-safe. `clock` gives unix seconds (signature skew, limits, reports)."""

    def __init__(
        self,
        credentials: Mapping[str, str] | None = None,
        *,
        apps: Iterable[str] = (DEFAULT_APP_ID,),
        signs: Iterable[str] = (DEFAULT_SIGN,),
        templates: Mapping[str, Template | str] | None = None,
        banned_words: Iterable[str] = BANNED_WORDS,
        status_url: str | None = None,
        reply_url: str | None = None,
        report_delay: float = 0.0,
        callbacks_enabled: bool = True,
        callback_timeout: float = 5.0,
        callback_attempts: int = 3,
        retry_delay: float = 0.2,
        hang_seconds: float = 30.0,
        same_content_30s: int | None = 1,
        hourly: int | None = None,
        daily: int | None = 10,
        max_param_chars: int | None = None,
        pull_session_context: bool = True,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.credentials = dict(credentials or {DEFAULT_SECRET_ID: DEFAULT_SECRET_KEY})
        self.apps, self.signs = set(apps), set(signs)
        self.templates: dict[str, Template] = {}
        self.add_templates(DEFAULT_TEMPLATES if templates is None else templates)
        self.banned_words = list(banned_words)
        self.status_url, self.reply_url = status_url, reply_url
        self.report_delay, self.callbacks_enabled = report_delay, callbacks_enabled
        self.callback_timeout, self.callback_attempts = callback_timeout, max(callback_attempts, 1)
        self.retry_delay, self.hang_seconds = retry_delay, hang_seconds
        self.limits: dict[str, int | None] = {
            "same_content_30s": same_content_30s,
            "hourly": hourly,
            "daily": daily,
            "max_param_chars": max_param_chars,
        }
        self.pull_session_context = pull_session_context
        self.clock = clock
        self._lock = threading.RLock()
        self._changed = threading.Condition(self._lock)
        self._closing = threading.Event()
        self._jobs: DueJobs[str] = DueJobs(
            self._changed,
            self._closing,
            self._take_reports,
            name="tencent-reports",
            log=log,
            failure="status push failed: %s",
        )
        self._reset_locked()

    # ---- set-up and switches ----------------------------------------------------------------------

    def add_templates(self, templates: Mapping[str, Template | str]) -> None:
        """Register approved templates (id -> text with {1}, {2} … or a Template)."""
        for tid, tpl in templates.items():
            self.templates[str(tid)] = tpl if isinstance(tpl, Template) else Template(str(tpl))

    def reset(self) -> None:
        """Forget texts, reports, callbacks, replies, faults, outcomes, latency; keep the account set-up."""
        with self._lock:
            self._reset_locked()
            self._changed.notify_all()

    def _reset_locked(self) -> None:
        self.latency_ms = 0
        self._sent: list[Sent] = []
        self._replies: list[dict[str, Any]] = []
        self._callbacks: list[CallbackAttempt] = []
        self._faults = FaultQueue(FAULT_KINDS)
        self._outcomes: dict[str, Outcome] = {}
        self._counters: Counter[str] = Counter()
        self._jobs.clear()  # a push already running finishes

    def fail_next(self, kind: str, times: int = 1, action: str | None = None) -> None:
        """Next `times` calls (of `action`, or any): RequestLimitExceeded, InternalError, hang, http502."""
        with self._lock:
            self._faults.add(kind, times, action)

    def take_fault(self, action: str) -> str | None:
        with self._lock:
            return self._faults.take(action)

    def set_outcome(self, number: str, **fields: Any) -> None:
        """Texts for `number`: send_code=… refuses them at send; report_status="FAIL" fails them later."""
        key = mainland_number(number) or number
        if fields.get("report_status") == "FAIL":
            fields = {**FAIL_DEFAULTS, **fields}
        with self._lock:
            self._outcomes[key] = Outcome(**fields)

    def configure(self, doc: Mapping[str, Any]) -> None:
        """Apply a `POST /_control` document; unknown keys are refused."""
        check_control_keys(doc, CONTROL_KEYS)
        if doc.get("reset"):
            self.reset()
        with self._lock:
            for key in (
                "latency_ms",
                "hang_seconds",
                "callbacks_enabled",
                "report_delay",
                "status_url",
                "reply_url",
            ):
                if key in doc:
                    setattr(self, key, doc[key])
            limits = doc.get("limits", {})
            if set(limits) - LIMIT_KEYS:
                raise ValueError(f"unknown limits: {sorted(set(limits) - LIMIT_KEYS)}")
            self.limits.update(limits)
            self.add_templates(doc.get("templates", {}))
            self.signs.update(doc.get("signs", []))
            self.apps.update(str(a) for a in doc.get("apps", []))
            if "banned_words" in doc:
                self.banned_words = list(doc["banned_words"])
        for number, fields in doc.get("outcomes", {}).items():
            self.set_outcome(number, **fields)
        if "fail" in doc:
            self.fail_next(doc["fail"], int(doc.get("times", 1)), doc.get("action"))

    # ---- reading ------------------------------------------------------------------------------------

    @property
    def sent(self) -> list[Sent]:
        with self._lock:
            return list(self._sent)

    @property
    def callbacks(self) -> list[CallbackAttempt]:
        with self._lock:
            return list(self._callbacks)

    @property
    def replies(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self._replies)

    def sent_to(self, number: str) -> list[Sent]:
        key = mainland_number(number)
        return [s for s in self.sent if s.subscriber == key]

    def by_session(self, session_context: str) -> list[Sent]:
        return [s for s in self.sent if s.session_context == session_context]

    def counters(self) -> dict[str, Any]:
        """Counts for `GET /_control` (no numbers, no bodies)."""
        with self._lock:
            return {
                "sent": len(self._sent),
                "by_report_status": dict(Counter(s.report_status or "PENDING" for s in self._sent)),
                "callbacks": len(self._callbacks),
                "callbacks_failed": sum(1 for c in self._callbacks if not c.accepted),
                "replies": len(self._replies),
                "pending_faults": self._faults.pending,
                "latency_ms": self.latency_ms,
                "callbacks_enabled": self.callbacks_enabled,
                "report_delay": self.report_delay,
                "limits": dict(self.limits),
                **dict(self._counters),
            }

    def wait_idle(self, timeout: float = 5.0) -> None:
        """Block until no delivery report is pending or being pushed."""
        self._jobs.wait_idle(timeout, "delivery reports still pending")

    def close(self) -> None:
        """Stop the report thread and wake any request parked in a "hang" fault."""
        self._jobs.close()

    # ---- SendSms ------------------------------------------------------------------------------------

    def send_sms(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """Validate and accept a SendSms call as Tencent does; the `Response` object."""
        numbers = string_list(body, "PhoneNumberSet", required=True)
        params = string_list(body, "TemplateParamSet")
        app_id, template_id = required_str(body, "SmsSdkAppId"), required_str(body, "TemplateId")
        sign, context = str(body.get("SignName") or ""), str(body.get("SessionContext") or "")
        if not numbers:
            raise TencentError("MissingParameter.EmptyPhoneNumberSet")
        if len(numbers) > MAX_NUMBERS:
            raise TencentError("LimitExceeded.PhoneNumberCountLimit")
        with self._lock:
            if app_id not in self.apps:
                raise TencentError("InvalidParameterValue.SdkAppIdNotExist")
            if sign not in self.signs:
                raise TencentError("FailedOperation.SignatureIncorrectOrUnapproved")
            template = self.templates.get(template_id)
            if template is None:
                raise TencentError("FailedOperation.TemplateIncorrectOrUnapproved")
            content = f"【{sign}】" + render(template.text, params) if fits(template, params) else ""
            shared = self._content_error(template, params, content)
            statuses = [
                self._one(n, shared, app_id, sign, template_id, params, content, context) for n in numbers
            ]
            self._changed.notify_all()
        return {"SendStatusSet": statuses, "RequestId": request_id()}

    def _content_error(self, template: Template, params: list[str], content: str) -> str | None:
        """The per-number code every number of this request gets, if the content itself is refused."""
        if placeholders(template.text) != len(params):
            return "FailedOperation.TemplateParamSetNotMatchApprovedTemplate"
        if template.verification and not all(p.isdigit() and len(p) <= 6 for p in params):
            return "InvalidParameterValue.TemplateParameterFormatError"
        longest = self.limits["max_param_chars"]
        if longest is not None and any(len(p) > longest for p in params):
            return "InvalidParameterValue.TemplateParameterLengthLimit"
        if any(has_url(p) for p in params):
            return "InvalidParameterValue.ProhibitedUseUrlInTemplateParameter"
        if any(word in content for word in self.banned_words):
            return "FailedOperation.ContainSensitiveWord"
        return None

    def _one(
        self,
        number: str,
        shared: str | None,
        app_id: str,
        sign: str,
        template_id: str,
        params: list[str],
        content: str,
        context: str,
    ) -> dict[str, Any]:
        subscriber = mainland_number(number)
        outcome = self._outcomes.get(subscriber or number, Outcome())
        now = int(self.clock())
        code = shared or (
            "InvalidParameterValue.IncorrectPhoneNumber"
            if subscriber is None
            else outcome.send_code or self._limit_hit(subscriber, content, now)
        )
        if code:
            self._counters[f"refused_{code}"] += 1
            log.info("refused to=%s code=%s", mask_number(number), code)
            return status_entry(number, code, context)
        sent = Sent(
            serial_no=f"{secrets.randbelow(10**4):04d}:{secrets.token_hex(14)}",
            app_id=app_id,
            phone="+86" + subscriber,  # type: ignore[operator]
            sign=sign,
            template_id=template_id,
            params=list(params),
            content=content,
            fee=fee(content),
            session_context=context,
            sent_at=now,
        )
        self._sent.append(sent)
        self._jobs.schedule(self.report_delay, sent.serial_no)
        log.info("sent %s to=%s fee=%d", sent.serial_no, mask_number(sent.phone), sent.fee)
        return {
            **status_entry(number, "Ok", context),
            "SerialNo": sent.serial_no,
            "Fee": sent.fee,
            "IsoCode": "CN",
        }

    def _limit_hit(self, subscriber: str, content: str, now: int) -> str | None:
        mine = [s for s in self._sent if s.subscriber == subscriber]
        same = self.limits["same_content_30s"]
        if same is not None and sum(1 for s in mine if s.content == content and now - s.sent_at < 30) >= same:
            return "LimitExceeded.PhoneNumberThirtySecondLimit"
        hourly = self.limits["hourly"]
        if hourly is not None and sum(1 for s in mine if now - s.sent_at < 3600) >= hourly:
            return "LimitExceeded.PhoneNumberOneHourLimit"
        daily, today = self.limits["daily"], beijing_day(now)
        if daily is not None and sum(1 for s in mine if beijing_day(s.sent_at) == today) >= daily:
            return "LimitExceeded.PhoneNumberDailyLimit"
        return None

    # ---- PullSmsSendStatusByPhoneNumber ----------------------------------------------------------

    def pull_status(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """Delivery reports for one number between BeginTime and EndTime (send time, unix seconds)."""
        begin, offset, limit = (required_int(body, k) for k in ("BeginTime", "Offset", "Limit"))
        end = int(body["EndTime"]) if body.get("EndTime") is not None else int(self.clock())
        phone, app_id = required_str(body, "PhoneNumber"), required_str(body, "SmsSdkAppId")
        if not 0 < limit <= 100:
            raise TencentError("InvalidParameterValue.LimitVerifyFail")
        if offset < 0:
            raise TencentError("InvalidParameterValue.OffsetVerifyFail")
        if begin > end:
            raise TencentError("InvalidParameterValue.InvalidStartTime")
        subscriber = mainland_number(phone)
        if subscriber is None:
            raise TencentError("InvalidParameterValue.IncorrectPhoneNumber")
        with self._lock:
            if app_id not in self.apps:
                raise TencentError("InvalidParameterValue.SdkAppIdNotExist")
            found = [
                s.pull_json(self.pull_session_context)
                for s in self._sent
                if s.subscriber == subscriber
                and s.app_id == app_id
                and s.report_status is not None  # a text shows up here only once its report exists
                and begin <= s.sent_at <= end
            ]
        return {"PullSmsSendStatusSet": found[offset : offset + limit], "RequestId": request_id()}
