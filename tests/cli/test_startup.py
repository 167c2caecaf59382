"""`flask --app wsgi … --help` builds only the commands; a command that runs gets the whole app, as before.

The help path is what issue 17 made fast: these tests hold what makes it fast (no database layer, no
models, no views imported for any command's help) and what must not change with it (every command
still there, a command runs on the finished app, a bad configuration refused with the same one line
by the commands, the scheduler and the web app).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from app import create_app, finish_app
from app.cli.lazy import looking_up_commands
from config import TestingConfig

ROOT = Path(__file__).resolve().parent.parent.parent
HEAVY = ("sqlalchemy", "flask_sqlalchemy", "app.models", "app.extensions", "app.patient", "app.console")

# Runs in a fresh interpreter: every command's --help through flask's own command line, one after the
# other, then which heavy modules had been imported. The last line of stdout is the JSON result.
HELP_PROBE = """
import json, sys
from flask.cli import main

def help_of(path):
    sys.argv = ["flask", "--app", "wsgi", *path, "--help"]
    try:
        main()
    except SystemExit as exc:
        return exc.code or 0
    return 0

def walk(group, prefix=()):
    for name, command in sorted(getattr(group, "commands", {}).items()):
        yield (*prefix, name)
        yield from walk(command, (*prefix, name))

HEAVY = %r
codes = {"": help_of([])}
import wsgi
paths = [p for p in walk(wsgi.app.cli) if p[0] != "db"] + [("db",)]
# `db --help` is last: Flask-Migrate's own group needs the database layer (not the models, not the views)
DATABASE_LAYER = ("sqlalchemy", "flask_sqlalchemy", "app.extensions")
for path in paths:
    codes[" ".join(path)] = help_of(path)
    loaded = [m for m in HEAVY if m in sys.modules and not (path == ("db",) and m in DATABASE_LAYER)]
    if loaded:
        break
print(json.dumps({"codes": codes, "loaded": loaded, "at": " ".join(path)}))
"""


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(tmp_path),
        "FOLLOWUP_ENV": "development",
        "INSTANCE_PATH": str(tmp_path / "instance"),
        "DATABASE_URL": f"sqlite:///{tmp_path / 'cli.db'}",
        "LOG_LEVEL": "WARNING",
    }
    env.update(extra)
    return env


def _run(args: list[str], tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *args],
        cwd=ROOT,
        env=_env(tmp_path, **env),
        capture_output=True,
        text=True,
        timeout=120,
    )


def _flask(args: list[str], tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return _run(["-m", "flask", "--app", "wsgi", *args], tmp_path, **env)


def test_every_commands_help_imports_no_database_layer_models_or_views(tmp_path):
    result = _run(["-c", HELP_PROBE % (HEAVY,)], tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    probe = json.loads(result.stdout.strip().splitlines()[-1])
    assert probe["loaded"] == [], f"`flask --app wsgi {probe['at']} --help` imported {probe['loaded']}"
    assert set(probe["codes"].values()) == {0}, probe["codes"]
    # the walk reached the leaves, not only the groups
    assert {"redcap push", "redcap reconcile", "sms test", "users create", "tick", "scheduler"} <= set(
        probe["codes"]
    )


def test_the_command_only_app_has_every_command_of_the_whole_app(tmp_path):
    config = TestingConfig({"DATABASE_URL": f"sqlite:///{tmp_path / 'a.db'}"}, instance_path=tmp_path / "i")
    light = create_app(config, commands_only=True)
    whole = create_app(config)
    assert sorted(light.cli.commands) == sorted(whole.cli.commands)
    for name, group in whole.cli.commands.items():
        assert sorted(getattr(light.cli.commands[name], "commands", {})) == sorted(
            getattr(group, "commands", {})
        )


def test_finishing_builds_the_rest_once(tmp_path):
    config = TestingConfig({"DATABASE_URL": f"sqlite:///{tmp_path / 'a.db'}"}, instance_path=tmp_path / "i")
    app = create_app(config, commands_only=True)
    assert not app.blueprints and "sqlalchemy" not in app.extensions
    assert finish_app(app) is app and finish_app(app) is app  # the second call changes nothing
    assert {"patient", "health"} <= set(app.blueprints) and "sqlalchemy" in app.extensions


def test_outside_flasks_command_line_the_whole_app_is_built():
    assert looking_up_commands() is False


def test_a_command_runs_on_the_finished_app(tmp_path):
    assert _flask(["db", "upgrade"], tmp_path).returncode == 0
    created = _flask(
        ["users", "create", "ana@example.org", "--role", "viewer"],
        tmp_path,
        FOLLOWUP_USER_PASSWORD="a-long-enough-password",
    )
    assert created.returncode == 0, created.stderr[-2000:]
    assert created.stdout.strip() == "created user ana@example.org (viewer)"
    engine = create_engine(f"sqlite:///{tmp_path / 'cli.db'}")
    with engine.connect() as connection:
        assert connection.execute(text("SELECT email, role FROM users")).all() == [
            ("ana@example.org", "viewer")
        ]
    engine.dispose()


REFUSAL = "configuration error: SMS_DENY_WORDS: the en 'invite' text contains 'questionnaire' (reword it in app/sms/texts.py)"


@pytest.mark.parametrize(
    "args",
    [
        ["-m", "flask", "--app", "wsgi", "tick"],
        ["-m", "flask", "--app", "wsgi", "scheduler"],
        ["-c", "import wsgi"],  # what a gunicorn worker does at boot
    ],
    ids=["command", "scheduler", "web app"],
)
def test_a_denied_word_in_a_text_is_refused_at_start_with_one_line(args, tmp_path):
    result = _run(args, tmp_path, SMS_DENY_WORDS="questionnaire")
    assert result.returncode == 1
    assert [line for line in result.stderr.splitlines() if line.strip()] == [REFUSAL]


def test_help_is_shown_even_when_a_text_would_be_refused(tmp_path):
    result = _flask(["tick", "--help"], tmp_path, SMS_DENY_WORDS="questionnaire")
    assert result.returncode == 0 and result.stdout.startswith("Usage: ")


def test_flasks_test_runner_finishes_a_command_only_app_for_a_command_not_for_help(tmp_path):
    config = TestingConfig({"DATABASE_URL": f"sqlite:///{tmp_path / 'a.db'}"}, instance_path=tmp_path / "i")
    app = create_app(config, commands_only=True)
    runner = app.test_cli_runner()
    assert runner.invoke(args=["sms", "test", "--help"]).exit_code == 0
    assert not app.blueprints
    refused = runner.invoke(args=["sms", "test", "12"])  # refused by the command itself, once it runs
    assert refused.exit_code == 2 and "not a valid number" in refused.output
    assert "patient" in app.blueprints
