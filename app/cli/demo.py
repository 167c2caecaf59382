"""`flask --app wsgi demo …`: demo data for `make run` (never used in production)."""

from __future__ import annotations

import click
from flask import current_app
from flask.cli import with_appcontext
from sqlalchemy import select

from app.accounts import create_user
from app.extensions import db
from app.models import User

DEMO_EMAIL = "coordinator@example.org"
DEMO_PASSWORD = "demo-password-123"  # noqa: S105 - printed for the newcomer on purpose


@click.group("demo", help="Demo data for a local run.")
def demo_cli() -> None:
    pass


@demo_cli.command("user")
@with_appcontext
def demo_user() -> None:
    """Create the demo coordinator login (development only)."""
    if current_app.config["FOLLOWUP_ENV"] == "production":
        raise click.ClickException("demo data is refused in production")
    if db.session.scalar(select(User).where(User.email == DEMO_EMAIL)) is None:
        create_user(DEMO_EMAIL, DEMO_PASSWORD, "admin", actor="system:demo")
        db.session.commit()
    click.echo(f"demo login: {DEMO_EMAIL} / {DEMO_PASSWORD}")
