"""WSGI entry point: `gunicorn wsgi:app`, and `flask --app wsgi …` for operator commands.

gunicorn (and `flask run`, `flask shell`, tests) get the whole app here. When `flask` imports this
module only to find its commands (`--help`, or before a command runs), the app is built with its
settings checked and its commands registered, and the command finishes it first (app/cli/lazy.py).
"""

from app import ConfigError, create_app
from app.cli.lazy import configuration_error, looking_up_commands

try:
    app = create_app(commands_only=looking_up_commands())
except ConfigError as exc:  # one clear line instead of a traceback
    raise configuration_error(exc) from None
