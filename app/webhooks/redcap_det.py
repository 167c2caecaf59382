"""`POST /redcap/det`: REDCap's Data Entry Trigger, so a change made in REDCap reaches us within seconds.

REDCap does not sign these posts, so nothing in the body is trusted beyond the record id: the
URL must carry the configured secret (`/redcap/det?secret=…`, compared in constant time), the
project id must match REDCAP_PROJECT_ID when that is set, and the record must be one of ours.
The endpoint only queues a re-read of that one record through the API and answers at once; it
never calls REDCap itself. Unknown records, wrong projects and bad secrets get 403 and change
nothing; a flood gets 429 (per client, and a cap on queued re-reads).
"""

from __future__ import annotations

import hmac
import logging
import re

from flask import Response, current_app, request
from sqlalchemy import select

from app.extensions import csrf, db, limiter
from app.models import Participant, utcnow
from app.redcap.rereads import enqueue, is_pending, kick_worker, pending_count
from app.webhooks.blueprint import bp

log = logging.getLogger(__name__)

# REDCap record names: letters, digits, underscores, hyphens, dots (auto-numbered ids like "12" or "3-7").
RECORD_ID = re.compile(r"^[A-Za-z0-9_.\-]{1,100}$")


def _text(body: str, status: int) -> Response:
    return Response(body + "\n", status=status, mimetype="text/plain")


def _det_limit() -> str:
    return current_app.config.get("REDCAP_DET_LIMIT") or "120 per minute"


def secret_ok(given: str | None) -> bool:
    """Whether the URL's secret matches REDCAP_DET_SECRET (no secret configured: nothing is accepted)."""
    configured = current_app.config.get("REDCAP_DET_SECRET") or ""
    if not configured or not given:
        return False
    return hmac.compare_digest(given.encode("utf-8"), configured.encode("utf-8"))


@bp.route("/redcap/det", methods=["POST"])
@csrf.exempt
@limiter.limit(_det_limit)
def redcap_det() -> Response:
    """Check secret, project and record; queue a re-read; answer at once."""
    # `?secret=` is the documented form; `?token=` is accepted too. A query string, not a path segment:
    # the access log drops query strings, so the secret never lands in a log.
    if not secret_ok(request.args.get("secret") or request.args.get("token")):
        log.warning("DET post refused: missing or wrong secret")
        return _text("forbidden", 403)
    expected_project = str(current_app.config.get("REDCAP_PROJECT_ID") or "").strip()
    if expected_project and request.form.get("project_id", "").strip() != expected_project:
        log.warning("DET post refused: wrong project id")
        return _text("forbidden: wrong project", 403)
    record = request.form.get("record", "").strip()
    if not record:
        return _text("bad request: record is missing", 400)
    if not RECORD_ID.match(record):
        return _text("bad request: record is not a REDCap record name", 400)
    known = db.session.scalar(select(Participant.id).where(Participant.record_id == record))
    if known is None:
        log.info("DET post refused: record not followed by this service")
        return _text("forbidden: unknown record", 403)
    if is_pending(record):
        return _text("queued", 200)  # the waiting re-read will see this change too
    if pending_count() >= current_app.config["REDCAP_DET_MAX_PENDING"]:
        return _text("too many re-reads queued; try again later", 429)
    enqueue(record, utcnow())
    kick_worker(current_app._get_current_object())  # type: ignore[attr-defined]
    return _text("queued", 200)
