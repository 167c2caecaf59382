"""`GET /healthz`: is the database reachable and is the scheduler alive."""

from __future__ import annotations

from flask import current_app, jsonify
from flask.typing import ResponseReturnValue

from app.health.blueprint import bp
from app.health.checks import health_report


@bp.get("/healthz")
def healthz() -> ResponseReturnValue:
    report = health_report(current_app.config)
    return jsonify(report), (200 if report["ok"] else 503)
