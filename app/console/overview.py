"""Visit overview: counts per visit and status, response rate, and completions per week as inline SVG.

The chart is drawn here as plain SVG markup (no chart library, no script, no CDN), so it shows
on any phone and in a printed page.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import cast
from zoneinfo import ZoneInfo

from markupsafe import Markup, escape
from sqlalchemy import func, select

from app.extensions import db
from app.models import Visit, VisitStatus
from app.models.visit import VISIT_STATUSES


@dataclass
class VisitCounts:
    """One visit key's row of the overview table."""

    visit_key: str
    counts: dict[str, int]

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    @property
    def response_rate(self) -> float | None:
        """Completed among visits whose outcome is known (completed or missed); None before any."""
        done = self.counts.get("completed", 0)
        known = done + self.counts.get("missed", 0)
        return None if known == 0 else done / known


def visit_counts(plan_keys: list[str]) -> list[VisitCounts]:
    """Counts of visits per key and status, in plan order (keys no longer in the plan come last)."""
    rows = db.session.execute(
        select(Visit.visit_key, Visit.status, func.count()).group_by(Visit.visit_key, Visit.status)
    ).all()
    by_key: dict[str, dict[str, int]] = {}
    for key, status, count in rows:
        by_key.setdefault(key, dict.fromkeys(VISIT_STATUSES, 0))[status] = count
    keys = [k for k in plan_keys] + sorted(k for k in by_key if k not in plan_keys)
    return [VisitCounts(k, by_key.get(k, dict.fromkeys(VISIT_STATUSES, 0))) for k in keys]


def week_start(day: date) -> date:
    """The Monday of `day`'s week."""
    return day - timedelta(days=day.weekday())


def weekly_completions(now: datetime, zone: ZoneInfo, weeks: int = 12) -> list[tuple[date, int]]:
    """Completed visits per local week (Monday first), the last `weeks` weeks including this one."""
    this_week = week_start(now.astimezone(zone).date())
    first = this_week - timedelta(weeks=weeks - 1)
    since = datetime.combine(first, datetime.min.time(), tzinfo=zone) - timedelta(days=1)
    times = db.session.scalars(
        select(Visit.completed_at).where(
            Visit.status == VisitStatus.COMPLETED,
            Visit.completed_at.is_not(None),
            Visit.completed_at >= since,
        )
    ).all()
    # completed_at IS NOT NULL in the query: every t is a datetime.
    counts = Counter(week_start(cast(datetime, t).astimezone(zone).date()) for t in times)
    return [(first + timedelta(weeks=i), counts.get(first + timedelta(weeks=i), 0)) for i in range(weeks)]


def completions_svg(series: list[tuple[date, int]], title: str) -> Markup:
    """A bar chart of (week, count) as accessible inline SVG: a title, one labelled bar per week."""
    width, height, left, bottom, top = 640, 220, 36, 40, 20
    plot_h = height - bottom - top
    n = max(len(series), 1)
    slot = (width - left - 10) / n
    peak = max([c for _, c in series] + [1])
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" viewBox="0 0 {width} {height}" '
        f'role="img" aria-labelledby="chart-title">',
        f'<title id="chart-title">{escape(title)}</title>',
        f'<line x1="{left}" y1="{top + plot_h}" x2="{width - 5}" y2="{top + plot_h}" stroke="#555"/>',
        f'<text x="{left - 6}" y="{top + 4}" text-anchor="end" font-size="12">{peak}</text>',
        f'<text x="{left - 6}" y="{top + plot_h}" text-anchor="end" font-size="12">0</text>',
    ]
    for i, (week, count) in enumerate(series):
        bar_h = plot_h * count / peak
        x = left + i * slot + slot * 0.15
        y = top + plot_h - bar_h
        label = f"{week:%m-%d}"
        parts.append(
            f'<rect x="{x:.1f}" y="{y:.1f}" width="{slot * 0.7:.1f}" height="{bar_h:.1f}" fill="#0b57d0">'
            f"<title>{escape(week.isoformat())}: {count}</title></rect>"
        )
        if count:
            parts.append(
                f'<text x="{x + slot * 0.35:.1f}" y="{y - 4:.1f}" text-anchor="middle" '
                f'font-size="12">{count}</text>'
            )
        parts.append(
            f'<text x="{x + slot * 0.35:.1f}" y="{height - bottom + 16}" text-anchor="middle" '
            f'font-size="11">{label}</text>'
        )
    parts.append("</svg>")
    return Markup("".join(parts))  # noqa: S704 - every interpolated text is escaped or a number
