"""`make run`'s demo start-up: truthful logins, and a working link for every open visit at any hour."""

from __future__ import annotations

import re
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
import time_machine
from sqlalchemy import select

from app.extensions import db
from app.models import OutboundMessage, User
from devservers.redcap_api import demo_records
from tests.redcap.conftest import STUDY

SHANGHAI = ZoneInfo("Asia/Shanghai")
DEMO_DAY = (2026, 11, 20)
LINK = re.compile(r"record (\d+) (\w+) \((\w+)\): (http://\S+/s/(\S+))  \[(.+)\]")


def _start_demo(env, now: datetime) -> str:
    """The start-up steps `scripts/devstack.py` runs, at `now`; the output of `demo links`."""
    env.state.seed_records(demo_records(STUDY / "demo_records.json", today=now.astimezone(SHANGHAI).date()))
    moment = now.isoformat()
    for args in (
        ("demo", "user"),
        ("redcap", "refresh-metadata", "--now", moment),
        ("roster", "sync", "--now", moment),
    ):
        result = env.cli(*args)
        assert result.exit_code == 0, result.output
    result = env.cli("demo", "links", "--now", moment)
    assert result.exit_code == 0, result.output
    return result.output


@pytest.mark.parametrize(
    ("hour", "sms_now"), [(3, False), (12, True)], ids=["03h-Shanghai-outside-window", "12h-Shanghai-inside"]
)
def test_demo_prints_a_working_link_for_each_open_visit_at_any_hour(redcap_env_factory, hour, sms_now):
    env = redcap_env_factory(PUBLIC_BASE_URL="http://127.0.0.1:5000")
    now = datetime(*DEMO_DAY, hour, 0, tzinfo=SHANGHAI)
    output = _start_demo(env, now)

    links = {m[1]: m for m in LINK.finditer(output)}
    # 1001, 1002 (week 4), 1004, 1007 (month 6) can be texted; 1003 (no consent) and 1006 (bad
    # number) are never texted but their visits are open; 1005 is not active.
    assert sorted(links) == ["1001", "1002", "1003", "1004", "1006", "1007"]
    assert links["1001"][2] == "week_4" and links["1004"][2] == "month_6"
    assert links["1003"][6] == "never texted: no SMS consent"
    if sms_now:
        assert links["1001"][6] == "its SMS goes out now"
    else:
        assert links["1001"][6] == "its SMS waits for the send window, 09:00-20:00 on the participant's clock"
    assert db.session.scalar(select(OutboundMessage)) is None  # printing links sends nothing

    client = env.app.test_client()
    with time_machine.travel(now, tick=False):
        for match in links.values():
            page = client.get(f"/s/{match[5]}")
            assert page.status_code == 200, match[1]
            assert b'<form method="post"' in page.data and b'id="qform"' in page.data
        assert client.get("/s/" + "x" * 22).status_code == 404


def test_demo_links_each_start_are_fresh_and_all_stay_valid(redcap_env_factory):
    env = redcap_env_factory()
    now = datetime(*DEMO_DAY, 3, 0, tzinfo=SHANGHAI)
    first = {m[1]: m[5] for m in LINK.finditer(_start_demo(env, now))}
    second = {m[1]: m[5] for m in LINK.finditer(env.cli("demo", "links", "--now", now.isoformat()).output)}
    assert first.keys() == second.keys() and not set(first.values()) & set(second.values())
    with time_machine.travel(now, tick=False):
        client = env.app.test_client()
        assert {client.get(f"/s/{token}").status_code for token in [*first.values(), *second.values()]} == {
            200
        }


def test_demo_logins_are_what_they_are_announced_as(runner):
    result = runner.invoke(args=["demo", "user"])
    assert result.exit_code == 0, result.output
    roles = dict(db.session.execute(select(User.email, User.role)).all())
    assert roles == {"coordinator@example.org": "coordinator", "admin@example.org": "admin"}
    assert "demo login (coordinator): coordinator@example.org / demo-password-123" in result.output
    assert "demo login (admin): admin@example.org / demo-password-123" in result.output


def test_an_older_demo_database_gets_its_coordinator_demoted(runner):
    from app.console.accounts import create_user

    create_user("coordinator@example.org", "demo-password-123", "admin")  # what `demo user` made before
    db.session.commit()
    assert runner.invoke(args=["demo", "user"]).exit_code == 0
    assert runner.invoke(args=["demo", "user"]).exit_code == 0  # and again: nothing changes
    db.session.expire_all()
    roles = dict(db.session.execute(select(User.email, User.role)).all())
    assert roles == {"coordinator@example.org": "coordinator", "admin@example.org": "admin"}


def test_demo_data_is_refused_in_production(runner, app):
    app.config["FOLLOWUP_ENV"] = "production"
    for command in (["demo", "user"], ["demo", "links"]):
        result = runner.invoke(args=command)
        assert result.exit_code != 0 and "refused in production" in result.output
