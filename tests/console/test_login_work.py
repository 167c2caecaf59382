"""Sign-in does the same Argon2 work on every path, and locks per e-mail and address, not per account."""

from __future__ import annotations

import pytest
from argon2 import PasswordHasher

from app.extensions import db
from app.models import User
from tests.console.conftest import PASSWORD, sign_in

ADDRESS_A = "198.51.100.7"
ADDRESS_B = "198.51.100.8"


@pytest.fixture
def verifications(monkeypatch):
    """The number of Argon2 verifications made so far (every PasswordHasher, dummy hash included)."""
    calls = []
    real = PasswordHasher.verify

    def counting(self, hash, password):
        calls.append(1)
        return real(self, hash, password)

    monkeypatch.setattr(PasswordHasher, "verify", counting)
    return calls


def _post(client, email: str, password: str, address: str = ADDRESS_A):
    return client.post(
        "/console/login", data={"email": email, "password": password}, environ_base={"REMOTE_ADDR": address}
    )


def test_every_sign_in_path_does_one_argon2_verification(app, client, users, verifications):
    viewer, coordinator = users["viewer"], users["coordinator"]
    coordinator_row = db.session.get(User, coordinator.id)
    coordinator_row.active = False
    db.session.commit()
    for _ in range(app.config["LOGIN_MAX_FAILURES"]):
        _post(client, viewer.email, "wrong password!")  # locks the viewer for ADDRESS_A
    paths = {
        "unknown e-mail": lambda: _post(client, "nobody@example.org", PASSWORD),
        "wrong password": lambda: _post(client, users["admin"].email, "wrong password!"),
        "locked, right password": lambda: _post(client, viewer.email, PASSWORD),
        "locked, wrong password": lambda: _post(client, viewer.email, "wrong password!"),
        "deactivated": lambda: _post(client, coordinator.email, PASSWORD),
        "right password": lambda: _post(app.test_client(), users["admin"].email, PASSWORD),
    }
    counts = {}
    for name, attempt in paths.items():
        before = len(verifications)
        status = attempt().status_code
        counts[name] = len(verifications) - before
        assert status == (302 if name == "right password" else 401), name
    assert counts == dict.fromkeys(paths, 1)


def test_failures_from_one_address_do_not_lock_the_account_for_another(app, client, users):
    viewer = users["viewer"]
    for _ in range(app.config["LOGIN_MAX_FAILURES"]):
        assert _post(client, viewer.email, "wrong password!", ADDRESS_A).status_code == 401
    assert _post(client, viewer.email, PASSWORD, ADDRESS_A).status_code == 401  # locked from A
    elsewhere = app.test_client()
    assert _post(elsewhere, viewer.email, PASSWORD, ADDRESS_B).status_code == 302  # not from B


def test_a_success_clears_that_address_failures(app, client, users):
    viewer = users["viewer"]
    for _ in range(app.config["LOGIN_MAX_FAILURES"] - 1):
        _post(client, viewer.email, "wrong password!")
    assert _post(client, viewer.email, PASSWORD).status_code == 302
    client.post("/console/logout")
    for _ in range(app.config["LOGIN_MAX_FAILURES"] - 1):
        _post(client, viewer.email, "wrong password!")
    assert sign_in(client, viewer).status_code == 302  # the count started again
