"""The clock of `make test-timeshift`: every clock the tests and the product read, moved by `TIMESHIFT`.

Why time-machine and not Debian's `faketime`: faketime moves the process clock through LD_PRELOAD
and breaks `time.sleep` here (`OSError: [Errno 22]`), while time-machine moves `datetime.now()`,
`date.today()` and `time.time()` inside Python and leaves sleeping and `time.monotonic()` alone.

This folder goes on PYTHONPATH, so its `sitecustomize.py` starts the shift at interpreter start in
the pytest process and in every Python subprocess the tests start (the scheduler, gunicorn, the
`flask` commands), each moved by the same amount from the real now and ticking from there. Tests
that freeze or move the clock themselves (the `time_machine` fixture) nest inside the shift.
"""

from __future__ import annotations

import os
import re
from datetime import UTC, datetime, timedelta

ENV = "TIMESHIFT"
_UNITS = {"d": "days", "h": "hours", "m": "minutes", "s": "seconds"}
_started: list[object] = []


def parse_shift(text: str) -> timedelta:
    """`+400d`, `-20d`, `+3h`, `-90m`, `+10s` (a sign, a whole number, a unit) as a timedelta."""
    found = re.fullmatch(r"\s*([+-])(\d+)([dhms])\s*", text)
    if not found:
        raise ValueError(f"{ENV}={text!r}: expected a sign, a number and d/h/m/s, e.g. +400d or -20d")
    sign, amount, unit = found.groups()
    delta = timedelta(**{_UNITS[unit]: int(amount)})
    return delta if sign == "+" else -delta


def shift_from_environment() -> timedelta | None:
    """The shift asked for in the environment, or None when the clock is left alone."""
    text = os.environ.get(ENV, "").strip()
    return parse_shift(text) if text else None


def start() -> timedelta | None:
    """Move this process's clocks by the environment's shift (once), ticking; returns the shift."""
    shift = shift_from_environment()
    if shift is None or _started:
        return shift
    import time_machine

    travel = time_machine.travel(datetime.now(UTC) + shift, tick=True)
    travel.start()
    _started.append(travel)
    return shift


def active() -> bool:
    """Whether this process runs on a shifted clock."""
    return bool(_started)
