"""Nothing is ever sent twice: crashes around the provider call, concurrent senders, provider faults, rate.

Every count is taken at the local Twilio server, the way a participant's phone would count.
"""

from __future__ import annotations

import itertools
import threading
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from app.extensions import db
from app.models import OutboundMessage, SmsStatusEvent
from app.sms.claims import claim
from app.sms.planner import plan_due
from app.sms.providers import get_provider
from app.sms.reconcile import reconcile_stuck
from app.sms.sender import prepare, send_due
from tests.sms.conftest import NOW, open_visit

LATER = NOW + timedelta(minutes=3)  # past the stuck-claim threshold (60 s with TWILIO_TIMEOUT=1)


def _settled(counts: dict[str, int]) -> tuple[int, int, int]:
    return counts["adopted"], counts["released"], counts["waiting"]


def _statuses() -> list[str]:
    return list(db.session.scalars(select(OutboundMessage.status).order_by(OutboundMessage.id)))


def test_crash_after_claim_before_provider_call_resends_once(twilio_server):
    phone = open_visit()[0].phone_e164
    plan_due(NOW)
    assert len(claim(NOW, "worker-that-dies")) == 1  # committed as `sending`, then the process dies
    db.session.remove()
    assert send_due(NOW)["sent"] == 0  # a live pass never touches another worker's claim
    assert _settled(reconcile_stuck(NOW + timedelta(seconds=30))) == (0, 0, 0)
    assert reconcile_stuck(LATER)["released"] == 1
    assert send_due(LATER)["sent"] == 1
    assert len(twilio_server.state.sent_to(phone)) == 1
    assert twilio_server.state.duplicates() == []


def test_crash_after_provider_accepted_before_sid_recorded_adopts(twilio_server):
    phone = open_visit()[0].phone_e164
    plan_due(NOW)
    (msg_id,) = claim(NOW, "worker-that-dies")
    msg = db.session.get(OutboundMessage, msg_id)
    body = prepare(msg, NOW)  # recipient and link committed, as the sender does
    provider = get_provider()
    accepted = provider.send(msg.to_e164, body, ref=str(msg.id), status_callback=twilio_server.status_url)
    provider.close()
    db.session.remove()  # the process dies before recording the SID
    twilio_server.state.wait_for_status(accepted.sid, "delivered")
    twilio_server.state.wait_idle()
    # The status callbacks arrived for a SID nobody knew yet: kept, not lost.
    assert db.session.scalar(select(func.count()).select_from(SmsStatusEvent)) >= 2

    assert _settled(reconcile_stuck(LATER)) == (1, 0, 0)
    assert send_due(LATER)["sent"] == 0
    row = db.session.get(OutboundMessage, msg_id)
    assert row.provider_sid == accepted.sid
    assert row.status == "delivered"  # the early callbacks were applied on adoption
    assert len(twilio_server.state.sent_to(phone)) == 1


def test_reconcile_waits_while_the_provider_cannot_be_asked(twilio_server):
    open_visit()
    plan_due(NOW)
    claim(NOW, "worker-that-dies")
    db.session.remove()
    twilio_server.app.config["TWILIO_API_URL"] = "http://127.0.0.1:9"  # nothing listens there
    assert reconcile_stuck(LATER)["waiting"] == 1
    assert _statuses() == ["sending"]  # not released blindly
    twilio_server.app.config["TWILIO_API_URL"] = twilio_server.api.url
    assert reconcile_stuck(LATER)["released"] == 1
    send_due(LATER)
    assert len(twilio_server.state.messages) == 1


