"""Security headers on every response, and refusal of oversized bodies before anything reads them.

The questionnaire URL carries a personal token, so no page may leak it through a Referer,
be framed by another site, or run a script that did not come from this server.

`Referrer-Policy: same-origin` (also in base.html's meta tag): a browser sends the Referer only back to
this site, never to another one. Flask-WTF's strict HTTPS check (WTF_CSRF_SSL_STRICT, left on) needs
that same-origin Referer on every HTTPS POST; `no-referrer` made every HTTPS form fail.
"""

from __future__ import annotations

import hashlib
import io
import os
import zlib
from functools import lru_cache
from typing import Any, BinaryIO

from flask import Flask, Response, abort, current_app, g, request, session
from flask.sessions import SecureCookieSessionInterface
from itsdangerous import Serializer, URLSafeTimedSerializer
from itsdangerous.encoding import base64_encode
from werkzeug.exceptions import BadRequest

# No 'unsafe-inline' anywhere: the questionnaire's logic travels as a JSON data block, not code.
CSP = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "font-src 'self'",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)
PERMISSIONS_POLICY = (
    "accelerometer=(), camera=(), geolocation=(), gyroscope=(), magnetometer=(), microphone=(), "
    "payment=(), usb=()"
)
HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "X-Content-Type-Options": "nosniff",
    "Permissions-Policy": PERMISSIONS_POLICY,
    "Cross-Origin-Opener-Policy": "same-origin",
}


# Past the limit, read and discard up to this much more so the client can still read the 413 (a server
# that closes a socket with unread data resets the connection); beyond it the connection is just cut.
_DRAIN_LIMIT = 1024 * 1024
_READ_SIZE = 64 * 1024


def refuse_oversized_body() -> None:
    """413 as soon as a body exceeds MAX_CONTENT_LENGTH, declared or chunked, whatever the route does.

    A view may name a larger bound of its own (`view.max_content_length`, e.g. an SMS provider's
    batch push of thousands of receipts); it applies to that route only.
    """
    environ = request.environ
    if environ.get("CONTENT_LENGTH", "") in ("", "0") and "HTTP_TRANSFER_ENCODING" not in environ:
        return  # no body at all (every page view): nothing to measure, nothing will be parsed
    view = current_app.view_functions.get(request.endpoint or "")
    own = getattr(view, "max_content_length", None)
    if own:
        request.max_content_length = own
    limit = request.max_content_length
    if limit is None:
        return
    if request.content_length is not None:
        if request.content_length > limit:
            abort(413)
        return
    # A chunked body has no Content-Length: Werkzeug would read it up to the limit and silently
    # parse the truncated rest. Read it here instead, refuse it whole if too long, else keep it.
    if "chunked" in request.headers.get("Transfer-Encoding", "").lower() and request.environ.get(
        "wsgi.input_terminated"
    ):
        _buffer_chunked_body(limit)


def _buffer_chunked_body(limit: int) -> None:
    """Read a chunked body of at most `limit` bytes into memory for the route, or abort with 413."""
    stream = request.environ["wsgi.input"]
    body = _read(stream, limit + 1)
    if len(body) <= limit:
        request.environ["wsgi.input"] = io.BytesIO(body)
        return
    _discard(stream, _DRAIN_LIMIT)
    abort(413)


def _read(stream: BinaryIO, most: int) -> bytes:
    """Up to `most` bytes of `stream`; a malformed chunk or a client gone mid-body is a 400."""
    data = bytearray()
    try:
        while len(data) < most:
            chunk = stream.read(min(_READ_SIZE, most - len(data)))
            if not chunk:
                break
            data += chunk
    except (OSError, ValueError):
        raise BadRequest() from None
    return bytes(data)


def _discard(stream: BinaryIO, most: int) -> None:
    """Read and drop up to `most` bytes; a broken rest of a body already refused does not matter."""
    dropped = 0
    try:
        while dropped < most:
            chunk = stream.read(_READ_SIZE)
            if not chunk:
                return
            dropped += len(chunk)
    except (OSError, ValueError):
        return


# The headers as (name, lowercase name, value), and the lowercase names as a set: the check for a view's
# own value costs one set lookup per header.
_HEADER_ROWS = tuple((name, name.lower(), value) for name, value in HEADERS.items())


