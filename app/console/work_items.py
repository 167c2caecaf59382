"""The rows of the work list and the shape of a source, apart from the list itself.

Kept out of `app.console.worklist` so a source in another module (`enrollment_work`) can build its rows
while the work list imports that source by name: the arrows run one way.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


@dataclass
class WorkItem:
    """One row of the work list. `action` names the control the page shows (see worklist.html)."""

    rank: int
    kind: str
    participant_id: int
    record_id: str
    why: str
    sort_key: datetime
    action: str
    visit_id: int | None = None
    visit_key: str | None = None
    submission_id: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class WorkList:
    items: list[WorkItem]
    truncated: list[str]  # kinds that had more rows than SOURCE_LIMIT
    # Service-wide problems shown above the rows (e.g. SMS sending stopped by a provider error).
    alerts: list[str] = field(default_factory=list)


# A kind of work: `now` and a row limit in, that kind's rows out, most urgent first.
Source = Callable[[datetime, int], list[WorkItem]]
