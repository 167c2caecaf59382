"""Operator commands, grouped by area; each prints one line and exits non-zero on failure."""

from __future__ import annotations

from flask import Flask


def register(app: Flask) -> None:
    """Attach every command group to the app's CLI."""
    from app.cli import redcap_reconcile  # noqa: F401  (adds `redcap reconcile` to the redcap group)
    from app.cli.db import db_cli
    from app.cli.demo import demo_cli
    from app.cli.redcap import redcap_cli, roster_cli
    from app.cli.scheduler import scheduler_command
    from app.cli.sms import sms_cli
    from app.cli.tick import tick_command
    from app.cli.users import users_cli

    app.cli.add_command(db_cli)
    app.cli.add_command(users_cli)
    app.cli.add_command(roster_cli)
    app.cli.add_command(redcap_cli)
    app.cli.add_command(demo_cli)
    app.cli.add_command(tick_command)
    app.cli.add_command(sms_cli)
    app.cli.add_command(scheduler_command)
