"""The send pass: claim due outbox rows atomically, re-check them, send, record the provider's SID.

Order of durability (RapidPro's "side effects after the commit"): a row is committed as
`sending` with its claim before anything else; the personal link and the recipient are
committed before the provider is called; the SID is committed after. A crash anywhere leaves
a `sending` row that `reconcile.reconcile_stuck` resolves by asking the provider, never by
sending blindly.
"""

from __future__ import annotations

import logging
import os
import random
import socket
import threading
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta

from flask import current_app
from sqlalchemy import case, literal, select, update
from sqlalchemy.orm import joinedload

from app.extensions import db
from app.models import OutboundMessage, Participant, UTCDateTime, Visit
from app.models.messaging import LINK_KINDS
from app.participants.links import issue_link, link_url
from app.sms import delivery, ratelimit
from app.sms.checks import decide
from app.sms.decisions import Decision
from app.sms.providers import Accepted, ProviderError, SentRecord, SmsProvider, get_provider
from app.sms.texts import LINK_TEMPLATES, count_segments, render

log = logging.getLogger(__name__)

MAX_TRIES = 4
BACKOFF_BASE = 0.5  # seconds; doubled per try, plus up to as much again of jitter
BACKOFF_CAP = 8.0
RETRY_LATER = timedelta(minutes=1)
LATE = timedelta(minutes=15)
# Rows one sender thread claims at a time: fewer claim transactions, still a short wait for the rest.
CLAIM_BATCH = 4  # a text sent later than this after its due time was "caught up"


def worker_id(index: int = 0) -> str:
    """Who holds a claim: host, process and a per-pass nonce, so a restarted process never reuses one."""
    return f"{socket.gethostname()[:40]}:{os.getpid()}:{uuid.uuid4().hex[:6]}:{index}"


def claim(now: datetime, worker: str, limit: int = 1, ids: list[int] | None = None) -> list[int]:
    """Atomically mark up to `limit` due pending rows as `sending` for `worker`, commit, return their ids.

    PostgreSQL: WITH picked AS (SELECT … FOR UPDATE SKIP LOCKED) UPDATE … RETURNING, so concurrent
    senders take disjoint rows without waiting. SQLite: the same single statement, which runs
    under the database's one write lock; the outer `status = 'pending'` re-check makes it safe
    on any isolation level.
    """
    pick = (
        select(OutboundMessage.id)
        .where(OutboundMessage.status == "pending", OutboundMessage.due_at <= now)
        .order_by(OutboundMessage.due_at, OutboundMessage.id)
        .limit(limit)
    )
    if ids is not None:
        pick = pick.where(OutboundMessage.id.in_(ids))
    values = {
        "status": "sending",
        "claimed_at": now,
        "claimed_by": worker,
        "attempts": OutboundMessage.attempts + 1,
        "updated_at": now,
    }
    if db.engine.dialect.name == "postgresql":
        # A CTE runs once; an IN (subquery … LIMIT) may be re-run per row and claim more than asked.
        picked = pick.with_for_update(skip_locked=True).cte("picked")
        stmt = (
            update(OutboundMessage)
            .where(OutboundMessage.id == picked.c.id, OutboundMessage.status == "pending")
            .values(**values)
            .returning(OutboundMessage.id)
        )
    else:
        stmt = (
            update(OutboundMessage)
            .where(OutboundMessage.id.in_(pick.scalar_subquery()), OutboundMessage.status == "pending")
            .values(**values)
            .returning(OutboundMessage.id)
        )
    claimed = list(db.session.connection().execute(stmt).scalars())
    db.session.commit()
    return claimed


def skip_stale_reminders(now: datetime) -> int:
    """Pending reminders of a visit whose later slot is also due are skipped: only the latest goes out."""
    rows = db.session.execute(
        select(OutboundMessage.id, OutboundMessage.visit_id, OutboundMessage.slot).where(
            OutboundMessage.status == "pending",
            OutboundMessage.kind == "reminder",
            OutboundMessage.due_at <= now,
        )
    ).all()
    latest: dict[int, tuple[int, int]] = {}
    for row in rows:
        order = _slot_order(row.slot)
        if row.visit_id not in latest or order > latest[row.visit_id][0]:
            latest[row.visit_id] = (order, row.id)
    stale = [row.id for row in rows if latest[row.visit_id][1] != row.id]
    for start in range(0, len(stale), 500):
        db.session.execute(
            update(OutboundMessage)
            .where(OutboundMessage.id.in_(stale[start : start + 500]), OutboundMessage.status == "pending")
            .values(status="skipped", error_message="stale: a later reminder is due", updated_at=now),
            execution_options={"synchronize_session": False},
        )
    db.session.commit()
    return len(stale)


