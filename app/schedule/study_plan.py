"""The study's plan and send window as configured for this app, parsed once per app."""

from __future__ import annotations

from zoneinfo import ZoneInfo

from flask import current_app

from app.schedule import SendWindow, VisitPlan, parse_visit_plan


def visit_plan() -> VisitPlan:
    """The configured visit plan (validated at start-up, so parsing cannot fail here)."""
    cached = current_app.extensions.get("followup.visit_plan")
    if cached is None:
        cached = parse_visit_plan(current_app.config["VISIT_PLAN"])
        current_app.extensions["followup.visit_plan"] = cached
    return cached


def send_window() -> SendWindow:
    """The configured local SMS hours."""
    return SendWindow.parse(current_app.config["SMS_SEND_WINDOW"])


def study_zone() -> ZoneInfo:
    return ZoneInfo(current_app.config["STUDY_TIMEZONE"])
