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
