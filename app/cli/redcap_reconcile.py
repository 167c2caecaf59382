"""`flask --app wsgi redcap reconcile [--repair]`: compare REDCap with what participants answered here."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

import click
from flask.cli import with_appcontext

from app.cli.redcap import NOW_HELP, _fail, redcap_cli
from app.cli.tick import _parse_now

if TYPE_CHECKING:
    from app.redcap.reconcile import ReconcileReport

HEADERS = ("record", "visit", "event", "submission", "difference", "sync", "fields", "action")


def render_table(report: ReconcileReport) -> str:
    """A plain-text table of the differences (field names only, never values)."""
    rows = [
        (
            d.record_id,
            d.visit_key,
            d.event_name,
            str(d.submission_id),
            d.kind,
            d.sync_status,
            ", ".join(d.columns) or "-",
            "re-queued" if d.requeued else "-",
        )
        for d in report.differences
    ]
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(HEADERS)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(HEADERS, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    return "\n".join(lines)


@redcap_cli.command("reconcile")
@click.option("--repair", is_flag=True, help="Re-queue the pushes REDCap is missing (nothing else changes).")
@click.option("--now", "now_text", metavar="ISO-8601", help=NOW_HELP)
@with_appcontext
def reconcile_command(repair: bool, now_text: str | None) -> None:
    """Compare REDCap's questionnaire data with every questionnaire-completed visit; print the differences."""
    from app.models import utcnow
    from app.redcap.client import RedcapClientError
    from app.redcap.reconcile import completed_count, reconcile

    now = _parse_now(now_text) or utcnow()
    total = completed_count()
    try:
        with click.progressbar(length=total, label="Checking visits against REDCap", file=sys.stderr) as bar:
            report = reconcile(now, repair=repair, actor="operator:cli", progress=bar.update)
    except RedcapClientError as exc:
        raise _fail("reconcile", exc) from None
    if report.differences:
        click.echo(render_table(report))
    else:
        click.echo("No differences: REDCap holds every questionnaire completed here.")
    click.echo(report.summary())
