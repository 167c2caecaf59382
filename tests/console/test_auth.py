"""Sign-in: one message for every failure, lockout, throttling, cookie flags, idle expiry, CSRF, sign-out."""

from __future__ import annotations

import re
from datetime import timedelta

from sqlalchemy import func, select

from app.extensions import db
from app.models import AuditEntry, LoginFailure, User, utcnow
from tests.console.conftest import PASSWORD, FreshClient, sign_in
from tests.factories import make_user

FAILURE = b"E-mail or password not accepted"


def test_sign_in_lands_on_the_work_list_and_is_audited(app, client, users):
    response = sign_in(client, users["coordinator"])
    assert response.status_code == 302 and response.headers["Location"] == "/console/"
    assert client.get("/console/").status_code == 200
    user = db.session.get(User, users["coordinator"].id)
    assert user.last_login_at is not None
    assert db.session.scalar(select(AuditEntry).where(AuditEntry.action == "user.login")) is not None


def test_unknown_user_and_wrong_password_get_the_same_answer(client, users):
    unknown = client.post("/console/login", data={"email": "nobody@example.org", "password": PASSWORD})
    wrong = client.post(
        "/console/login", data={"email": users["viewer"].email, "password": "wrong password!"}
    )
    assert unknown.status_code == wrong.status_code == 401
    strip = lambda r: re.sub(rb'name="csrf_token"[^>]*>|value="[^"]*"', b"", r.data)  # noqa: E731
    assert strip(unknown) == strip(wrong)
    assert FAILURE in unknown.data
    assert client.get("/console/").status_code == 302


def test_account_locks_after_max_failures_even_for_the_right_password(app, client, users, time_machine):
    time_machine.move_to(utcnow(), tick=False)
    user = users["viewer"]
    for _ in range(app.config["LOGIN_MAX_FAILURES"]):
        assert sign_in(client, user, "wrong password!").status_code == 401
    lock = db.session.scalar(select(LoginFailure).where(LoginFailure.email == user.email))
    assert lock is not None and lock.locked(utcnow())
    response = sign_in(client, user)
    assert response.status_code == 401 and FAILURE in response.data
    assert db.session.scalar(select(AuditEntry).where(AuditEntry.action == "user.locked")) is not None
    time_machine.shift(timedelta(minutes=app.config["LOGIN_LOCK_MINUTES"], seconds=1))
    assert sign_in(client, user).status_code == 302


def test_deactivated_account_cannot_sign_in_and_is_signed_out(app, as_role, users):
    client = as_role("coordinator")
    user = db.session.get(User, users["coordinator"].id)
    user.active = False
    db.session.commit()
    response = client.get("/console/")
    assert response.status_code == 302 and "/console/login" in response.headers["Location"]
    assert sign_in(app.test_client(), user).status_code == 401


def test_login_is_throttled(app_factory):
    app = app_factory(RATELIMIT_ENABLED="true", LOGIN_LIMIT="3 per minute")
    with app.app_context():
        client = app.test_client()
        codes = [
            client.post("/console/login", data={"email": "x@example.org", "password": "nope"}).status_code
            for _ in range(5)
        ]
    assert codes[:3] == [401, 401, 401]
    assert codes[3:] == [429, 429]


def test_session_cookie_is_secure_httponly_samesite(app_factory):
    app = app_factory(SESSION_COOKIE_SECURE="true")
    app.test_client_class = FreshClient
    with app.app_context():
        make_user("c@example.org")
        client = app.test_client()
        response = client.post(
            "/console/login",
            data={"email": "c@example.org", "password": PASSWORD},
            base_url="https://localhost",
        )
    cookie = response.headers["Set-Cookie"]
    assert "Secure" in cookie and "HttpOnly" in cookie and "SameSite=Lax" in cookie
    assert "Expires=" in cookie  # a permanent session bounded by the idle limit


def test_idle_session_expires(app, as_role, time_machine):
    time_machine.move_to(utcnow(), tick=False)
    client = as_role("viewer")
    assert client.get("/console/").status_code == 200
    time_machine.shift(timedelta(minutes=app.config["SESSION_IDLE_MINUTES"] - 1))
    assert client.get("/console/").status_code == 200  # activity restarts the clock
    time_machine.shift(timedelta(minutes=app.config["SESSION_IDLE_MINUTES"] - 1))
    assert client.get("/console/").status_code == 200
    time_machine.shift(timedelta(minutes=app.config["SESSION_IDLE_MINUTES"] + 1))
    response = client.get("/console/")
    assert response.status_code == 302 and "/console/login" in response.headers["Location"]
    assert client.get("/console/overview").status_code == 302  # really signed out


def test_logout_is_post_only(as_role):
    client = as_role("viewer")
    assert client.get("/console/logout").status_code == 405
    assert client.get("/console/").status_code == 200
    assert client.post("/console/logout").status_code == 302
    assert client.get("/console/").status_code == 302


def test_next_only_inside_the_console(client, users):
    ok = client.post(
        "/console/login",
        data={"email": users["viewer"].email, "password": PASSWORD, "next": "/console/overview"},
    )
    assert ok.headers["Location"] == "/console/overview"
    client.post("/console/logout")
    for evil in ("https://evil.example/", "//evil.example/console", "/console\\@evil", "/s/abc"):
        response = client.post(
            "/console/login", data={"email": users["viewer"].email, "password": PASSWORD, "next": evil}
        )
        assert response.headers["Location"] == "/console/", evil
        client.post("/console/logout")


def test_csrf_is_required_on_every_form(app_factory):
    app = app_factory(WTF_CSRF_ENABLED="true")
    app.test_client_class = FreshClient
    with app.app_context():
        user = make_user("admin@example.org", role="admin")
        client = app.test_client()
        # sign-in without the token is refused
        assert (
            client.post("/console/login", data={"email": user.email, "password": PASSWORD}).status_code == 400
        )
        page = client.get("/console/login").data.decode()
        token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page).group(1)
        response = client.post(
            "/console/login", data={"email": user.email, "password": PASSWORD, "csrf_token": token}
        )
        assert response.status_code == 302
        before = db.session.scalar(select(func.count()).select_from(AuditEntry))
        for url in (
            "/console/logout",
            "/console/users",
            "/console/language",
            f"/console/users/{user.id}/role",
        ):
            assert client.post(url, data={"role": "viewer", "lang": "zh"}).status_code == 400, url
        assert db.session.scalar(select(func.count()).select_from(AuditEntry)) == before
        assert db.session.get(User, user.id).role == "admin"
        assert client.get("/console/").status_code == 200  # still signed in: logout without token refused
