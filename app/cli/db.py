"""`flask --app wsgi db …`: Flask-Migrate's commands, with Alembic loaded only when one of them runs.

Importing Flask-Migrate imports Alembic, Mako and SQLAlchemy's PostgreSQL dialect (about 0.2 s), which
every other command and every web worker would otherwise pay at start-up for nothing.
"""

from __future__ import annotations

from typing import Any

import click
from flask import Flask, current_app

from app.cli.lazy import finish_for_command

MIGRATIONS = "migrations"  # next to the app package, in the repository root


def bind_migrations(app: Flask) -> None:
    """Bind Flask-Migrate to the app (app.extensions["migrate"], and its real `db` command group)."""
    from pathlib import Path

    from flask_migrate import Migrate  # heavy: see the module docstring

    from app.extensions import db

    directory = Path(app.root_path).parent / MIGRATIONS
    Migrate(app, db, directory=str(directory), render_as_batch=True, compare_type=True)


class LazyMigrateGroup(click.Group):
    """Stands in for Flask-Migrate's `db` group in `flask --help`; becomes it when `flask db …` runs."""

    def __init__(self) -> None:
        super().__init__("db", help="Perform database migrations (Flask-Migrate and Alembic).")

    def make_context(self, info_name: str | None, args: list[str], parent: Any = None, **extra: Any) -> Any:
        """Bind Flask-Migrate now and let its own group parse the arguments; then finish the app, as a
        migration needs the models (`flask db --help` exits while parsing, before that)."""
        bind_migrations(current_app)
        from flask_migrate.cli import db as real  # heavy: see the module docstring

        ctx = real.make_context(info_name, args, parent=parent, **extra)
        finish_for_command(ctx)
        return ctx


db_cli = LazyMigrateGroup()
