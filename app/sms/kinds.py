"""The message kinds, their fixed template parameters, and SMS_TEMPLATES (kind and language -> template id).

Kept free of models and Flask so config.py can check SMS_TEMPLATES at start-up.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

log = logging.getLogger(__name__)

PARAM_ORDER: dict[str, tuple[str, ...]] = {
    "invite": ("visit", "deadline", "code"),
    "reminder": ("visit", "deadline", "code"),
    "reply_link": ("code", "phone"),
    "redflag_alert": ("records",),
    "help": ("phone",),
    "stop_confirm": ("phone",),
    "start_confirm": ("phone",),
    "reply_help": ("phone",),
    "test": (),
}
TEMPLATE_BACKENDS = frozenset({"aliyun", "tencent"})
REQUIRED_TEMPLATES = ("invite", "reminder", "redflag_alert")
_logged_missing: set[tuple[str, str]] = set()


def template_id(config: Mapping[str, Any], kind: str, language: str) -> str | None:
    """The provider's template for a kind: the language's own, else the zh one, else None."""
    by_language = (config.get("SMS_TEMPLATES") or {}).get(kind) or {}
    return by_language.get(language) or by_language.get("zh")


def unsendable_reason(config: Mapping[str, Any], kind: str, language: str) -> str | None:
    """Why a kind cannot be sent on this backend (a template backend without a template for it), else None."""
    if config.get("SMS_BACKEND") not in TEMPLATE_BACKENDS or template_id(config, kind, language):
        return None
    if (config["SMS_BACKEND"], kind) not in _logged_missing:
        _logged_missing.add((config["SMS_BACKEND"], kind))
        log.warning("SMS_TEMPLATES has no %s template: such texts are not sent", kind)
    return f"not sent: SMS_TEMPLATES has no {kind!r} template"


def check_templates(backend: str, templates: Any) -> str | None:
    """The first problem with SMS_TEMPLATES for `backend`, as a one-line error; None when fine."""
    if not isinstance(templates, dict) or not all(
        isinstance(v, dict) and all(isinstance(t, str) and t.strip() for t in v.values())
        for v in templates.values()
    ):
        return 'SMS_TEMPLATES: expected {"kind": {"zh": "template id", "en": …}, …}'
    unknown = sorted(set(templates) - set(PARAM_ORDER))
    if unknown:
        return f"SMS_TEMPLATES: unknown kind {unknown[0]!r} (kinds: {', '.join(PARAM_ORDER)})"
    if backend in TEMPLATE_BACKENDS:
        for kind in REQUIRED_TEMPLATES:
            if not (templates.get(kind) or {}).get("zh"):
                return f"SMS_TEMPLATES: a zh template id for {kind!r} is required with SMS_BACKEND={backend}"
    return None


# The longest value the service puts in each parameter, for Tencent's per-variable limit. `code` depends on
# SMS_LINK_MODE: the 22-character link token (app.participants.links) or the 8-character entry code
# (app.participants.entry_codes); `records` is cut to 30 (app.sms.message.RECORDS_MAX_CHARS); `deadline`
# is at most "12月25日" / "25 Dec"; `phone` is STUDY_PHONE. Tests hold these to the real values.
CODE_CHARS = {"path": 22, "entry": 8}
LONGEST_PARAM = {"records": 30, "deadline": 6}


def param_length_problem(config: Mapping[str, Any]) -> str | None:
    """Why SMS_BACKEND=tencent cannot send what SMS_TEMPLATES asks for, as one line; None when it fits.

    Tencent takes at most 6 characters per template variable unless it raises the limit for the account
    (TENCENT_SMS_PARAM_MAX_CHARS says what it is): every text with a longer value would be refused.
    Unset, nothing is checked here (accounts differ, and the provider's own refusal,
    TemplateParameterLengthLimit, stops sending with one clear line anyway).
    """
    if config.get("SMS_BACKEND") != "tencent" or not config.get("TENCENT_SMS_PARAM_MAX_CHARS"):
        return None
    limit = int(config["TENCENT_SMS_PARAM_MAX_CHARS"])
    mode = str(config.get("SMS_LINK_MODE") or "path")
    longest = {
        **LONGEST_PARAM,
        "code": CODE_CHARS.get(mode, CODE_CHARS["path"]),
        "phone": len(str(config.get("STUDY_PHONE") or "")),
    }
    templates = config.get("SMS_TEMPLATES") or {}
    over: dict[str, list[str]] = {}
    for kind in PARAM_ORDER:
        for name in PARAM_ORDER[kind] if templates.get(kind) else ():
            if longest.get(name, 0) > limit:
                over.setdefault(name, []).append(kind)
    if not over:
        return None
    needed = max(longest[name] for name in over)
    listed = "; ".join(
        f"{name} up to {longest[name]}"
        + (f" in SMS_LINK_MODE={mode}" if name == "code" else "")
        + f" ({', '.join(kinds)})"
        for name, kinds in sorted(over.items(), key=lambda item: -longest[item[0]])
    )
    return (
        f"TENCENT_SMS_PARAM_MAX_CHARS={limit}: Tencent refuses a template variable longer than that (6 "
        f"characters unless Tencent raised the account's limit), and these parameters are longer: {listed}. "
        f"Ask Tencent to allow at least {needed} characters per variable, then set "
        f"TENCENT_SMS_PARAM_MAX_CHARS={needed}"
    )
