"""Flask extensions, created unbound here and bound to the app in `create_app`.

Flask-Migrate is not among them: it imports Alembic, so `app.cli.db` binds it when `flask db …` runs.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar, cast

from flask import current_app, request
from flask_babel import Babel
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_login import LoginManager
from flask_sqlalchemy import SQLAlchemy
from flask_wtf.csrf import CSRFProtect
from sqlalchemy import MetaData, event
from sqlalchemy.engine import Engine

from app.sqlite_writes import SerializedWritesConnection

_View = TypeVar("_View", bound=Callable[..., Any])

# Named constraints, so Alembic migrations are the same on SQLite and PostgreSQL.
NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

db = SQLAlchemy(metadata=MetaData(naming_convention=NAMING))

if TYPE_CHECKING:
    from sqlalchemy.orm import DeclarativeBase

    class Model(DeclarativeBase):
        """What `db.Model` is to the type checker: Flask-SQLAlchemy builds it at run time, so its
        type is not a class mypy can subclass."""

else:
    Model = db.Model  # the base class of every model
login_manager = LoginManager()
csrf = CSRFProtect()
babel = Babel()


class _Limiter(Limiter):
    """Flask-Limiter, whose before-request check returns at once for a view marked `unlimited_view`.

    The extension consults its request filters only after identifying the request and resolving the
    view's limits and meta limits; for a view with no limit that work found nothing and cost about a
    twelfth of a questionnaire page. Views with limits of their own are checked exactly as before.
    """

    def _check_request_limit(self, callable_name: str | None = None, in_middleware: bool = True) -> None:
        if in_middleware and _skip_unlimited_views():
            return
        super()._check_request_limit(callable_name, in_middleware)


limiter = _Limiter(key_func=get_remote_address, default_limits=[])


def unlimited_view(view: _View) -> _View:
    """@limiter.exempt for a view with no limit of its own (it counts failed guesses itself): Flask-Limiter
    then skips it before resolving limits, which cost about a fifth of a questionnaire page."""
    view = cast(_View, limiter.exempt(view))  # exempt hands back the view it was given
    view.no_rate_limits = True  # type: ignore[attr-defined]  # a marker attribute on the function
    return view


@limiter.request_filter
def _skip_unlimited_views() -> bool:
    """True for a view marked with `unlimited_view`: no limit applies to it, so none is looked up."""
    view = current_app.view_functions.get(request.endpoint or "")
    return bool(getattr(view, "no_rate_limits", False))


@event.listens_for(Engine, "do_connect")
def _sqlite_serialized_writes(dialect: Any, conn_rec: Any, cargs: Any, cparams: dict[str, Any]) -> None:
    """SQLite connections queue their write transactions on a per-process lock (app.sqlite_writes)."""
    if dialect.name == "sqlite":
        cparams.setdefault("factory", SerializedWritesConnection)


@event.listens_for(Engine, "before_cursor_execute")
def _sqlite_write_turn(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
    dbapi = cursor.connection
    if isinstance(dbapi, SerializedWritesConnection):
        dbapi.before_statement(statement)


@event.listens_for(Engine, "connect")
def _sqlite_pragmas(dbapi_connection: Any, connection_record: Any) -> None:  # pragma: no cover - trivial
    """WAL lets the web app read while the scheduler writes; foreign keys are off by default in SQLite."""
    if isinstance(dbapi_connection, sqlite3.Connection):
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()