def add_security_headers(response: Response) -> Response:
    """The headers every page gets; pages that hold personal data are never cached."""
    headers = response.headers
    present = {name.lower() for name, _ in headers.items()}
    for name, lower, value in _HEADER_ROWS:
        if lower not in present:  # a view's own value wins, as with setdefault
            headers.add(name, value)
    if not request.path.startswith("/static/"):
        # Answers and tokens must not sit in a shared phone's or a proxy's cache.
        headers["Cache-Control"] = "no-store"
        headers["Pragma"] = "no-cache"
    if request.is_secure or current_app.config.get("SESSION_COOKIE_SECURE"):
        headers.setdefault("Strict-Transport-Security", "max-age=31536000")
    return response


# Below this many bytes of JSON, zlib is not tried: on a payload this short it hardly ever gains a byte
# (a CSRF token's 40 random hex digits never do), yet each attempt sets up a whole deflate state, which
# cost more than signing the cookie itself.
COMPRESS_FROM = 256


class CompactSerializer(URLSafeTimedSerializer):
    """itsdangerous' URL-safe timed serializer that tries zlib only on payloads long enough to gain.

    A short payload comes out exactly as itsdangerous writes any payload that does not compress; a long
    one exactly as before. `loads` is itsdangerous' own, so it reads both forms (old cookies and tokens
    included), and Flask and Flask-WTF check what this signs as their own.
    """

    def dump_payload(self, obj: Any) -> bytes:
        """The JSON, compressed (with itsdangerous' leading '.') only when long and shorter for it."""
        json = Serializer.dump_payload(self, obj)
        if len(json) >= COMPRESS_FROM:
            compressed = zlib.compress(json)
            if len(compressed) < len(json) - 1:
                return b"." + base64_encode(compressed)
        return base64_encode(json)


@lru_cache(maxsize=8)
def _csrf_serializer(secret: str | bytes) -> CompactSerializer:
    return CompactSerializer(secret, salt="wtf-csrf-token")  # Flask-WTF's salt


def csrf_token() -> str:
    """This request's signed CSRF token: what Flask-WTF's `generate_csrf` returns, made the same way.

    Same raw token in the session (Flask-WTF's field name), same salt, key and signature, cached in `g`
    under the same name, so Flask-WTF's check accepts it and a later `csrf_token()` in a template returns
    the same value. Only the serializer differs: built once per key, and without the zlib attempt on a
    payload that never compresses (a third of a questionnaire page's own work went into the two).
    """
    config = current_app.config
    secret = config.get("WTF_CSRF_SECRET_KEY") or current_app.secret_key
    field = config.get("WTF_CSRF_FIELD_NAME") or "csrf_token"
    if not secret:
        raise RuntimeError("A secret key is required to use CSRF.")
    found: str | None = g.get(field)
    if found is None:
        raw = session.get(field)
        if not isinstance(raw, str):
            raw = session[field] = hashlib.sha1(os.urandom(64)).hexdigest()  # noqa: S324  (Flask-WTF's)
        found = _csrf_serializer(secret).dumps(raw)
        setattr(g, field, found)
    return found


class SessionCookies(SecureCookieSessionInterface):
    """Flask's signed session cookie, with its serializer built once per set of keys, not twice a request,
    and without the zlib attempt on a short session (`CompactSerializer`)."""

    def __init__(self) -> None:
        self._serializers: dict[tuple[Any, ...], URLSafeTimedSerializer | None] = {}

    def get_signing_serializer(self, app: Flask) -> URLSafeTimedSerializer | None:
        """Flask's serializer for the app's SECRET_KEY and SECRET_KEY_FALLBACKS as they are now."""
        fallbacks = tuple(app.config["SECRET_KEY_FALLBACKS"] or ())
        keys = (app.secret_key, fallbacks)
        found = self._serializers.get(keys, False)
        if found is False:
            # Flask's own arguments (SecureCookieSessionInterface.get_signing_serializer), current key last.
            found = self._serializers[keys] = (
                CompactSerializer(
                    [*fallbacks, app.secret_key],
                    salt=self.salt,
                    serializer=self.serializer,
                    signer_kwargs={
                        "key_derivation": self.key_derivation,
                        "digest_method": self.digest_method,
                    },
                )
                if app.secret_key
                else None
            )
        return found  # type: ignore[return-value]  # False never stays: it is replaced above


def register_security(app: Flask) -> None:
    """Install the body-size check, the response headers and the session cookie on `app`."""
    # First of all before-request functions: CSRF checking would otherwise parse the body first.
    app.before_request_funcs.setdefault(None, []).insert(0, refuse_oversized_body)
    app.after_request(add_security_headers)
    app.session_interface = SessionCookies()
