"""The follow-up service's Flask application factory.

The factory only wires things together: no migrations, no network, no scheduler, so tests
can build as many apps as they like and the web workers never start background jobs.

Packages by domain: `redcap/` (every conversation with REDCap), `participants/` (visits, links,
submissions, lifecycle, calls), `questionnaire/`, `sms/`, `schedule/` (the pure visit engine and the
study's plan), `models/`; thin audiences on top: `patient/`, `console/`, `webhooks/`, `health/`, `cli/`.
Arrows run one way: audiences -> domains -> clients -> models (tests/test_import_graph.py holds it).

Kept at the top because every package uses them and none owns them: `extensions` (unbound Flask
extensions), `audit` (the trail every domain writes), `backoff` (the one backoff curve), `errors`,
`security` and `proxies` (request handling for every blueprint), `i18n` (locale choice),
`logging_setup`, and `tick` (the scheduler's list of passes: it calls into every domain, so it sits
above them all).
"""

from __future__ import annotations

import logging
from pathlib import Path

from flask import Flask

from config import Config, ConfigError, load_config

ROOT = Path(__file__).resolve().parent.parent

__all__ = ["ConfigError", "create_app", "finish_app"]

FINISHED = "followup.finished"  # app.extensions key: finish_app has run


def create_app(config: Config | str | None = None, *, commands_only: bool = False) -> Flask:
    """Build the app from a Config object, an environment name, or FOLLOWUP_ENV.

    `commands_only` is for `flask` looking its commands up (`--help`, a command's name): the settings
    are read and checked and the commands registered, nothing more; the command that then runs calls
    `finish_app` first (app/cli/lazy.py). Everyone else gets the whole app, start-up checks included.
    """
    if not isinstance(config, Config):
        config = load_config(config)
    config.ensure_secret_key()
    app = Flask(
        __name__,
        instance_path=config.INSTANCE_PATH,
        template_folder=str(ROOT / "templates"),
        static_folder="static",
    )
    app.config.from_object(config)
    app.config["FOLLOWUP_ENV"] = config.ENV_NAME
    Path(app.instance_path).mkdir(parents=True, exist_ok=True)
    configure_logging(app)
    register_commands(app)
    if commands_only:
        from app.cli.lazy import PENDING

        app.extensions[PENDING] = finish_app  # run by the first command, after its arguments are parsed
    else:
        finish_app(app)
    return app


def finish_app(app: Flask) -> Flask:
    """Everything beyond the settings and the commands, once per app; raises ConfigError on a bad text.

    Kept apart so `flask … --help` need not import the database layer, the models and the views.
    """
    if app.extensions.get(FINISHED):
        return app
    register_extensions(app)
    check_sms_texts(app)
    register_security(app)
    register_blueprints(app)
    register_errorhandlers(app)
    register_send_checks()
    app.extensions[FINISHED] = True
    return app


def configure_logging(app: Flask) -> None:
    """Text or JSON logs, with phone numbers and tokens scrubbed from every record."""
    from app.logging_setup import setup_logging

    setup_logging(app.config["LOG_LEVEL"], app.config["LOG_FORMAT"])


def register_extensions(app: Flask) -> None:
    """Bind the unbound extensions of app.extensions to this app."""
    from app import models  # noqa: F401  (the models must be imported for Alembic and the session)
    from app.extensions import babel, csrf, db, limiter, login_manager
    from app.i18n import select_locale

    db.init_app(app)
    csrf.init_app(app)
    login_manager.init_app(app)
    login_manager.login_view = "console_auth.login"
    login_manager.session_protection = "strong"
    limiter.init_app(app)
    babel.init_app(
        app, locale_selector=select_locale, default_translation_directories=str(ROOT / "translations")
    )
    warn_if_limits_per_worker(app)
    if app.config.get("PROXY_FIX_HOPS"):
        from app.proxies import TrustedProxyFix

        app.wsgi_app = TrustedProxyFix(  # type: ignore[method-assign]  # Flask's documented way to wrap it
            app.wsgi_app, app.config["PROXY_FIX_HOPS"], app.config["FORWARDED_ALLOW_IPS"]
        )


def warn_if_limits_per_worker(app: Flask) -> None:
    """Production with memory:// rate-limit storage: say at start-up that every worker counts alone."""
    storage = app.config.get("RATELIMIT_STORAGE_URI") or "memory://"
    if app.config["FOLLOWUP_ENV"] == "production" and storage.startswith("memory://"):
        logging.getLogger("app.limits").warning(
            "RATELIMIT_STORAGE_URI is memory://: link-guess and sign-in limits are counted per gunicorn "
            "worker and reset on restart, so a client gets WEB_CONCURRENCY times the limit; set "
            "RATELIMIT_STORAGE_URI=redis://127.0.0.1:6379/0 for shared counts"
        )


def check_sms_texts(app: Flask) -> None:
    """Refuse to start when a text, rendered in each language, carries a word from SMS_DENY_WORDS."""
    from app.sms.privacy import check_rendered_texts

    with app.app_context():
        problem = check_rendered_texts(app.config)
    if problem:
        raise ConfigError(problem)


def register_security(app: Flask) -> None:
    """Security headers on every response; oversized bodies refused with 413."""
    from app.security import register_security as install

    install(app)


def register_blueprints(app: Flask) -> None:
    """One blueprint per audience: participants, coordinators, SMS provider, health checks."""
    from app.console import bp as console_bp
    from app.console.auth import bp as auth_bp
    from app.console.calls import bp as calls_bp
    from app.health import bp as health_bp
    from app.patient import bp as patient_bp
    from app.webhooks import bp as webhooks_bp

    app.register_blueprint(health_bp)
    app.register_blueprint(patient_bp)
    # Sign-in answers without a login, the call list has its own prefix: both beside the console.
    app.register_blueprint(auth_bp)
    app.register_blueprint(calls_bp)
    app.register_blueprint(console_bp)
    app.register_blueprint(webhooks_bp)


def register_errorhandlers(app: Flask) -> None:
    """Plain, friendly error pages that never echo the request back."""
    from app.errors import register

    register(app)


def register_send_checks() -> None:
    """Send-time rules from other areas, by name: no planned reminder to someone reached by phone."""
    from app.participants.calls import call_send_check
    from app.sms.checks import register_send_check

    register_send_check(call_send_check)


def register_commands(app: Flask) -> None:
    """Operator commands under `flask --app wsgi …`."""
    from app.cli import register

    register(app)
