"""Every text the service sends, from the gettext catalogues, in the participant's language.

Texts carry a neutral sender name (STUDY_SHORT_NAME, or STUDY_SHORT_NAME_ZH in Chinese), the visit,
the personal link and how to opt out (by reply, or on the web page where replies never reach us:
`template_for`): never a name, a diagnosis, an answer or a treatment arm
(app.sms.privacy refuses SMS_DENY_WORDS at start-up). `count_segments` is what the carrier bills,
so tests can hold every template to two segments with the longest real link.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from flask import current_app
from flask_babel import force_locale, gettext

# One lazily-translated template per purpose; %(name)s placeholders are filled at send time.
TEMPLATES: dict[str, Callable[[], str]] = {
    "invite": lambda: gettext(
        "%(study)s study: your %(visit)s follow-up questionnaire is open. "
        "Please answer here: %(link)s Reply STOP to opt out."
    ),
    "reminder": lambda: gettext(
        "%(study)s study reminder: your %(visit)s follow-up questionnaire is still open. "
        "Answer here: %(link)s Reply STOP to opt out."
    ),
    "help": lambda: gettext(
        "%(study)s follow-up study. Questions? Call the study team on %(phone)s. "
        "Reply STOP to stop texts, START to resume."
    ),
    "stop_confirm": lambda: gettext(
        "%(study)s: you will get no more texts from this study. Reply START to resume."
    ),
    "start_confirm": lambda: gettext("%(study)s: texts from this study are on again. Reply STOP to opt out."),
    "reply_link": lambda: gettext(
        "%(study)s: thank you. Your follow-up questionnaire is here: %(link)s Questions? Call %(phone)s."
    ),
    "reply_help": lambda: gettext(
        "%(study)s: this number does not read replies. Questions? Call the study team on %(phone)s."
    ),
    "redflag_alert": lambda: gettext(
        "%(study)s ALERT: follow-up record %(record)s needs clinical review now. "
        "Open the coordinator console."
    ),
    "test": lambda: gettext("%(study)s: test message from the follow-up service. No action needed."),
    # Where replies never reach us (see replies_reach_us): how to stop without a reply.
    "invite_web": lambda: gettext(
        "%(study)s study: your %(visit)s follow-up questionnaire is open. "
        "Please answer here: %(link)s To stop texts, open the link and tap Stop text reminders."
    ),
    "reminder_web": lambda: gettext(
        "%(study)s study reminder: your %(visit)s follow-up questionnaire is still open. "
        "Answer here: %(link)s To stop texts, open the link and tap Stop text reminders."
    ),
    "help_web": lambda: gettext(
        "%(study)s follow-up study. Questions? Call the study team on %(phone)s. To stop texts, open "
        "the page from our latest text and tap Stop text reminders, or call us."
    ),
}
# The variant of a text for a channel that cannot carry replies: it promises no reply-based opt-out.
NO_REPLY_VARIANTS = {"invite": "invite_web", "reminder": "reminder_web", "help": "help_web"}
# Which placeholders each template needs, so a missing one fails loudly before anything is sent.
NEEDS: dict[str, tuple[str, ...]] = {
    "invite": ("visit", "link"),
    "reminder": ("visit", "link"),
    "help": ("phone",),
    "stop_confirm": (),
    "start_confirm": (),
    "reply_link": ("link", "phone"),
    "reply_help": ("phone",),
    "redflag_alert": ("record",),
    "test": (),
    "invite_web": ("visit", "link"),
    "reminder_web": ("visit", "link"),
    "help_web": ("phone",),
}
LINK_TEMPLATES = frozenset({"invite", "reminder", "reply_link", "invite_web", "reminder_web"})
_VISIT_KEY = re.compile(r"^(week|month|day)_(\d+)$")


def visit_label(visit_key: str) -> str:
    """A visit key from VISIT_PLAN as people say it ("week_4" -> "week-4"), in the active language."""
    match = _VISIT_KEY.match(visit_key)
    if not match:
        return visit_key.replace("_", " ")
    unit, number = match.group(1), match.group(2)
    labels = {
        "week": gettext("week-%(n)s", n=number),
        "month": gettext("month-%(n)s", n=number),
        "day": gettext("day-%(n)s", n=number),
    }
    return labels[unit]


def replies_reach_us(config: Mapping[str, Any], number: str | None) -> bool:
    """Whether a participant's reply to a text sent to `number` reaches the service.

    Not through Twilio to a +86 number (Twilio's China guidelines: no two-way SMS), not through Aliyun or
    Tencent Cloud without SMS_CALLBACK_SECRET (their reply callbacks are refused without it), and not
    through a backend this function does not know. The console backend (development) answers yes.
    """
    backend = str(config.get("SMS_BACKEND") or "").lower()
    if backend == "console":
        return True
    if backend == "twilio":
        return not (number or "").startswith("+86")
    if backend in ("aliyun", "tencent"):
        return bool(config.get("SMS_CALLBACK_SECRET"))
    return False


def template_for(template: str, config: Mapping[str, Any], number: str | None) -> str:
    """The template to render for `number`: the no-reply variant of an invite, reminder or help text
    where replies never reach us (it says how to stop on the web page), else `template` itself."""
    if template in NO_REPLY_VARIANTS and not replies_reach_us(config, number):
        return NO_REPLY_VARIANTS[template]
    return template


def render(template: str, language: str, **params: str) -> str:
    """The text of `template` in `language` ("en"/"zh"), with that language's sender name and the phone."""
    if template not in TEMPLATES:
        raise KeyError(f"unknown SMS template {template!r}")
    config = current_app.config
    study = config["STUDY_SHORT_NAME_ZH"] if language == "zh" else config["STUDY_SHORT_NAME"]
    values = {"study": study, "phone": config["STUDY_PHONE"], **params}
    if "visit_key" in values:
        values["visit"] = values["visit_key"]
    missing = [name for name in NEEDS[template] if name not in values]
    if missing:
        raise KeyError(f"SMS template {template!r} needs {missing}")
    with force_locale(language if language in ("en", "zh") else "en"):
        if "visit_key" in values:
            values["visit"] = visit_label(values.pop("visit_key"))
        return TEMPLATES[template]() % values


# GSM 03.38: the basic set costs one septet, the extension set two (escape + character).
GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM7_EXTENSION = frozenset("^{}\\[~]|€\f")


def encoding(body: str) -> str:
    """ "GSM-7" when every character is in the GSM 03.38 alphabet, else "UCS-2"."""
    return "GSM-7" if all(c in GSM7_BASIC or c in GSM7_EXTENSION for c in body) else "UCS-2"


def count_segments(body: str) -> int:
    """SMS segments billed for `body`: GSM-7 160 / 153 septets per part, UCS-2 70 / 67 code units."""
    if encoding(body) == "GSM-7":
        units = [2 if c in GSM7_EXTENSION else 1 for c in body]
        single, per_part = 160, 153
    else:
        units = [2 if ord(c) > 0xFFFF else 1 for c in body]
        single, per_part = 70, 67
    if sum(units) <= single:
        return 1
    parts, used = 1, 0
    for unit in units:  # an escape or surrogate pair is never split across parts
        if used + unit > per_part:
            parts, used = parts + 1, 0
        used += unit
    return parts


def mask_body(body: str) -> str:
    """A body with personal link tokens hidden, safe for a log line or a stored preview."""
    return re.sub(r"/s/[A-Za-z0-9_\-]+", "/s/[token]", body)
