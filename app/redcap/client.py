"""The one client for REDCap: PyCap behind timeouts, a call-rate ceiling, a field guard and our exceptions.

Everything the service asks of REDCap goes through `RedcapClient`, so four promises hold in one place:
- every call has a timeout (REDCAP_TIMEOUT) and at most REDCAP_MAX_CALLS_PER_SECOND calls start in any
  second, process-wide (REDCap bans IPs that call too fast);
- REDCap's answers become project exceptions: `RedcapUnavailable` (retry later: network error, timeout,
  HTTP 5xx, a ban, an answer that is not JSON), `RedcapRejected` (HTTP 400 with REDCap's error text),
  `RedcapAuthError` (bad token or missing API rights);
- no request ever names a field in REDCAP_FORBIDDEN_FIELDS (the blinded randomization arm): the guard
  raises before anything is sent, and record exports must name their fields;
- the token never appears in a message, log or repr (PyCap puts it in its own assertion texts, so the
  token and URL are checked here first).
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

log = logging.getLogger(__name__)

_FIELD_KEY = re.compile(r"^(fields|forms)\[\d*\]$")
_TOKEN_SHAPE = re.compile(r"^[A-Za-z0-9]{32}$")


class RedcapClientError(Exception):
    """Base of the REDCap client's exceptions; messages never contain the token."""


class RedcapUnavailable(RedcapClientError):
    """REDCap could not be reached or answered unusably; the same call may succeed later."""


