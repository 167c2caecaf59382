"""The send pass: claim due outbox rows atomically, re-check them, send, record the provider's SID.

Order of durability (RapidPro's "side effects after the commit"): a row is committed as
`sending` with its claim before anything else; the personal link and the recipient are
committed before the provider is called; the SID is committed after. A crash anywhere leaves
a `sending` row that `reconcile.reconcile_stuck` resolves by asking the provider, never by
sending blindly.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from typing import cast

from flask import current_app
from sqlalchemy import select
from sqlalchemy.orm import joinedload

from app.extensions import db
from app.models import OutboundMessage, OutboundStatus, Participant
from app.sms import carriers, concurrency, delivery
from app.sms.checks import decide
from app.sms.claim_queue import ClaimQueue
from app.sms.claims import claim, skip_stale_reminders, worker_id
from app.sms.decisions import Decision
from app.sms.kinds import unsendable_reason
from app.sms.message import Message, compose
from app.sms.providers import SmsProvider, get_provider
from app.sms.texts import count_segments
from app.sms.transmit import RETRY_LATER, transmit

log = logging.getLogger(__name__)

LATE = timedelta(minutes=15)  # a text sent later than this after its due time was "caught up"
IDLE_SENDER_POLL = 0.1  # seconds between an idle sender's looks at whether the rate needs it now
# Rows claimed in one transaction for the pass's shared queue (app.sms.claim_queue), and how many texts a
# sender sends between its reads of the database's halt.
CLAIM_BATCH = 8


def prepare(msg: OutboundMessage, now: datetime) -> Decision | Message:
    """Re-check a claimed row; on "send", fix its recipient, issue its link, commit, return the message."""
    participant, visit = msg.participant, msg.visit
    decision = decide(msg, participant, visit, now)
    unsendable = unsendable_reason(current_app.config, msg.template, msg.language)
    if unsendable and decision.action == "send":
        decision = Decision("skip", unsendable)
    if decision.action == "skip":
        msg.status, msg.error_message = OutboundStatus.SKIPPED, decision.reason[:500]
        msg.claimed_by = None
        db.session.commit()
        log.info("message %s skipped: %s", msg.id, decision.reason)
        return decision
    if decision.action == "defer":
        msg.status, msg.claimed_by, msg.claimed_at = OutboundStatus.PENDING, None, None
        msg.due_at = decision.until or now + RETRY_LATER
        msg.error_message = decision.reason[:500]
        db.session.commit()
        return decision
    if msg.kind in ("reminder", "manual", "reply"):
        msg.to_e164 = participant.phone_e164  # the number on file now, not at planning
    message = compose(msg, now)
    msg.segments = count_segments(message.body)
    msg.params = message.stored_params()
    db.session.commit()  # the link must exist before the text that carries it
    return message


def process(
    msg_id: int, worker: str, provider: SmsProvider, now: datetime, *, check_halt: bool = True
) -> str:
    """Take one claimed row from check to provider; returns what happened to it.

    `check_halt=False`: the caller has just read that sending is not halted and no halt was recorded
    since, so the per-text read of the halt is skipped.
    """
    msg = db.session.scalar(
        select(OutboundMessage)
        .where(OutboundMessage.id == msg_id)
        .options(
            joinedload(OutboundMessage.participant).noload(Participant.visits),
            joinedload(OutboundMessage.visit),
        )
    )
    if msg is None or msg.status != OutboundStatus.SENDING or msg.claimed_by != worker:
        return "lost"
    if check_halt and carriers.halted():
        return carriers.release_halted(msg)
    prepared = prepare(msg, now)
    if isinstance(prepared, Decision):
        return "skipped" if prepared.action == "skip" else "deferred"
    result = transmit(msg, prepared, provider, now)
    if result == "sent" and msg.due_at < now - LATE:
        return "caught_up"
    return result


def send_due(now: datetime, stop: threading.Event | None = None) -> dict[str, int]:
    """Send every pending row due by `now`, with as many requests in flight as the rate needs at the
    provider's latency (app.sms.concurrency), at most SMS_MAX_IN_FLIGHT; commits."""
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    stale = skip_stale_reminders(now)
    coalesced = carriers.coalesce_alerts(now)
    if carriers.halted():
        log.warning("send pass holds every text: %s", carriers.halt_reason())
    threads = concurrency.ceiling(app.config)
    queue = ClaimQueue(now, CLAIM_BATCH)
    counts: Counter[str] = Counter()
    lock = threading.Lock()
    started = time.monotonic()

    def run(index: int) -> None:
        with app.app_context():
            provider = get_provider()
            # This thread's own session: a commit need not expire what it wrote (each text is read
            # afresh below, its participant and visit with it), which saves a reload per commit.
            session = db.session()
            session.expire_on_commit = False
            taken, halts = 0, 0
            try:
                while True:
                    if stop is not None and stop.is_set():
                        return
                    if taken % CLAIM_BATCH == 0:  # the database's halt, read once per CLAIM_BATCH texts
                        halts = carriers.halts_recorded()  # before the read: a later halt is seen below
                        if carriers.halted():
                            return
                    if index >= concurrency.wanted(app.config):  # not needed at this latency (yet)
                        if queue.closed.wait(IDLE_SENDER_POLL):
                            return
                        continue
                    msg_id = queue.take()
                    if msg_id is None:
                        return
                    taken += 1
                    current = now + timedelta(seconds=time.monotonic() - started)
                    session.expunge_all()  # nothing of the last text is trusted for this one
                    recheck = carriers.halts_recorded() != halts
                    try:
                        with concurrency.timed(app.config["SMS_BACKEND"]):
                            outcome = process(msg_id, queue.worker, provider, current, check_halt=recheck)
                    except Exception:
                        db.session.rollback()
                        log.exception("message %s: send failed unexpectedly; left for reconcile", msg_id)
                        outcome = "error"
                    with lock:
                        counts[outcome] += 1
            finally:
                # Whatever ended this sender (nothing left, stop, halt, an error) ends the pass: the idle
                # senders waiting for their turn must not outlive it, or the pass never returns.
                queue.close()
                provider.close()
                db.session.remove()

    try:
        if threads == 1:
            run(0)
        else:
            with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="sms-send") as pool:
                for future in [pool.submit(run, i) for i in range(threads)]:
                    future.result()
    finally:
        # Claimed but never begun (stopped or halted first): pending again, not left for reconcile.
        queue.release_unsent(now + timedelta(seconds=time.monotonic() - started))
    delivery.apply_orphan_events(now + timedelta(seconds=time.monotonic() - started))
    summary = {
        "sent": counts["sent"] + counts["caught_up"],
        "caught_up": counts["caught_up"],
        "skipped": counts["skipped"] + stale + coalesced,
        "stale": stale,
        "coalesced": coalesced,
        "deferred": counts["deferred"],
        "halted": counts["halted"],
        "failed": counts["failed"],
        "retry": counts["retry"],
        "unknown": counts["unknown"] + counts["error"],
    }
    if any(summary.values()):
        log.info("send pass: %s", " ".join(f"{k}={v}" for k, v in summary.items()))
    return summary


def send_now(msg_id: int, now: datetime) -> OutboundMessage:
    """Claim and send one row right away (the `sms test` command); returns the row as it ended."""
    me = worker_id()
    provider = get_provider()
    try:
        if claim(now, me, limit=1, ids=[msg_id]):
            process(msg_id, me, provider, now)
    finally:
        provider.close()
    msg = db.session.get(OutboundMessage, msg_id)
    db.session.refresh(msg)
    return cast(OutboundMessage, msg)  # refresh above has already failed if the row is gone
