"""`flask --app wsgi tick`: one full synchronous pass of every scheduled job."""

from __future__ import annotations

from datetime import UTC, datetime

import click
from flask.cli import with_appcontext

from app.cli.lazy import AppCommand


def _parse_now(value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"not an ISO-8601 date-time: {value!r}") from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


@click.command("tick", cls=AppCommand)
@click.option(
    "--now", "now_text", metavar="ISO-8601", help="Pretend it is this moment (UTC unless a zone is given)."
)
@with_appcontext
def tick_command(now_text: str | None) -> None:
    """Run one pass: plan, reconcile, send, sweep and push, as the scheduler would."""
    from app.tick import run_tick

    summary = run_tick(_parse_now(now_text))
    click.echo(" ".join(f"{name}={value}" for name, value in summary.items()))
