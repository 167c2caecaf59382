"""gunicorn settings for the web app: `gunicorn -c gunicorn.conf.py wsgi:app`.

Web workers only serve requests: they never run migrations (`flask --app wsgi db upgrade` does, once,
before a release) and never start a scheduler (`flask --app wsgi scheduler` is its own process). The
access log carries no query strings, no referrers and no personal link tokens: a participant's
`/s/<token>` path is logged as `/s/[token]`.
"""

from __future__ import annotations

import importlib
import json
import multiprocessing
import os
import re
from datetime import UTC, datetime
from pathlib import Path

from dotenv import dotenv_values
from gunicorn.glogging import Logger

_TOKEN_PATH = re.compile(r"(/s/)[^/?#\s]+")


def _int(name: str, default: int) -> int:
    raw = os.environ.get(name, "").strip()
    return int(raw) if raw else default


def _default_workers() -> int:
    # gunicorn's rule of thumb: 2 x cores + 1 (requests mostly wait on the database), capped so a big
    # host does not open more database connections than PostgreSQL allows by default.
    return min(2 * multiprocessing.cpu_count() + 1, 12)


def _json_logs() -> bool:
    # Production always logs JSON (ProductionConfig forces LOG_FORMAT=json for the app's own logs).
    env = os.environ
    return env.get("LOG_FORMAT", "").lower() == "json" or env.get("FOLLOWUP_ENV", "").lower() == "production"


def safe_path(path: str | None) -> str:
    """The request path with any personal link token masked and no query string."""
    if not path:
        return "-"
    return _TOKEN_PATH.sub(r"\1[token]", path.split("?", 1)[0])


class SafeAccessLogger(Logger):
    """gunicorn's logger, with access lines built only from atoms that cannot carry personal data."""

    def atoms(self, resp, req, environ, request_time):  # type: ignore[no-untyped-def]
        """Keep method, masked path, status, size, duration and remote address; drop the rest."""
        atoms = super().atoms(resp, req, environ, request_time)
        path = safe_path(environ.get("PATH_INFO"))
        safe = {k: v for k, v in atoms.items() if not k.startswith("{")}  # no headers, no environ
        safe.update(
            {
                "U": path,
                "r": f"{environ.get('REQUEST_METHOD')} {path} {environ.get('SERVER_PROTOCOL')}",
                "q": "-",
                "f": "-",
                "u": "-",
            }
        )
        return safe

    def access(self, resp, req, environ, request_time):  # type: ignore[no-untyped-def]
        """One JSON object per request when LOG_FORMAT=json (production), else the format below."""
        if not _json_logs():
            return super().access(resp, req, environ, request_time)
        if not self.cfg.accesslog:
            return None
        atoms = self.atoms(resp, req, environ, request_time)
        line = {
            "ts": datetime.now(UTC).isoformat(timespec="milliseconds"),
            "level": "INFO",
            "logger": "gunicorn.access",
            "remote": atoms["h"],
            "method": atoms["m"],
            "path": atoms["U"],
            "status": str(atoms["s"]),
            "bytes": atoms["B"],
            "duration_ms": atoms["M"],
        }
        self.access_log.info(json.dumps(line))
        return None


def _bind() -> str:
    # Loopback unless told otherwise: the reverse proxy on this host is the only client gunicorn needs,
    # and a client reaching gunicorn directly would bypass it. GUNICORN_HOST=0.0.0.0 opens it up.
    explicit = os.environ.get("GUNICORN_BIND", "").strip()
    if explicit:
        return explicit
    host = os.environ.get("GUNICORN_HOST", "").strip() or "127.0.0.1"
    port = os.environ.get("PORT", "").strip() or "8000"
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


bind = _bind()
workers = _int("WEB_CONCURRENCY", _default_workers())
threads = _int("GUNICORN_THREADS", 1)
timeout = _int("GUNICORN_TIMEOUT", 30)
graceful_timeout = _int("GUNICORN_GRACEFUL_TIMEOUT", 30)
keepalive = 5
max_requests = _int("GUNICORN_MAX_REQUESTS", 2000)
# Workers serve alike, so with a small jitter they all reach max_requests at once and the server stalls
# while they boot together; half of max_requests spreads their recycling apart.
max_requests_jitter = _int("GUNICORN_MAX_REQUESTS_JITTER", max_requests // 2)
preload_app = False  # each worker builds its own app (and database pool) after the fork

# The third-party libraries the app is built from, imported once here in the master: a worker forked
# from it (at start, and each time max_requests recycles one) then imports only the app's own code and
# builds the app, about 0.3 s instead of 1 s of CPU, so recycling no longer stalls a busy server for a
# second. Nothing here opens a connection or starts a thread. `kill -HUP` still loads new app code;
# after upgrading these packages, restart gunicorn (as for an upgrade of gunicorn itself).
PRELOADED_LIBRARIES = (
    "flask",
    "flask_babel",
    "flask_limiter",
    "flask_login",
    "flask_sqlalchemy",
    "flask_wtf",
    "sqlalchemy.orm",
    "sqlalchemy.dialects.sqlite",
    "phonenumbers",
    "wtforms",
)
for _name in PRELOADED_LIBRARIES if os.environ.get("GUNICORN_PRELOAD_LIBRARIES", "1") != "0" else ():
    importlib.import_module(_name)

# One trusted reverse proxy: X-Forwarded-* are believed only from the peers in FORWARDED_ALLOW_IPS
# (default loopback), by gunicorn and by the app's ProxyFix (app.proxies), which then takes exactly
# PROXY_FIX_HOPS (1) hops from those headers. gunicorn 23 refuses networks (10.0.0.0/8) in this
# variable at start-up, before this file is read: list single addresses here.
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS") or "127.0.0.1,::1"

logger_class = SafeAccessLogger
accesslog = os.environ.get("GUNICORN_ACCESS_LOG", "-")
errorlog = "-"
loglevel = os.environ.get("LOG_LEVEL", "info").lower()
access_log_format = '%(h)s "%(m)s %(U)s" %(s)s %(B)s %(M)sms'


def missing_env_warning(environ: dict[str, str] | None = None, dotenv: Path | None = None) -> str | None:
    """The start-up warning when FOLLOWUP_ENV is set neither in the environment nor in `.env`.

    The app then runs with development settings (config.load_config's default), which a server must not.
    """
    environ = os.environ if environ is None else environ
    dotenv = Path(__file__).with_name(".env") if dotenv is None else dotenv
    if (environ.get("FOLLOWUP_ENV") or "").strip():
        return None
    if dotenv.is_file() and (dotenv_values(dotenv).get("FOLLOWUP_ENV") or "").strip():
        return None
    return (
        "FOLLOWUP_ENV is not set: running with development settings; "
        "set FOLLOWUP_ENV=production (or development) explicitly"
    )


def on_starting(server):  # type: ignore[no-untyped-def]
    """gunicorn's hook, once in the master before any worker: warn about a missing FOLLOWUP_ENV."""
    warning = missing_env_warning()
    if warning:
        server.log.warning(warning)
