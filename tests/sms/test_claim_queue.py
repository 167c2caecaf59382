"""The send pass's shared claim queue: one batch at a time, each row to one sender, unsent rows handed back."""

from __future__ import annotations

import threading

from sqlalchemy import select

from app.extensions import db
from app.models import OutboundMessage, OutboundStatus
from app.sms.claim_queue import ClaimQueue
from app.sms.planner import plan_due
from app.sms.sender import send_due
from tests.sms.conftest import NOW, open_visit


def _rows() -> list[OutboundMessage]:
    db.session.expire_all()
    return list(db.session.scalars(select(OutboundMessage).order_by(OutboundMessage.id)))


def test_rows_are_claimed_in_batches_and_each_handed_out_once(twilio_server):
    for _ in range(5):
        open_visit()
    assert plan_due(NOW).planned == 5
    queue = ClaimQueue(NOW, batch=2)
    first = queue.take()
    claimed = [r for r in _rows() if r.status == OutboundStatus.SENDING]
    assert len(claimed) == 2 and {r.claimed_by for r in claimed} == {queue.worker}  # one batch, not all
    taken = [first] + [queue.take() for _ in range(4)]
    assert sorted(taken) == sorted(r.id for r in _rows())  # every row once
    assert queue.take() is None and queue.closed.is_set()


def test_rows_claimed_but_never_begun_go_back_to_pending_untouched(twilio_server):
    for _ in range(4):
        open_visit()
    plan_due(NOW)
    queue = ClaimQueue(NOW, batch=4)
    begun = queue.take()
    assert queue.release_unsent(NOW) == 3
    rows = {r.id: r for r in _rows()}
    assert rows[begun].status == OutboundStatus.SENDING  # in a sender's hands: reconcile's business
    others = [r for r in rows.values() if r.id != begun]
    assert all(r.status == OutboundStatus.PENDING for r in others)
    assert all(r.claimed_by is None and r.claimed_at is None and r.attempts == 0 for r in others)
    assert queue.release_unsent(NOW) == 0  # nothing held twice


def test_a_stopped_pass_leaves_nothing_claimed(twilio_server):
    for _ in range(6):
        open_visit()
    plan_due(NOW)
    stop = threading.Event()
    stop.set()  # SIGTERM before the first text
    summary = send_due(NOW, stop=stop)
    assert summary["sent"] == 0
    assert {r.status for r in _rows()} == {OutboundStatus.PENDING}
    assert twilio_server.state.messages == []
    assert send_due(NOW)["sent"] == 6  # the next pass sends every one, once
    assert len(twilio_server.state.messages) == 6


def test_a_sender_failing_ends_the_pass_for_the_idle_ones_too(twilio_server, monkeypatch):
    """With senders idle (the rate needs fewer than the ceiling), an error in the active one must end the
    whole pass: before, the idle ones waited for a drained queue that nobody would drain."""
    from sqlalchemy.exc import OperationalError

    import app.sms.claim_queue as claim_queue
    from app.sms import concurrency

    for _ in range(12):
        open_visit()
    plan_due(NOW)
    monkeypatch.setattr(concurrency, "wanted", lambda config: 1)  # senders 1-3 of 4 stay idle
    real_claim, calls = claim_queue.claim, []

    def claim_then_lose_the_database(*args, **kwargs):
        calls.append(1)
        if len(calls) > 1:
            raise OperationalError("SELECT", {}, Exception("the database went away"))
        return real_claim(*args, **kwargs)

    monkeypatch.setattr(claim_queue, "claim", claim_then_lose_the_database)
    outcome: list[object] = []

    def run_pass() -> None:
        with twilio_server.app.app_context():
            try:
                outcome.append(send_due(NOW))
            except OperationalError as exc:
                outcome.append(exc)

    worker = threading.Thread(target=run_pass, daemon=True)
    worker.start()
    worker.join(timeout=30)
    assert not worker.is_alive(), "the send pass never returned"
    assert isinstance(outcome[0], OperationalError)
    assert len(twilio_server.state.messages) == 8  # the first batch went out, once
