"""Error pages: short, in the user's language, and never echoing the request."""

from __future__ import annotations

from typing import cast

from flask import Flask, jsonify, render_template, request
from flask.typing import ResponseReturnValue
from werkzeug.exceptions import HTTPException


def _wants_json() -> bool:
    return (
        request.path.startswith(("/healthz", "/sms/", "/redcap/"))
        or request.accept_mimetypes.best == "application/json"
    )


def register(app: Flask) -> None:
    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> ResponseReturnValue:
        code = cast(int, exc.code)  # an HTTPException that reaches a handler always has its code
        if _wants_json():
            return jsonify(error=exc.name, status=exc.code), code
        return render_template("error.html", code=exc.code, name=exc.name, description=exc.description), code
