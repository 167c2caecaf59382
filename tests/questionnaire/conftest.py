"""An app context for tests that need Flask (config, Babel) but no database backend matrix."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask

from app.extensions import db
from tests.conftest import build_app


@pytest.fixture
def plain_app(tmp_path: Path) -> Iterator[Flask]:
    """The app on SQLite only, context pushed: for label and message tests that never touch the DB."""
    app = build_app("sqlite", tmp_path)
    with app.app_context():
        yield app
        db.session.remove()
        db.engine.dispose()
