"""Error pages: short, in the user's language, and never echoing the request."""

from __future__ import annotations

from flask import Flask, jsonify, render_template, request
from werkzeug.exceptions import HTTPException


def _wants_json() -> bool:
    return (
        request.path.startswith(("/healthz", "/sms/", "/redcap/"))
        or request.accept_mimetypes.best == "application/json"
    )


def register(app: Flask) -> None:
    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException):
        if _wants_json():
            return jsonify(error=exc.name, status=exc.code), exc.code
        return render_template(
            "error.html", code=exc.code, name=exc.name, description=exc.description
        ), exc.code
