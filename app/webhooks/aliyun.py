"""Aliyun SMS pushes: `POST /sms/aliyun/report` (SmsReport receipts) and `/sms/aliyun/up` (SmsUp replies).

Configure both in Aliyun's console as `{PUBLIC_BASE_URL}/sms/aliyun/report?secret=…` (and /up); the
secret is SMS_CALLBACK_SECRET. Aliyun cannot send a CSRF token, so the views are exempt.
"""

from __future__ import annotations

from typing import Any

from flask import Response

from app.extensions import csrf
from app.sms.callbacks_cn import aliyun_replies, aliyun_reports
from app.webhooks.blueprint import bp
from app.webhooks.cn_common import handle_push, large_push

OK = {"code": 0, "msg": "成功"}


def _error(message: str) -> dict[str, Any]:
    return {"code": 1, "msg": message}


@bp.post("/sms/aliyun/report")
@csrf.exempt
@large_push
def aliyun_report() -> Response:
    """Delivery receipts for our texts (a JSON array)."""
    return handle_push(aliyun_reports, OK, _error)


@bp.post("/sms/aliyun/up")
@csrf.exempt
@large_push
def aliyun_up() -> Response:
    """Participants' replies (a JSON array): TD, 退订, STOP … opt out."""
    return handle_push(aliyun_replies, OK, _error)
