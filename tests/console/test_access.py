"""Every console URL needs a login and the right role: proven by walking the app's URL map."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from app.extensions import db
from app.models import ROLES, AuditEntry

PUBLIC = {"console_auth.login", "console_auth.logout", "console_auth.language"}


def console_rules(app):
    rules = [r for r in app.url_map.iter_rules() if r.rule.startswith("/console")]
    assert len(rules) >= 18, "the console's routes are not registered"
    return rules


def build_url(rule, ids) -> str:
    values = {name: ids[name] for name in rule.arguments}
    return _fill(rule.rule, values)


def _fill(pattern: str, values: dict) -> str:
    for name, value in values.items():
        pattern = pattern.replace(f"<int:{name}>", str(value))
    return pattern


@pytest.fixture
def ids(study, users):
    return {
        "visit_id": study.closing_visit,
        "submission_id": study.red_flag_submission,
        "participant_id": study.red_flag_participant,
        "user_id": users["viewer"].id,
        "push_id": study.failed_status_push,
    }


def _methods(rule):
    return sorted(m for m in rule.methods if m in ("GET", "POST"))


def test_every_console_url_redirects_to_login_without_a_session(app, ids):
    client = app.test_client()
    checked = 0
    for rule in console_rules(app):
        if rule.endpoint in PUBLIC:
            continue
        for method in _methods(rule):
            response = client.open(_fill(rule.rule, {k: ids[k] for k in rule.arguments}), method=method)
            response.close()
            assert response.status_code in (302, 401, 403), (rule.rule, method, response.status_code)
            if response.status_code == 302:
                assert response.headers["Location"].startswith("/console/login"), rule.rule
            checked += 1
    assert checked >= 18


def test_every_console_view_declares_a_role(app):
    for rule in console_rules(app):
        if rule.endpoint in PUBLIC:
            continue
        view = app.view_functions[rule.endpoint]
        assert getattr(view, "required_role", None) in ROLES, rule.endpoint


def test_every_role_on_every_route(app, as_role, ids):
    """A weaker role gets 403 and nothing is written; a strong enough role is let through."""
    clients = {role: as_role(role) for role in ROLES}
    for rule in console_rules(app):
        if rule.endpoint in PUBLIC:
            continue
        needed = app.view_functions[rule.endpoint].required_role
        url = _fill(rule.rule, {k: ids[k] for k in rule.arguments})
        for role in ROLES:
            allowed = ROLES.index(role) <= ROLES.index(needed)
            for method in _methods(rule):
                before = db.session.scalar(select(func.count()).select_from(AuditEntry))
                # An empty POST: allowed roles get a validation refusal (400), never a change.
                response = clients[role].open(url, method=method, data={})
                response.close()  # a streamed body (the CSV) holds its request context until closed
                after = db.session.scalar(select(func.count()).select_from(AuditEntry))
                if allowed:
                    assert response.status_code not in (401, 403), (rule.rule, method, role)
                    assert response.status_code < 500, (rule.rule, method, role)
                    if method == "GET":
                        assert response.status_code in (200, 302), (rule.rule, role, response.status_code)
                    else:
                        assert response.status_code == 400, (rule.rule, role, response.status_code)
                else:
                    assert response.status_code == 403, (rule.rule, method, role, response.status_code)
                assert after == before, (rule.rule, method, role)


def test_tampered_ids_are_404(app, as_role, study):
    client = as_role("admin")
    for url in (
        "/console/participants/999999",
        "/console/visits/999999/remind",
        "/console/visits/999999/clinic",
        "/console/visits/999999/reopen",
        "/console/submissions/999999/acknowledge",
        "/console/submissions/999999/retry",
        "/console/participants/999999/withdraw",
        "/console/users/999999/role",
        "/console/status-pushes/999999/retry",
    ):
        method = "GET" if url.count("/") == 3 else "POST"
        assert client.open(url, method=method, data={"reason": "x", "note": "x"}).status_code == 404, url
    assert client.get("/console/participants/abc").status_code == 404
    assert client.get("/console/participants/-1").status_code == 404