class RedcapRejected(RedcapClientError):
    """REDCap refused the request (HTTP 400); `message` is REDCap's own error text."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class RedcapAuthError(RedcapClientError):
    """The token is wrong or lacks the API rights the call needs; retrying will not help."""


class RedcapConfigError(RedcapClientError):
    """The REDCap settings cannot work (URL shape, token shape); the message names the setting."""


class ForbiddenFieldError(RedcapClientError):
    """A request would have named a forbidden field (or exported unnamed fields); nothing was sent."""


# ---------------------------------------------------------------- rate ceiling


class CallRateLimiter:
    """Holds call starts so that no more than `rate` start in any one second, across all threads.

    Two rules: consecutive starts are at least 1/rate apart (no bursts), and with a ceiling of n calls
    per second a call starts more than one second, plus a margin for network jitter (REDCap counts
    arrivals, not our starts), after the call n starts earlier.
    """

    MARGIN_S = 0.1

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._starts: deque[float] = deque()
        self._last = float("-inf")

    def acquire(self, rate: float) -> float:
        """Block until a call may start under `rate` calls per second; returns the seconds waited."""
        per_window = max(1, int(rate))
        interval = 1.0 / rate
        with self._lock:
            now = time.monotonic()
            slot = max(now, self._last + interval)
            while len(self._starts) > per_window:
                self._starts.popleft()
            if len(self._starts) == per_window:
                slot = max(slot, self._starts[0] + 1.0 + self.MARGIN_S)
            self._last = slot
            self._starts.append(slot)
        wait = slot - now
        if wait > 0:
            time.sleep(wait)
        return max(0.0, wait)


_LIMITER = CallRateLimiter()


def process_rate_limiter() -> CallRateLimiter:
    """The limiter shared by every client in this process."""
    return _LIMITER


class RedcapClient:
    """A REDCap project seen through its API token; build with `get_client()` in the app."""

    def __init__(
        self,
        url: str,
        token: str | None,
        *,
        timeout: float = 30.0,
        max_calls_per_second: float = 5.0,
        forbidden_fields: Iterable[str] = ("randomization_group",),
        record_id_field: str = "record_id",
        exportable_forms: Iterable[str] = (),
        limiter: CallRateLimiter | None = None,
    ) -> None:
        if not url or not url.endswith("/api/"):
            raise RedcapConfigError("REDCAP_API_URL: must be REDCap's API address ending in /api/")
        if not token:
            raise RedcapConfigError("REDCAP_API_TOKEN: not set")
        if not _TOKEN_SHAPE.match(token):
            # PyCap would put the token itself into its assertion message: refuse before it can.
            raise RedcapConfigError(
                f"REDCAP_API_TOKEN: expected 32 letters or digits, got {len(token)} characters"
            )
        self.url = url
        self.timeout = float(timeout)
        self.max_calls_per_second = float(max_calls_per_second)
        self.forbidden = {name.strip().lower() for name in forbidden_fields if name.strip()}
        self.record_id_field = record_id_field
        # Instruments whose data may be exported by form name (metadata refresh checks they hold no
        # forbidden field); any other form could carry the blinded arm, so it is asked field by field.
        self.exportable_forms = {name for name in exportable_forms if name}
        self.calls = 0
        self._limiter = limiter or _LIMITER
        self._token = token
        # Imported here, not at the top: PyCap and requests cost about 0.2 s of every start-up otherwise.
        from app.redcap.pycap import GuardedProject

        self._project = GuardedProject(self, url, token, self.timeout)
        # PyCap otherwise exports the whole data dictionary to learn the record id field name.
        self._project._def_field = record_id_field
        self._longitudinal: bool | None = None

    def __repr__(self) -> str:
        return f"<RedcapClient {self.url}>"

    # ------------------------------------------------------------ hooks used by _GuardedProject
    def _before_call(self) -> None:
        self._limiter.acquire(self.max_calls_per_second)
        self.calls += 1

    def _guard_payload(self, payload: Mapping[str, Any]) -> None:
        """Refuse a request naming a forbidden field, or a record export that does not name its fields."""
        named: list[str] = []
        forms: list[str] = []
        for key, value in payload.items():
            match = _FIELD_KEY.match(key)
            if match:
                (forms if match.group(1) == "forms" else named).append(str(value))
            elif key in {"fields", "forms"} and isinstance(value, str):
                parts = [part.strip() for part in value.split(",") if part.strip()]
                (forms if key == "forms" else named).extend(parts)
        hit = sorted({n for n in named if n.lower() in self.forbidden})
        logic = str(payload.get("filterLogic") or "").lower()
        hit += sorted(f for f in self.forbidden if f"[{f}]" in logic or f"[{f}(" in logic)
        data = payload.get("data")
        if isinstance(data, str):
            hit += sorted(f for f in self.forbidden if f'"{f}"' in data.lower())
        if hit:
            raise ForbiddenFieldError(f"refused to send a REDCap request naming forbidden field {hit[0]!r}")
        if payload.get("content") == "record" and "data" not in payload and payload.get("action") != "delete":
            if not named and not forms:
                raise ForbiddenFieldError("refused a REDCap record export that does not name its fields")
            unknown = sorted(set(forms) - self.exportable_forms)
            if unknown:
                raise ForbiddenFieldError(
                    f"refused a REDCap record export of instrument {unknown[0]!r}: name its fields instead"
                )

    def _clean(self, text: str) -> str:
        return text.replace(self._token, "[token]") if self._token else text

    def _unavailable(self, message: str) -> RedcapUnavailable:
        return RedcapUnavailable(message)

    def _unusable_answer(self, status: int | None) -> RedcapUnavailable:
        if status == 429:
            return RedcapUnavailable("REDCap refused the call: rate limit or IP ban (HTTP 429)")
        if status is not None and status >= 500:
            return RedcapUnavailable(f"REDCap answered HTTP {status}")
        return RedcapUnavailable(f"REDCap's answer was not JSON (HTTP {status})")

    def _error_answer(self, exc: Exception, status: int | None) -> RedcapClientError:
        content = exc.args[0] if exc.args else ""
        if isinstance(content, dict):
            message = str(content.get("error", "")) or json.dumps(content)
        else:
            message = str(content)
        message = self._clean(message)[:2000]
        if status is None:
            return RedcapUnavailable(f"REDCap request failed: {type(exc).__name__}")
        if status == 429 or status >= 500:
            return RedcapUnavailable(f"REDCap answered HTTP {status}")
        if status in (401, 403):
            return RedcapAuthError(f"REDCap refused the token or its rights (HTTP {status}): {message}")
        return RedcapRejected(message)

    # ------------------------------------------------------------ the calls the service makes
    def project_info(self) -> dict[str, Any]:
        """Project settings (title, is_longitudinal…)."""
        info = self._project.export_project_info()
        if not isinstance(info, dict):
            raise RedcapUnavailable("REDCap's project information was not an object")
        return info

    def is_longitudinal(self) -> bool:
        """Whether the project has events (asked once per client)."""
        if self._longitudinal is None:
            try:
                flag = self.project_info().get("is_longitudinal", 0)
                self._longitudinal = str(flag).strip().lower() in {"1", "true"}
            except RedcapRejected:  # a server without project info: classic projects refuse event exports
                try:
                    self._longitudinal = bool(self.export_events())
                except RedcapRejected:
                    self._longitudinal = False
        return self._longitudinal

    def export_metadata(self, forms: Sequence[str] | None = None) -> list[dict[str, str]]:
        """The data dictionary rows, optionally of some instruments only."""
        rows = self._project.export_metadata(forms=list(forms) if forms else None)
        return _list_of_dicts(rows, "metadata")

    def export_events(self) -> list[dict[str, Any]]:
        """The project's events (longitudinal projects only)."""
        return _list_of_dicts(self._project.export_events(), "events")

    def export_form_event_mapping(self) -> list[dict[str, Any]]:
        """Which instrument is designated for which event."""
        return _list_of_dicts(self._project.export_instrument_event_mappings(), "form-event mapping")

    def export_records(
        self,
        fields: Sequence[str] = (),
        *,
        records: Sequence[str] | None = None,
        events: Sequence[str] | None = None,
        forms: Sequence[str] | None = None,
        filter_logic: str | None = None,
    ) -> list[dict[str, str]]:
        """Flat, raw-coded rows of the named fields (and of the service's own instruments) only."""
        if not fields and not forms:
            raise ForbiddenFieldError("refused a REDCap record export that does not name its fields")
        rows = self._project.export_records(
            fields=list(fields) if fields else None,
            forms=list(forms) if forms else None,
            records=list(records) if records else None,
            events=list(events) if events else None,
            filter_logic=filter_logic or None,
            raw_or_label="raw",
        )
        return _list_of_dicts(rows, "records")

    def import_records(self, rows: Sequence[Mapping[str, Any]]) -> list[str]:
        """Import flat rows (overwriteBehavior normal, dates YMD); returns the record ids REDCap confirms."""
        for row in rows:
            bad = [k for k in row if k.lower() in self.forbidden]
            if bad:
                raise ForbiddenFieldError(
                    f"refused to send a REDCap import naming forbidden field {bad[0]!r}"
                )
        answer = self._project.import_records(
            [dict(row) for row in rows],
            return_content="ids",
            overwrite="normal",
            date_format="YMD",
        )
        if isinstance(answer, list):
            return [str(item) for item in answer]
        sent = list(dict.fromkeys(str(row.get(self.record_id_field, "")) for row in rows))
        if isinstance(answer, dict) and str(answer.get("count", "")) == str(len(sent)):
            return sent  # a server that answers a count for returnContent=ids: every record landed
        raise RedcapUnavailable("REDCap's import answer was not a list of record ids")


