"""Security headers on every response, and refusal of oversized bodies before anything reads them.

The questionnaire URL carries a personal token, so no page may leak it through a Referer,
be framed by another site, or run a script that did not come from this server.
"""

from __future__ import annotations

from flask import Flask, Response, abort, current_app, request

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
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "Permissions-Policy": PERMISSIONS_POLICY,
    "Cross-Origin-Opener-Policy": "same-origin",
}


def refuse_oversized_body() -> None:
    """413 as soon as a declared body exceeds MAX_CONTENT_LENGTH, whatever the route does with it."""
    limit = request.max_content_length
    if limit is not None and request.content_length is not None and request.content_length > limit:
        abort(413)


def add_security_headers(response: Response) -> Response:
    """The headers every page gets; pages that hold personal data are never cached."""
    for name, value in HEADERS.items():
        response.headers.setdefault(name, value)
    if not request.path.startswith("/static/"):
        # Answers and tokens must not sit in a shared phone's or a proxy's cache.
        response.headers["Cache-Control"] = "no-store"
        response.headers["Pragma"] = "no-cache"
    if request.is_secure or current_app.config.get("SESSION_COOKIE_SECURE"):
        response.headers.setdefault("Strict-Transport-Security", "max-age=31536000")
    return response


def register_security(app: Flask) -> None:
    """Install the body-size check and the response headers on `app`."""
    # First of all before-request functions: CSRF checking would otherwise parse the body first.
    app.before_request_funcs.setdefault(None, []).insert(0, refuse_oversized_body)
    app.after_request(add_security_headers)
