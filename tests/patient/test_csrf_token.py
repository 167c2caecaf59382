"""The page's own CSRF token (`app.security.csrf_token`) is Flask-WTF's token, and the compact
serializer signs what Flask and itsdangerous read as their own."""

from __future__ import annotations

import pytest
from flask import g, session
from flask_wtf.csrf import generate_csrf, validate_csrf
from itsdangerous import URLSafeTimedSerializer
from wtforms import ValidationError

from app.security import COMPRESS_FROM, CompactSerializer, csrf_token


@pytest.fixture
def csrf_app(app_factory):
    return app_factory(WTF_CSRF_ENABLED="true")


def test_the_token_is_flask_wtfs_own(csrf_app):
    with csrf_app.test_request_context("/"):
        token = csrf_token()
        assert generate_csrf() == token == csrf_token()  # one token per request, shared through g
        validate_csrf(token)  # Flask-WTF's own check accepts it
        raw = session["csrf_token"]
    with csrf_app.test_request_context("/"):
        session["csrf_token"] = raw  # the same browser session, a later request
        validate_csrf(csrf_token())
        validate_csrf(generate_csrf())
    with csrf_app.test_request_context("/"), pytest.raises(ValidationError):
        validate_csrf(token)  # another session's token is refused


def test_a_new_session_gets_a_new_token(csrf_app):
    seen = set()
    for _ in range(3):
        with csrf_app.test_request_context("/"):
            seen.add((csrf_token(), session["csrf_token"]))
            assert g.csrf_token == csrf_token()
    assert len(seen) == 3 and len({raw for _, raw in seen}) == 3


def test_a_broken_session_value_is_replaced(csrf_app):
    with csrf_app.test_request_context("/"):
        session["csrf_token"] = {"not": "a token"}
        token = csrf_token()
        assert isinstance(session["csrf_token"], str)
        validate_csrf(token)


@pytest.mark.parametrize(
    "payload", ["a" * 40, {"csrf_token": "f" * 40, "lang": "zh"}, "x" * (COMPRESS_FROM * 4)]
)
def test_compact_serializer_reads_and_is_read_by_itsdangerous(payload):
    ours = CompactSerializer("k" * 32, salt="s")
    theirs = URLSafeTimedSerializer("k" * 32, salt="s")
    assert theirs.loads(ours.dumps(payload)) == payload
    assert ours.loads(theirs.dumps(payload)) == payload
    long_payload = isinstance(payload, str) and len(payload) > COMPRESS_FROM
    assert ours.dumps(payload).startswith(".") == long_payload  # only a long payload is compressed
