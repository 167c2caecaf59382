"""SIGKILL while reminders are due, with SMS_BACKEND=aliyun and =tencent: each text reaches the provider once.

The same fault as test_fault_kill.py (Twilio), against the local Aliyun- and Tencent-compatible servers
through the official SDKs, smaller (300 reminders, 6 kills per backend) to stay bounded. Counted at the
provider by our own reference (Aliyun OutId, Tencent SessionContext = the outbox row id): every row's text
arrives exactly once and none is missing.

The last restart runs with its clock ten minutes ahead (tests/scheduler/shifted_clock.py), so the rows a
killed sender left in `sending` are old enough to be reconciled. The provider's clock moves with it (the
SDKs sign requests with the time; both servers refuse a request five minutes off), and before that restart
the Tencent server has produced every delivery report: its status list (PullSmsSendStatusByPhoneNumber)
shows a text only once its report exists, and ten minutes later a real one would have them all.
"""

from __future__ import annotations

import os
import random
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

from app.extensions import db
from app.models import OutboundMessage, utcnow
from devservers.runner import serve_in_thread
from tests.conftest import build_app
from tests.scheduler.harness import add_due_reminders, aliyun_settings, tencent_settings, wait_until

pytestmark = pytest.mark.slow

REMINDERS = 300
KILLS = 6
SHIFT = 600  # seconds: the last restart "comes back" ten minutes later


@dataclass
class Provider:
    """One local provider server, seen the same way for both: what it accepted, by our reference."""

    name: str
    settings: dict[str, str]
    refs: Callable[[], list[str]]  # our row id of every accepted text, in order
    numbers: Callable[[], list[str]]  # the number of every accepted text
    shift: Callable[[float], None]  # move the provider's clock ahead
    settle: Callable[[], None]  # let pending delivery reports happen


def _aliyun() -> Iterator[Provider]:
    from devservers.aliyun_sms import AliyunState, create_aliyun_app

    offset = [0.0]

    def clock() -> Any:
        return utcnow() + timedelta(seconds=offset[0])

    state = AliyunState(hang_seconds=1.0, clock=clock, wall_clock=clock)
    handle = serve_in_thread(create_aliyun_app(state=state))
    yield Provider(
        "aliyun",
        aliyun_settings(handle.url),
        refs=lambda: [m.out_id or "" for m in state.messages],
        numbers=lambda: [m.phone for m in state.messages],
        shift=lambda seconds: offset.__setitem__(0, seconds),
        settle=lambda: state.wait_idle(10),
    )
    state.close()
    handle.stop()


def _tencent() -> Iterator[Provider]:
    from devservers.tencent_sms import TencentState, create_tencent_app

    offset = [0.0]
    # Reports a second after the send, so a kill can fall between a text's acceptance and its report.
    state = TencentState(
        hang_seconds=1.0,
        callbacks_enabled=False,
        report_delay=1.0,
        clock=lambda: time.time() + offset[0],
    )
    handle = serve_in_thread(create_tencent_app(state=state))
    yield Provider(
        "tencent",
        {**tencent_settings(handle.url), "TENCENT_SMS_STATUS_LAG": "120"},
        refs=lambda: [s.session_context for s in state.sent],
        numbers=lambda: [s.phone for s in state.sent],
        shift=lambda seconds: offset.__setitem__(0, seconds),
        settle=lambda: state.wait_idle(10),
    )
    state.close()
    handle.stop()


@pytest.fixture(params=["aliyun", "tencent"])
def provider(request) -> Iterator[Provider]:
    yield from {"aliyun": _aliyun, "tencent": _tencent}[request.param]()


def _open_rows() -> int:
    db.session.remove()
    return db.session.scalar(
        select(func.count())
        .select_from(OutboundMessage)
        .where(OutboundMessage.status.in_(("pending", "sending")))
    )


def test_sigkill_while_reminders_are_due_sends_each_once(tmp_path, provider, schedulers):
    settings = {**provider.settings, "SCHEDULER_LEASE_SECONDS": "2"}
    app = build_app("sqlite", tmp_path, **settings)
    seed = int(os.environ.get("FAULT_SEED", random.randrange(1_000_000)))
    rng = random.Random(seed)
    print(f"{provider.name} FAULT_SEED={seed}")
    with app.app_context():
        phones = add_due_reminders(REMINDERS, utcnow())
    env = schedulers.env(app.config["SQLALCHEMY_DATABASE_URI"], **settings)
    log_path = tmp_path / "scheduler.log"
    started = time.monotonic()
    for kill in range(KILLS):
        proc = schedulers.start(env, log_path)
        before = len(provider.refs())
        if rng.random() < 0.3:
            time.sleep(rng.uniform(0.2, 2.5))  # anywhere: start-up, standby wait, planning, sending
        else:
            target = before + rng.randint(1, 40)
            wait_until(lambda t=target, p=proc: len(provider.refs()) >= t or not p.alive(), 10)
            time.sleep(rng.uniform(0, 0.03))  # mid-request, mid-commit, between rows
        assert proc.alive(), proc.log()[-3000:]
        proc.kill()
        print(f"kill {kill + 1} at {time.monotonic() - started:.1f} s: {len(provider.refs())} sent")
    sent_during_kills = len(provider.refs())
    provider.settle()
    provider.shift(SHIFT)
    final = schedulers.start(env, log_path, shift_seconds=SHIFT)
    with app.app_context():
        done = wait_until(lambda: len(provider.refs()) >= REMINDERS and _open_rows() == 0, 60, 0.2)
    assert done, f"seed {seed}: {len(provider.refs())} sent, log:\n{final.log()[-4000:]}"
    print(*(line for line in final.log().splitlines() if "reconcile: adopted=" in line), sep="\n")
    assert final.terminate() == 0
    schedulers.stop_all()

    # Exactly once, counted at the provider, by our own reference and by number.
    per_ref = Counter(provider.refs())
    assert [ref for ref, n in per_ref.items() if n > 1] == [], f"seed {seed}"
    per_number = Counter(provider.numbers())
    assert {n.lstrip("+").removeprefix("86") for n in per_number} == {p.removeprefix("+86") for p in phones}
    assert set(per_number.values()) == {1}, f"seed {seed}"
    # And the outbox agrees: every row settled with a provider id, each row's text is at the provider.
    with app.app_context():
        rows = db.session.execute(
            select(OutboundMessage.id, OutboundMessage.status, OutboundMessage.provider_sid)
        ).all()
        assert len(rows) == REMINDERS
        assert {str(row_id) for row_id, _, _ in rows} == set(per_ref)
        assert all(sid for _, _, sid in rows)
        assert {status for _, status, _ in rows} <= {"queued", "sent", "delivered"}
        db.session.remove()
        db.engine.dispose()
    # Some work was interrupted and caught up (otherwise the kills proved nothing).
    assert 0 < sent_during_kills < REMINDERS, f"seed {seed}: {sent_during_kills} sent before the last restart"