def _slot_order(slot: str | None) -> int:
    try:
        return int((slot or "r0").lstrip("r"))
    except ValueError:
        return -1


def status_callback_url() -> str | None:
    """Where Twilio posts delivery statuses (public URL: the service runs behind a proxy)."""
    if current_app.config["SMS_BACKEND"] != "twilio":
        return None
    return f"{current_app.config['PUBLIC_BASE_URL']}/sms/twilio/status"


def build_body(msg: OutboundMessage, now: datetime) -> str:
    """The text for `msg`; link texts get a fresh personal link (its hash is stored, never the token)."""
    params: dict[str, str] = {}
    if msg.template in LINK_TEMPLATES:
        params["link"] = link_url(issue_link(msg.visit, now))
        params["visit_key"] = msg.visit.visit_key
    if msg.template == "redflag_alert":
        params["record"] = msg.participant.record_id if msg.participant else "?"
    return render(msg.template, msg.language, **params)


def prepare(msg: OutboundMessage, now: datetime) -> Decision | str:
    """Re-check a claimed row; on "send", fix its recipient, issue its link, commit, and return the body."""
    participant, visit = msg.participant, msg.visit
    decision = decide(msg, participant, visit, now)
    if decision.action == "skip":
        msg.status, msg.error_message = "skipped", decision.reason[:500]
        msg.claimed_by = None
        db.session.commit()
        log.info("message %s skipped: %s", msg.id, decision.reason)
        return decision
    if decision.action == "defer":
        msg.status, msg.claimed_by, msg.claimed_at = "pending", None, None
        msg.due_at = decision.until or now + RETRY_LATER
        msg.error_message = decision.reason[:500]
        db.session.commit()
        return decision
    if msg.kind in ("reminder", "manual", "reply"):
        msg.to_e164 = participant.phone_e164  # the number on file now, not at planning
    body = build_body(msg, now)
    msg.segments = count_segments(body)
    db.session.commit()  # the link must exist before the text that carries it
    return body


def transmit(msg: OutboundMessage, body: str, provider: SmsProvider, now: datetime) -> str:
    """Call the provider with retries; records the outcome and commits. Returns sent/failed/retry/unknown."""
    rate = float(current_app.config["SMS_RATE_PER_SECOND"])
    callback = status_callback_url()
    for attempt in range(MAX_TRIES):
        if provider.rate_limited:
            ratelimit.wait_turn(rate)
        try:
            accepted = provider.send(msg.to_e164 or "", body, ref=str(msg.id), status_callback=callback)
        except ProviderError as err:
            if not err.retryable:
                record_rejected(msg, err, now)
                db.session.commit()
                return "failed"
            if err.ambiguous:
                try:
                    found = find_match(provider, msg, body, now)
                except ProviderError:
                    msg.error_message = f"provider unreachable after an unclear send ({err}); reconcile"[:500]
                    db.session.commit()
                    return "unknown"  # stays `sending`: reconcile decides later, never a blind re-send
                if found is not None:
                    record_accepted(msg, Accepted(found.sid, found.status), now)
                    db.session.commit()
                    return "sent"
            log.warning("message %s: provider busy (%s), try %d of %d", msg.id, err, attempt + 1, MAX_TRIES)
            time.sleep(min(BACKOFF_CAP, BACKOFF_BASE * 2**attempt) * (1 + random.random()))
            continue
        record_accepted(msg, accepted, now)
        db.session.commit()
        return "sent"
    # Not taken (429) or verified absent (5xx): safe to try again on a later pass.
    msg.status, msg.claimed_by, msg.claimed_at = "pending", None, None
    msg.due_at = now + RETRY_LATER
    msg.error_message = "provider unavailable; will retry"
    db.session.commit()
    return "retry"


