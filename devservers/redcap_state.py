"""The local REDCap server's state: records, a call log, counters, latency and fault switches.

Tests drive it directly in Python; `make run` drives it over `POST /_control`. Everything is guarded by one
lock so the threaded server and the test thread see consistent data. The call log records what was asked
(content, action, field names, counts, timestamps) and never the token or any record value.
"""

from __future__ import annotations

import hmac
import threading
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

from devservers import redcap_import as ri
from devservers import redcap_records as rr
from devservers.redcap_project import ProjectDefinition

FAULT_KINDS = {"500", "502", "503", "timeout", "not_json", "ban"}
DEFAULT_HANG_S = 10.0


@dataclass
class Fault:
    """A fault to serve instead of an answer; `remaining=None` means until reset."""

    kind: str
    remaining: int | None = 1
    hang_s: float = DEFAULT_HANG_S


class RedcapState:
    """Records and switches behind one local REDCap project (thread-safe)."""

    def __init__(
        self,
        project: ProjectDefinition,
        token: str,
        *,
        rate_limit_per_minute: int | None = None,
        api_export: bool = True,
        api_import: bool = True,
    ) -> None:
        self.project = project
        self._token = token
        self.lock = threading.RLock()
        self.store: rr.Store = {}
        self.calls: list[dict[str, Any]] = []
        self.counters: Counter[str] = Counter()
        self.warnings: list[dict[str, str]] = []
        self.latency_ms = 0
        self.fault: Fault | None = None
        self.banned = False
        self.rate_limit_per_minute = rate_limit_per_minute
        self.api_export = api_export
        self.api_import = api_import
        self._release = threading.Event()

    # ------------------------------------------------------------ auth
    def token_ok(self, token: str) -> bool:
        """Compare without leaking timing; the token itself is never stored anywhere else."""
        return bool(token) and hmac.compare_digest(token.encode(), self._token.encode())

    # ------------------------------------------------------------ records
    def seed_records(self, rows: list[dict[str, object]]) -> int:
        """Validate and store flat rows as an API import would; rows without an event go to the first one."""
        first_event = self.project.event_names()[0]
        prepared = [
            {**row, "redcap_event_name": row.get("redcap_event_name") or first_event}
            if self.project.longitudinal
            else dict(row)
            for row in rows
        ]
        with self.lock:
            plan = ri.plan_import(self.project, prepared, overwrite=False)
            ri.apply_import(self.store, plan)
            return len(plan.record_ids)

    def records(self, **filters: Any) -> list[dict[str, str]]:
        """A snapshot of all data as REDCap's flat export would return it (filters as in ExportRequest)."""
        with self.lock:
            return rr.export_rows(self.project, self.store, rr.ExportRequest(**filters))

    def value(self, record: str, field: str, event: str | None = None) -> str:
        """One stored value ('' if blank), for short test assertions."""
        key = (record, event if event is not None else self.project.event_names()[0])
        with self.lock:
            return rr.cell(self.project, self.store, key, field)

    def clear_records(self) -> None:
        """Forget all data (and range warnings)."""
        with self.lock:
            self.store.clear()
            self.warnings.clear()

    # ------------------------------------------------------------ faults
    def set_latency(self, ms: int) -> None:
        """Delay every API answer by `ms` milliseconds."""
        with self.lock:
            self.latency_ms = max(0, int(ms))

    def fail(self, kind: str, count: int | None = 1, hang_s: float = DEFAULT_HANG_S) -> None:
        """Serve `count` faults of `kind` (None = until reset); 'ban' bans this client until reset."""
        if kind not in FAULT_KINDS:
            raise ValueError(f"fault must be one of {sorted(FAULT_KINDS)}")
        with self.lock:
            if kind == "ban":
                self.banned = True
                return
            self.fault = Fault(kind=kind, remaining=count, hang_s=float(hang_s))
            self._release.clear()

    def take_fault(self) -> Fault | None:
        """The fault to serve for this call, if any (and count it down)."""
        with self.lock:
            fault = self.fault
            if fault is None:
                return None
            if fault.remaining is not None:
                fault.remaining -= 1
                if fault.remaining <= 0:
                    self.fault = None
            return Fault(fault.kind, fault.remaining, fault.hang_s)

    def hang(self, seconds: float) -> None:
        """Sleep like a stuck server; `reset()` or `close()` wakes every hanging call at once."""
        self._release.wait(seconds)

    def reset(self) -> None:
        """Clear faults, latency and a ban; records and the call log are kept."""
        with self.lock:
            self.fault = None
            self.latency_ms = 0
            self.banned = False
            self._release.set()

    def close(self) -> None:
        """Release hanging calls so a stopping server does not wait for them."""
        self._release.set()

    # ------------------------------------------------------------ call log
    def note_arrival(self) -> bool:
        """Count a hit for the rate limiter; returns False if the client is (now or already) banned.

        Like REDCap's rate limiter, the hit that crosses the threshold is still served; later ones are not.
        """
        now = time.monotonic()
        with self.lock:
            if self.banned:
                return False
            limit = self.rate_limit_per_minute
            if limit:
                recent = sum(1 for c in self.calls if now - c["t"] < 60.0)
                if recent + 1 > limit:
                    self.banned = True
            return True

    def log_call(self, entry: dict[str, Any]) -> None:
        """Record a call as it arrives (names and counts only, never the token or values)."""
        with self.lock:
            self.calls.append(entry)
            self.counters[f"{entry.get('content')}.{entry.get('action')}"] += 1

    def finish_call(self, entry: dict[str, Any], status: int) -> None:
        """Complete a logged call with its HTTP status and count its outcome."""
        with self.lock:
            entry["status"] = status
            self.counters[f"outcome.{entry.get('outcome')}"] += 1

    def clear_calls(self) -> None:
        """Empty the call log and counters."""
        with self.lock:
            self.calls.clear()
            self.counters.clear()

    def max_calls_in_window(self, window_s: float = 1.0) -> int:
        """The most calls that arrived within any `window_s` seconds, to assert a rate ceiling."""
        with self.lock:
            times = sorted(c["t"] for c in self.calls)
        best, start = 0, 0
        for end, t in enumerate(times):
            while t - times[start] >= window_s:
                start += 1
            best = max(best, end - start + 1)
        return best

    def snapshot(self) -> dict[str, Any]:
        """Counters and switches, as `GET /_control` returns them."""
        with self.lock:
            fault = (
                None
                if self.fault is None
                else {
                    "fail": self.fault.kind,
                    "remaining": self.fault.remaining,
                    "hang_s": self.fault.hang_s,
                }
            )
            return {
                "calls": len(self.calls),
                "counters": dict(self.counters),
                "latency_ms": self.latency_ms,
                "fault": fault,
                "banned": self.banned,
                "rate_limit_per_minute": self.rate_limit_per_minute,
                "max_calls_per_second": self.max_calls_in_window(1.0),
                "records": len({k[0] for k in self.store}),
                "record_events": len(self.store),
                "warnings": len(self.warnings),
            }

    def control(self, payload: dict[str, Any]) -> dict[str, Any]:
        """Apply a `/_control` JSON body: reset, latency_ms, fail/count/hang_s, rate limit, clearing."""
        if payload.get("reset"):
            self.reset()
        if payload.get("clear_calls"):
            self.clear_calls()
        if payload.get("clear_records"):
            self.clear_records()
        if "latency_ms" in payload:
            self.set_latency(int(payload["latency_ms"]))
        if "rate_limit_per_minute" in payload:
            limit = payload["rate_limit_per_minute"]
            with self.lock:
                self.rate_limit_per_minute = int(limit) if limit else None
        if "fail" in payload:
            count = payload.get("count", 1)
            self.fail(
                str(payload["fail"]),
                None if count is None else int(count),
                float(payload.get("hang_s", DEFAULT_HANG_S)),
            )
        return self.snapshot()
