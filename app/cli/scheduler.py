"""`flask --app wsgi scheduler`: the long-running scheduler process (one active copy, standbys wait)."""

from __future__ import annotations

import click
from flask import current_app
from flask.cli import with_appcontext

from app.cli.lazy import AppCommand


@click.command("scheduler", cls=AppCommand)
@with_appcontext
def scheduler_command() -> None:
    """Run the periodic jobs (send, push, sweep, roster, heartbeat) until SIGTERM; never in web workers."""
    from scheduler.runner import run_scheduler

    app = current_app._get_current_object()  # type: ignore[attr-defined]
    try:
        code = run_scheduler(app)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    if code:
        raise SystemExit(code)