def record_accepted(
    msg: OutboundMessage, accepted: Accepted, now: datetime, *, early_callbacks: bool = False
) -> None:
    """The provider has the text: keep its SID, count the reminder on the visit, apply early callbacks."""
    msg.provider_sid = accepted.sid
    msg.status = delivery.our_status(accepted.status) or "queued"
    msg.sent_at = now
    msg.claimed_by = None
    msg.error_code = None
    msg.error_message = None
    if accepted.segments:
        msg.segments = accepted.segments
    if msg.kind in LINK_KINDS and msg.visit_id is not None:
        first = literal(now, UTCDateTime())
        db.session.execute(
            update(Visit)
            .where(Visit.id == msg.visit_id)
            .values(
                reminders_sent=Visit.reminders_sent + 1,
                invited_at=case((Visit.invited_at.is_(None), first), else_=Visit.invited_at),
            ),
            execution_options={"synchronize_session": False},
        )
    if early_callbacks:
        # After a crash the callbacks usually came long before us; a live send leaves the rare
        # early callback to the sweep at the end of the pass (delivery.apply_orphan_events).
        db.session.flush()
        delivery.apply_pending_events(msg, now)


def record_rejected(msg: OutboundMessage, err: ProviderError, now: datetime) -> None:
    """The provider refused the text for good: mark it failed and apply what the error code means."""
    msg.status = "failed"
    msg.claimed_by = None
    msg.error_code = str(err.code) if err.code else None
    msg.error_message = str(err)[:500]
    log.warning("message %s refused by the provider: code %s", msg.id, err.code)
    if err.code:
        delivery.apply_error_effects(msg, err.code, now)


def find_match(
    provider: SmsProvider, msg: OutboundMessage, body: str | None, now: datetime
) -> SentRecord | None:
    """The provider's record of this row's text, if it has one (since the claim)."""
    from app.sms.reconcile import matches

    since = (msg.claimed_at or now) - timedelta(minutes=5)
    for record in provider.find_sent(msg.to_e164 or "", since):
        if matches(msg, record, now, body):
            return record
    return None


def process(msg_id: int, worker: str, provider: SmsProvider, now: datetime) -> str:
    """Take one claimed row from check to provider; returns what happened to it."""
    msg = db.session.scalar(
        select(OutboundMessage)
        .where(OutboundMessage.id == msg_id)
        .options(
            joinedload(OutboundMessage.participant).noload(Participant.visits),
            joinedload(OutboundMessage.visit),
        )
    )
    if msg is None or msg.status != "sending" or msg.claimed_by != worker:
        return "lost"
    prepared = prepare(msg, now)
    if isinstance(prepared, Decision):
        return "skipped" if prepared.action == "skip" else "deferred"
    result = transmit(msg, prepared, provider, now)
    if result == "sent" and msg.due_at < now - LATE:
        return "caught_up"
    return result


def send_due(now: datetime, stop: threading.Event | None = None) -> dict[str, int]:
    """Send every pending row due by `now`, with up to SMS_MAX_IN_FLIGHT requests in flight; commits."""
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    stale = skip_stale_reminders(now)
    threads = int(app.config["SMS_MAX_IN_FLIGHT"]) if app.config["SMS_BACKEND"] == "twilio" else 1
    counts: Counter[str] = Counter()
    lock = threading.Lock()
    started = time.monotonic()

    def run(index: int) -> None:
        with app.app_context():
            provider = get_provider()
            me = worker_id(index)
            try:
                while stop is None or not stop.is_set():
                    ids = claim(now, me, limit=CLAIM_BATCH)
                    if not ids:
                        return
                    for msg_id in ids:
                        current = now + timedelta(seconds=time.monotonic() - started)
                        try:
                            outcome = process(msg_id, me, provider, current)
                        except Exception:
                            db.session.rollback()
                            log.exception("message %s: send failed unexpectedly; left for reconcile", msg_id)
                            outcome = "error"
                        with lock:
                            counts[outcome] += 1
            finally:
                provider.close()
                db.session.remove()

    if threads == 1:
        run(0)
    else:
        with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="sms-send") as pool:
            for future in [pool.submit(run, i) for i in range(threads)]:
                future.result()
    delivery.apply_orphan_events(now + timedelta(seconds=time.monotonic() - started))
    summary = {
        "sent": counts["sent"] + counts["caught_up"],
        "caught_up": counts["caught_up"],
        "skipped": counts["skipped"] + stale,
        "stale": stale,
        "deferred": counts["deferred"],
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
    return msg
