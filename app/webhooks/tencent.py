"""Tencent Cloud SMS pushes: `POST /sms/tencent/status` (delivery reports) and `/sms/tencent/reply` (replies).

Configure both in Tencent Cloud's console as `{PUBLIC_BASE_URL}/sms/tencent/status?secret=…` (and
/reply); the secret is SMS_CALLBACK_SECRET. Tencent cannot send a CSRF token, so the views are exempt.
"""

from __future__ import annotations

from typing import Any

from flask import Response

from app.extensions import csrf
from app.sms.callbacks_cn import tencent_replies, tencent_statuses
from app.webhooks.blueprint import bp
from app.webhooks.cn_common import handle_push, large_push

OK = {"result": 0, "errmsg": "OK"}


def _error(message: str) -> dict[str, Any]:
    return {"result": 1, "errmsg": message}


@bp.post("/sms/tencent/status")
@csrf.exempt
@large_push
def tencent_status() -> Response:
    """Delivery reports for our texts (a JSON array)."""
    return handle_push(tencent_statuses, OK, _error)


@bp.post("/sms/tencent/reply")
@csrf.exempt
@large_push
def tencent_reply() -> Response:
    """Participants' replies: TD, 退订, STOP … opt out."""
    return handle_push(tencent_replies, OK, _error)
