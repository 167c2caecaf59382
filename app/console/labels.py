"""Translated labels of statuses, kinds and visits in the console, and the Jinja globals that use them."""

from __future__ import annotations

import re
from typing import Any

from flask import Flask
from flask_babel import get_locale
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l

STATUS_LABELS = {
    # visits
    "scheduled": _l("scheduled"),
    "open": _l("open"),
    "completed": _l("completed"),
    "missed": _l("missed"),
    "cancelled": _l("cancelled"),
    # texts
    "pending": _l("pending"),
    "sending": _l("sending"),
    "queued": _l("queued"),
    "sent": _l("sent"),
    "delivered": _l("delivered"),
    "undelivered": _l("undelivered"),
    "failed": _l("failed"),
    "skipped": _l("skipped"),
    # REDCap sync
    "pushed": _l("pushed"),
    "conflict": _l("conflict"),
    "discarded": _l("discarded"),
    # participants
    "active": _l("active"),
    "withdrawn": _l("withdrawn"),
    "deceased": _l("deceased"),
    "lost": _l("lost to follow-up"),
    "opted_out": _l("opted out"),
}

# How an opt-out arrived (Participant.opted_out_via).
OPT_OUT_SOURCE_LABELS = {
    "reply": _l("reply"),
    "web": _l("web"),
    "coordinator": _l("coordinator"),
    "provider": _l("provider"),
}


# VISIT_PLAN keys as people say them, e.g. "week_4" -> "Week 4" / "第4周"; the key stays in URLs and exports.
_VISIT_KEY = re.compile(r"^(week|month|day)_(\d+)$")


def visit_label(visit_key: str | None) -> str:
    """A visit key as a heading ("week_4" -> "Week 4", "第4周" in Chinese); other keys with spaces."""
    if not visit_key:
        return "—"
    match = _VISIT_KEY.match(visit_key)
    if match is None:
        return visit_key.replace("_", " ").capitalize()
    unit, number = match.groups()
    if unit == "week":
        return _("Week %(n)s", n=number)
    if unit == "month":
        return _("Month %(n)s", n=number)
    return _("Day %(n)s", n=number)


def status_label(status: str | None) -> str:
    """The translated label of a status, or the status itself when it has none."""
    if status is None:
        return "—"
    return str(STATUS_LABELS.get(status, status))


def opt_out_source_label(source: str | None) -> str:
    """How an opt-out arrived, translated: reply, web, coordinator or provider."""
    if source is None:
        return "—"
    return str(OPT_OUT_SOURCE_LABELS.get(source, source))


def current_locale() -> str:
    return str(get_locale() or "en")


def local_time(value: Any, fmt: str = "%Y-%m-%d %H:%M") -> str:
    """A UTC instant shown in the study's time zone (coordinators work in the hospital's time)."""
    if value is None:
        return "—"
    from app.schedule.study_plan import study_zone

    shown: str = value.astimezone(study_zone()).strftime(fmt)
    return shown


def actor_name(value: str | None, names: dict[str, str] | None = None) -> str:
    """`user:3` as the account's e-mail when known; system actors as they are."""
    if not value:
        return "—"
    return (names or {}).get(value, value)


def install(app: Flask) -> None:
    """Make the label helpers available to every console template."""
    from app.models import utcnow

    app.jinja_env.globals.update(
        status_label=status_label,
        visit_label=visit_label,
        opt_out_source_label=opt_out_source_label,
        current_locale=current_locale,
        now_utc=utcnow,
    )
    app.jinja_env.filters.update(local=local_time, actor=actor_name)
