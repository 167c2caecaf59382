"""Admin manages accounts: create, change role, deactivate; the last admin stays; admins only."""

from __future__ import annotations

from sqlalchemy import select

from app.extensions import db
from app.models import AuditEntry, User
from tests.console.conftest import sign_in
from tests.console.helpers import refused


def test_admin_creates_an_account_that_can_sign_in(app, as_role, users):
    client = as_role("admin")
    response = client.post(
        "/console/users", data={"email": "New@Example.org", "role": "viewer", "password": "a long password 1"}
    )
    assert response.status_code == 303
    user = db.session.scalar(select(User).where(User.email == "new@example.org"))
    assert user.role == "viewer" and user.password_hash.startswith("$argon2id$")
    entry = db.session.scalar(select(AuditEntry).where(AuditEntry.action == "user.created"))
    assert entry.actor == f"user:{users['admin'].id}" and "password" not in str(entry.detail)
    assert sign_in(app.test_client(), user, "a long password 1").status_code == 302
    # duplicates and short passwords are refused with a message
    again = client.post(
        "/console/users", data={"email": "new@example.org", "role": "viewer", "password": "a long password 1"}
    )
    assert again.status_code == 409 and b"already exists" in again.data
    short = client.post(
        "/console/users", data={"email": "x@example.org", "role": "viewer", "password": "short"}
    )
    assert short.status_code == 400


def test_change_role_and_deactivate_take_effect_at_once(app, as_role, users):
    admin = as_role("admin")
    viewer_client = as_role("viewer")
    viewer = users["viewer"]
    assert viewer_client.post("/console/participants/1/withdraw", data={"reason": "x"}).status_code == 403
    assert admin.post(f"/console/users/{viewer.id}/role", data={"role": "coordinator"}).status_code == 303
    assert db.session.get(User, viewer.id).role == "coordinator"
    # The old session ends with the old role; signed in again, the new role applies.
    assert viewer_client.post("/console/participants/999/withdraw", data={"reason": "x"}).status_code == 302
    assert sign_in(viewer_client, viewer).status_code == 302
    assert viewer_client.post("/console/participants/999/withdraw", data={"reason": "x"}).status_code == 404
    assert admin.post(f"/console/users/{viewer.id}/active", data={"active": "0"}).status_code == 303
    assert db.session.get(User, viewer.id).active is False
    assert viewer_client.get("/console/").status_code == 302
    actions = set(db.session.scalars(select(AuditEntry.action)).all())
    assert {"user.role_changed", "user.deactivated"} <= actions


def test_the_last_admin_cannot_be_demoted_or_deactivated(as_role, users):
    admin = as_role("admin")
    me = users["admin"]
    refused(admin, f"/console/users/{me.id}/role", {"role": "viewer"}, text="last active admin")
    refused(admin, f"/console/users/{me.id}/active", {"active": "0"}, text="your own account")
    refused(admin, f"/console/users/{users['viewer'].id}/role", {"role": "viewer"}, text="already viewer")


def test_coordinators_cannot_manage_users(as_role, users):
    client = as_role("coordinator")
    assert client.get("/console/users").status_code == 403
    refused(
        client,
        "/console/users",
        {"email": "z@example.org", "role": "admin", "password": "a long password 1"},
        status=403,
    )
    refused(client, f"/console/users/{users['coordinator'].id}/role", {"role": "admin"}, status=403)