def test_two_concurrent_senders_never_send_twice(twilio_server):
    """Two sender passes at once, each with its own threads and sessions (on PostgreSQL: SKIP LOCKED)."""
    participants = [open_visit()[0] for _ in range(30)]
    plan_due(NOW)
    app = twilio_server.app
    results: list[dict] = []
    barrier = threading.Barrier(2)

    def sender() -> None:
        with app.app_context():
            barrier.wait()
            results.append(send_due(NOW))
            db.session.remove()

    threads = [threading.Thread(target=sender) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    state = twilio_server.state
    assert sum(r["sent"] for r in results) == 30
    assert len(state.messages) == 30
    assert state.duplicates() == []
    assert sorted(m.to for m in state.messages) == sorted(p.phone_e164 for p in participants)
    assert set(_statuses()) <= {"queued", "sent", "delivered"}


def test_repeated_ticks_never_resend(twilio_server):
    from app.tick import run_tick

    for _ in range(3):
        open_visit()
    for minutes in range(0, 10, 2):
        run_tick(NOW + timedelta(minutes=minutes), only=["sweep", "plan", "reconcile", "send"])
    assert len(twilio_server.state.messages) == 3


@pytest.mark.parametrize("fault", ["500", "503", "timeout"])
def test_ambiguous_failure_is_checked_then_retried_once(twilio_server, fault):
    participant, _ = open_visit()
    plan_due(NOW)
    twilio_server.state.fail_next(fault)
    summary = send_due(NOW)
    assert summary["sent"] == 1
    assert len(twilio_server.state.sent_to(participant.phone_e164)) == 1
    assert len(twilio_server.state.create_timestamps) == 2


def test_429_backs_off_with_growing_delays(twilio_server):
    participant, _ = open_visit()
    plan_due(NOW)
    twilio_server.state.fail_next("429", times=2)
    assert send_due(NOW)["sent"] == 1
    times = twilio_server.state.create_timestamps
    assert len(times) == 3
    assert times[1] - times[0] >= 0.5 and times[2] - times[1] >= 1.0  # 0.5 s then 1 s, plus jitter
    assert len(twilio_server.state.sent_to(participant.phone_e164)) == 1


def test_provider_down_for_the_whole_pass_retries_on_a_later_pass(twilio_server, monkeypatch):
    monkeypatch.setattr("app.sms.transmit.BACKOFF_BASE", 0.01)
    open_visit()
    plan_due(NOW)
    twilio_server.state.fail_next("500", times=4)
    summary = send_due(NOW)
    assert summary["retry"] == 1 and twilio_server.state.messages == []
    assert _statuses() == ["pending"]
    assert send_due(NOW + timedelta(seconds=30))["sent"] == 0  # waits a minute before trying again
    assert send_due(NOW + timedelta(minutes=2))["sent"] == 1
    assert len(twilio_server.state.messages) == 1


def test_rate_is_honoured_across_two_senders(twilio_env_factory):
    env = twilio_env_factory(SMS_RATE_PER_SECOND="10", SMS_MAX_IN_FLIGHT="2")
    with env.app.app_context():
        for _ in range(16):
            open_visit()
        plan_due(NOW)
        barrier = threading.Barrier(2)

        def sender() -> None:
            with env.app.app_context():
                barrier.wait()
                send_due(NOW)
                db.session.remove()

        threads = [threading.Thread(target=sender) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        times = env.state.create_timestamps
        assert len(times) == 16 and env.state.duplicates() == []
        # 16 texts at 10/s: slots exactly 0.1 s apart (1.5 s first to last). A thread that wakes late
        # on 2 busy cores squeezes arrivals a little, so allow one text of jitter per window.
        assert times[-1] - times[0] >= 1.2
        assert env.state.max_creates_per_second(window=2.0) <= 21
        assert env.state.max_creates_per_second() <= 12
        db.session.remove()


def test_reservations_are_spaced_by_the_rate(twilio_server):
    from app.sms import ratelimit

    slots = [ratelimit.reserve(20.0) for _ in range(10)]
    gaps = [b - a for a, b in itertools.pairwise(slots)]
    assert all(abs(gap - 0.05) < 1e-6 for gap in gaps)


def test_a_wall_clock_stepped_back_never_stalls_sending(twilio_server, time_machine):
    """A clock stepped back (NTP, a restored VM) must not make texts wait out the step."""
    from app.sms import ratelimit

    ahead = NOW.timestamp()
    assert ratelimit.reserve(20.0, clock=lambda: ahead) == ahead
    # An hour earlier: the bucket is an hour ahead, so it restarts from the clock's now.
    assert ratelimit.reserve(20.0, clock=lambda: ahead - 3600) == ahead - 3600
    # A lead within the limit is honoured (other processes' reservations).
    assert ratelimit.reserve(20.0, clock=lambda: ahead - 3600 - 30) == ahead - 3600 + 0.05
    assert ratelimit.wait_turn(20.0) < 1.0
    time_machine.move_to(NOW - timedelta(days=1), tick=True)
    assert ratelimit.wait_turn(20.0) < 1.0  # the in-process spacing is on the monotonic clock


def test_a_claim_takes_exactly_what_it_asks_for(twilio_server):
    for _ in range(5):
        open_visit()
    plan_due(NOW)
    first, second, pair = claim(NOW, "a"), claim(NOW, "b"), claim(NOW, "c", limit=2)
    assert len(first) == len(second) == 1 and len(pair) == 2
    assert len({*first, *second, *pair}) == 4
    assert _statuses().count("pending") == 1


def test_two_tick_processes_at_once_never_send_twice(twilio_server, tmp_path):
    """Two real `flask --app wsgi tick` processes started together on the same database."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    for _ in range(24):
        open_visit()
    config = twilio_server.app.config
    env = dict(os.environ)
    env.update(
        {
            "FOLLOWUP_ENV": "testing",
            "DATABASE_URL": config["SQLALCHEMY_DATABASE_URI"],
            "INSTANCE_PATH": str(tmp_path / "instance"),
            "SMS_BACKEND": "twilio",
            "TWILIO_ACCOUNT_SID": config["TWILIO_ACCOUNT_SID"],
            "TWILIO_AUTH_TOKEN": config["TWILIO_AUTH_TOKEN"],
            "TWILIO_FROM_NUMBER": config["TWILIO_FROM_NUMBER"],
            "TWILIO_API_URL": config["TWILIO_API_URL"],
            "PUBLIC_BASE_URL": config["PUBLIC_BASE_URL"],
            "SMS_RATE_PER_SECOND": "200",
            "SMS_MAX_IN_FLIGHT": "4",
            "LOG_LEVEL": "WARNING",
        }
    )
    env.pop("REDCAP_API_TOKEN", None)
    root = Path(__file__).resolve().parents[2]
    flask = [sys.executable, "-m", "flask", "--app", "wsgi", "tick", "--now", NOW.isoformat()]
    procs = [
        subprocess.Popen(flask, cwd=root, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    outputs = [proc.communicate(timeout=60) for proc in procs]
    assert all(proc.returncode == 0 for proc in procs), outputs
    state = twilio_server.state
    assert len(state.messages) == 24, outputs
    assert len({m.to for m in state.messages}) == 24 and state.duplicates() == []
    sent = [
        int(part.split("=")[1]) for out, _ in outputs for part in out.split() if part.startswith("send.sent=")
    ]
    assert sum(sent) == 24