def _list_of_dicts(value: Any, what: str) -> list[dict[str, Any]]:
    if not isinstance(value, list) or not all(isinstance(row, dict) for row in value):
        raise RedcapUnavailable(f"REDCap's {what} answer was not a JSON list of objects")
    return value


def client_from_config(config: Mapping[str, Any]) -> RedcapClient:
    """A client for the REDCap settings in `config` (a Flask config or Config attributes as a mapping)."""
    roster_fields = config.get("REDCAP_ROSTER_FIELDS") or {}
    return RedcapClient(
        config.get("REDCAP_API_URL") or "",
        config.get("REDCAP_API_TOKEN"),
        timeout=config.get("REDCAP_TIMEOUT", 30.0),
        max_calls_per_second=config.get("REDCAP_MAX_CALLS_PER_SECOND", 5.0),
        forbidden_fields=config.get("REDCAP_FORBIDDEN_FIELDS") or ["randomization_group"],
        record_id_field=roster_fields.get("record_id", "record_id"),
        exportable_forms=[
            config.get("REDCAP_QUESTIONNAIRE_INSTRUMENT") or "",
            config.get("REDCAP_CONTACT_INSTRUMENT") or "",
        ],
    )


def get_client() -> RedcapClient:
    """The REDCap client for the current Flask app's settings."""
    from flask import current_app

    return client_from_config(current_app.config)
