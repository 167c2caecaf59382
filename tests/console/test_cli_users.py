"""`flask users create`: roles, password rules, one-line failures."""

from __future__ import annotations

from sqlalchemy import select

from app.models import AuditEntry, User


def test_create_user_with_password_from_env(app, runner, monkeypatch):
    monkeypatch.setenv("FOLLOWUP_USER_PASSWORD", "a-long-enough-password")
    result = runner.invoke(args=["users", "create", "Ana@Example.org", "--role", "coordinator"])
    assert result.exit_code == 0, result.output
    user = app.extensions["sqlalchemy"].session.scalar(select(User))
    assert user.email == "ana@example.org" and user.role == "coordinator"
    assert user.check_password("a-long-enough-password") and not user.check_password("wrong")
    assert "a-long-enough-password" not in user.password_hash
    entries = app.extensions["sqlalchemy"].session.scalars(select(AuditEntry)).all()
    assert [e.action for e in entries] == ["user.created"]


def test_create_user_prompts_for_password(app, runner, monkeypatch):
    monkeypatch.delenv("FOLLOWUP_USER_PASSWORD", raising=False)
    result = runner.invoke(
        args=["users", "create", "b@example.org", "--role", "viewer"],
        input="pw-pw-pw-pw-pw\npw-pw-pw-pw-pw\n",
    )
    assert result.exit_code == 0, result.output


def test_refusals_are_one_line_and_nonzero(app, runner, monkeypatch):
    monkeypatch.setenv("FOLLOWUP_USER_PASSWORD", "short")
    result = runner.invoke(args=["users", "create", "c@example.org", "--role", "admin"])
    assert result.exit_code != 0 and "at least 12 characters" in result.output
    monkeypatch.setenv("FOLLOWUP_USER_PASSWORD", "a-long-enough-password")
    assert runner.invoke(args=["users", "create", "not-an-email", "--role", "admin"]).exit_code != 0
    bad_role = runner.invoke(args=["users", "create", "d@example.org", "--role", "god"])
    assert bad_role.exit_code != 0
    runner.invoke(args=["users", "create", "e@example.org", "--role", "admin"])
    dup = runner.invoke(args=["users", "create", "e@example.org", "--role", "admin"])
    assert dup.exit_code != 0 and "already exists" in dup.output
    assert len(app.extensions["sqlalchemy"].session.scalars(select(User)).all()) == 1


def test_commands_have_help(runner):
    for args in (["users", "create", "--help"], ["tick", "--help"], ["db", "upgrade", "--help"]):
        result = runner.invoke(args=args)
        assert result.exit_code == 0 and "Usage" in result.output
