"""Commands that start fast: `flask --app wsgi … --help` never builds more of the app than its commands.

The `flask` command line imports `wsgi` to find the app's commands before it knows whether one will
run: for `--help`, a listing, or a command's name. Building the whole app then (the database layer
and every model, the views, the start-up checks) cost about a second before any help was shown. So
while `flask` is only looking commands up, `wsgi` builds the app with its configuration read and
checked and its commands registered (`create_app(commands_only=True)`), and every command here is an
`AppCommand`, which finishes the app (`app.finish_app`: extensions, start-up checks, blueprints) just
before its callback runs, after click has parsed its arguments, so never for `--help`. The factory
leaves that step in `app.extensions[PENDING]` (so this module needs nothing from the factory). A command
therefore runs with the same app, and refuses a bad configuration with the same one line, as before;
gunicorn, `flask run`, `flask shell` and tests build the whole app at once, as before.
"""

from __future__ import annotations

from typing import Any

import click
from flask import current_app
from flask.cli import AppGroup, FlaskGroup, ScriptInfo

from config import ConfigError

PENDING = "followup.pending_setup"  # app.extensions key: what a command-only app still has to build


def looking_up_commands() -> bool:
    """True while `flask` imports the app only to find or list its commands (no command chosen yet).

    Then click's current context is the `flask` group's own; inside a command that loads the app
    itself (`flask run`, `flask shell`, `flask routes`), or outside click (gunicorn, tests), it is not.
    """
    ctx = click.get_current_context(silent=True)
    return ctx is not None and isinstance(ctx.command, FlaskGroup)


def configuration_error(exc: ConfigError) -> SystemExit:
    """The one line a bad setting stops start-up with (the web app, the scheduler, every command)."""
    return SystemExit(f"configuration error: {exc}")


def finish_for_command(ctx: click.Context) -> None:
    """Build the rest of the app the command will run with (a no-op when it is already whole)."""
    # `flask` pushes the app's context before it looks a command up; Flask's test runner does not.
    info = ctx.ensure_object(ScriptInfo)
    app = current_app._get_current_object() if current_app else info.load_app()  # type: ignore[attr-defined]
    pending = app.extensions.get(PENDING)
    if pending is None:
        return
    try:
        pending(app)
    except ConfigError as exc:
        raise configuration_error(exc) from None
    app.extensions.pop(PENDING, None)


class AppCommand(click.Command):
    """A command that needs the whole app: it is finished once the arguments are parsed, before the run."""

    def invoke(self, ctx: click.Context) -> Any:
        """Finish the app, then run the callback (click calls this only after parsing, never for --help)."""
        finish_for_command(ctx)
        return super().invoke(ctx)


class CommandGroup(AppGroup):
    """A command group whose commands are `AppCommand`s (and run in the app context, as AppGroup's)."""

    command_class = AppCommand
