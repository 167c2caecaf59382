"""A copied session cookie stops working after logout, a password change, a role change or deactivation."""

from __future__ import annotations

import pytest
from flask.sessions import SecureCookieSessionInterface

from app.extensions import db
from app.models import User
from tests.console.conftest import sign_in

NEW_PASSWORD = "another long passphrase"


def _captured_cookie(app, user) -> str:
    """Sign in with a fresh client and copy its session cookie, as someone reading it off a machine would."""
    client = app.test_client()
    assert sign_in(client, user).status_code == 302
    cookie = client.get_cookie("session")
    assert cookie is not None
    return cookie.value


def _replayed(app, value: str):
    """A GET of the work list from another client carrying only the copied cookie."""
    thief = app.test_client()
    thief.set_cookie("session", value)
    return thief.get("/console/")


def _refused(response) -> bool:
    return response.status_code in (302, 401) and (
        response.status_code == 401 or "/console/login" in response.headers["Location"]
    )


def test_a_copied_cookie_works_until_something_ends_the_session(app, users):
    value = _captured_cookie(app, users["viewer"])
    assert _replayed(app, value).status_code == 200


def _logout(app, users, victim):
    client = app.test_client()
    client.set_cookie("session", _captured_cookie(app, victim))
    assert client.post("/console/logout").status_code == 302


def _password_change(app, users, victim):
    result = app.test_cli_runner().invoke(
        args=["users", "set-password", victim.email], env={"FOLLOWUP_USER_PASSWORD": NEW_PASSWORD}
    )
    assert result.exit_code == 0, result.output
    assert NEW_PASSWORD not in result.output


def _role_change(app, users, victim):
    admin = app.test_client()
    sign_in(admin, users["admin"])
    assert admin.post(f"/console/users/{victim.id}/role", data={"role": "coordinator"}).status_code == 303


def _deactivation(app, users, victim):
    admin = app.test_client()
    sign_in(admin, users["admin"])
    assert admin.post(f"/console/users/{victim.id}/active", data={"active": "0"}).status_code == 303


@pytest.mark.parametrize("action", [_logout, _password_change, _role_change, _deactivation])
def test_a_copied_cookie_is_refused_after(app, users, action):
    victim = users["viewer"]
    value = _captured_cookie(app, victim)
    version = db.session.get(User, victim.id).session_version
    action(app, users, victim)
    db.session.expire_all()
    assert db.session.get(User, victim.id).session_version > version
    assert _refused(_replayed(app, value))


def test_logout_ends_the_users_other_sessions_too(app, users):
    victim = users["viewer"]
    kept = _captured_cookie(app, victim)
    _logout(app, users, victim)
    assert _refused(_replayed(app, kept))
    assert sign_in(app.test_client(), victim).status_code == 302  # signing in again works


def test_a_cookie_from_before_session_versions_is_refused(app, users):
    # Sessions made before this release carry the bare user id: they are no session now.
    viewer = users["viewer"]
    serializer = SecureCookieSessionInterface().get_signing_serializer(app)
    session = serializer.loads(_captured_cookie(app, viewer))
    assert session["_user_id"] == db.session.get(User, viewer.id).get_id()
    assert _replayed(app, serializer.dumps(session)).status_code == 200  # re-signing alone changes nothing
    session["_user_id"] = str(viewer.id)
    assert _refused(_replayed(app, serializer.dumps(session)))
