"""`flask --app wsgi users …`: manage coordinator accounts."""

from __future__ import annotations

import os

import click
from flask.cli import with_appcontext

from app.cli.lazy import CommandGroup
from app.roles import ROLES


@click.group("users", cls=CommandGroup, help="Manage coordinator accounts.")
def users_cli() -> None:
    pass


@users_cli.command("create")
@click.argument("email")
@click.option(
    "--role",
    type=click.Choice(ROLES),
    required=True,
    help="admin manages users; coordinator acts; viewer reads.",
)
@click.option(
    "--password-env",
    default="FOLLOWUP_USER_PASSWORD",
    show_default=True,
    help="Read the password from this environment variable (for scripts); otherwise it is prompted.",
)
@with_appcontext
def create(email: str, role: str, password_env: str) -> None:
    """Create a user EMAIL with a role; the password is prompted or read from the environment."""
    from app.console.accounts import AccountError, create_user
    from app.extensions import db

    password = os.environ.get(password_env)
    if not password:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    try:
        user = create_user(email, password, role)
        db.session.commit()
    except AccountError as exc:
        db.session.rollback()
        raise click.ClickException(str(exc)) from None
    click.echo(f"created user {user.email} ({user.role})")


@users_cli.command("set-password")
@click.argument("email")
@click.option(
    "--password-env",
    default="FOLLOWUP_USER_PASSWORD",
    show_default=True,
    help="Read the password from this environment variable (for scripts); otherwise it is prompted.",
)
@with_appcontext
def set_password(email: str, password_env: str) -> None:
    """Give user EMAIL a new password; every session they have open ends."""
    from sqlalchemy import select

    from app.console.accounts import AccountError, change_password
    from app.extensions import db
    from app.models import User

    user = db.session.scalar(select(User).where(User.email == email.strip().lower()))
    if user is None:
        raise click.ClickException(f"no user with e-mail {email}")
    password = os.environ.get(password_env)
    if not password:
        password = click.prompt("New password", hide_input=True, confirmation_prompt=True)
    try:
        change_password(user, password)
        db.session.commit()
    except AccountError as exc:
        db.session.rollback()
        raise click.ClickException(str(exc)) from None
    click.echo(f"password changed for {user.email}; their sessions have ended")
