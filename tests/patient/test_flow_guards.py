"""The submission path's guards hold under `python -O`, and its caches never mix two apps' databases."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from sqlalchemy import func, select

from app.extensions import db
from app.models import InstrumentVersion, Submission, utcnow
from app.patient import flow
from app.questionnaire.store import current_definition, save_metadata
from tests.conftest import build_app
from tests.factories import GOOD_ANSWERS as GOOD
from tests.patient.conftest import TRIAL, WELLBEING, invite, load_metadata

APP_DIR = Path(__file__).resolve().parents[2] / "app"


def test_submit_refuses_a_link_not_loaded_for_a_post_with_its_own_exception(trial):
    inv = invite()
    now = utcnow()
    ctx = flow.resolve(inv.token, now, posting=False)  # a GET's context: open, but no link loaded
    assert ctx.state == flow.OPEN and ctx.link is None
    with pytest.raises(flow.SubmitRefused):
        flow.submit(ctx, flow.instrument(ctx), GOOD, "en", now)
    assert db.session.scalar(select(func.count()).select_from(Submission)) == 0


def test_submit_refuses_a_context_that_is_not_open(trial):
    inv = invite()
    now = utcnow()
    ctx = flow.resolve(inv.token, now, posting=True)
    ctx.state = flow.RECEIVED
    with pytest.raises(flow.SubmitRefused):
        flow.submit(ctx, flow.instrument(ctx), GOOD, "en", now)
    assert db.session.scalar(select(func.count()).select_from(Submission)) == 0


def test_no_assert_statement_guards_the_application():
    """`python -O` strips asserts: a guard in app/ must raise."""
    found = [
        f"{path.relative_to(APP_DIR.parent)}:{node.lineno}"
        for path in sorted(APP_DIR.rglob("*.py"))
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
        if isinstance(node, ast.Assert)
    ]
    assert found == []


def test_two_apps_in_one_process_keep_their_own_version_ids(tmp_path):
    """The same questionnaire version has different ids in two databases; each app reads its own."""
    apps = []
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        apps.append(build_app("sqlite", tmp_path / name))
    first, second = apps
    try:
        with first.app_context():
            save_metadata(load_metadata("trial_project"), TRIAL, utcnow())
            definition = current_definition(TRIAL)
            first_id = flow.version_id(definition)
        with second.app_context():
            save_metadata(load_metadata("wellbeing_project"), WELLBEING, utcnow())  # takes id 1 here
            save_metadata(load_metadata("trial_project"), TRIAL, utcnow())
            second_id = flow.version_id(definition)
            stored_id = db.session.scalar(
                select(InstrumentVersion.id).where(InstrumentVersion.version_hash == definition.version_hash)
            )
        assert first_id == 1 and second_id == stored_id == 2
        with first.app_context():
            assert flow.version_id(definition) == 1
    finally:
        for app in apps:
            with app.app_context():
                db.session.remove()
                db.engine.dispose()
