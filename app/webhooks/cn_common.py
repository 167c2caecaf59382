"""What the Aliyun and Tencent Cloud callback views share: the secret check and reading the JSON body."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any, TypeVar

from flask import Response, jsonify, request

from app.models import utcnow
from app.sms.callbacks_cn import BadPush, PushResult, secret_ok

log = logging.getLogger(__name__)

# A provider's batch push may carry thousands of receipts (about 250 bytes each): more than the
# site-wide MAX_CONTENT_LENGTH allows a form, so these two-step-checked URLs get their own bound.
PUSH_MAX_BYTES = 8 * 1024 * 1024
_V = TypeVar("_V", bound=Callable[..., Any])


def large_push(view: _V) -> _V:
    """Let a push view take bodies up to PUSH_MAX_BYTES (app.security.refuse_oversized_body reads it)."""
    view.max_content_length = PUSH_MAX_BYTES  # type: ignore[attr-defined]
    return view


def handle_push(
    handler: Callable[[Any, datetime], PushResult], ok: dict[str, Any], error: Callable[[str], dict[str, Any]]
) -> Response:
    """Secret, then JSON, then the domain handler; `ok` is the provider's success answer."""
    if not secret_ok(request.args.get("secret")):
        log.warning("%s refused: missing or wrong secret", request.path)
        return Response("forbidden\n", status=403, mimetype="text/plain")
    try:
        payload = json.loads(request.get_data(cache=False) or b"")
    except (ValueError, UnicodeDecodeError):
        return _answer(error("malformed JSON"), 400)
    try:
        handler(payload, utcnow())
    except BadPush as exc:
        return _answer(error(str(exc)), exc.status)
    return _answer(ok, 200)


def _answer(body: dict[str, Any], status: int) -> Response:
    response = jsonify(body)
    response.status_code = status
    return response
