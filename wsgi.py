"""WSGI entry point: `gunicorn wsgi:app`, and `flask --app wsgi …` for operator commands."""

from app import ConfigError, create_app

try:
    app = create_app()
except ConfigError as exc:  # one clear line instead of a traceback
    raise SystemExit(f"configuration error: {exc}") from None
