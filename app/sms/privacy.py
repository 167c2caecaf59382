"""Words no text may carry: SMS_DENY_WORDS, checked against the settings and every rendered template.

A text is read on a lock screen by whoever holds the phone, so it must not reveal a condition, a
treatment or an arm. Latin-script words match as whole words, case-insensitively, with an optional
plural -s/-es ("stem" finds "stems" and "Stem-cell" but not "system"); spaces and hyphens inside an
entry are interchangeable ("trial arm" finds "trial-arm"). Other entries (Chinese) match anywhere,
as Chinese has no spaces between words.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from functools import lru_cache
from typing import Any

from app.schedule.plan import parse_visit_plan

_LETTER = r"[^\W\d_]"  # any letter, in any script
_SEPARATORS = re.compile(r"[\s\-]+")
# What a personal token looks like (22 characters of base64url): only its shape matters here.
SAMPLE_TOKEN = "Ab3_-Zx9Ab3_-Zx9Qw7_-P"  # noqa: S105  (a shape, not a secret)
SAMPLE_RECORD = "1001"
# Settings whose values are put into texts, each checked on its own so an error names it.
TEXT_SETTINGS = ("STUDY_SHORT_NAME", "STUDY_SHORT_NAME_ZH", "STUDY_PHONE", "PUBLIC_BASE_URL")


def _word_pattern(word: str) -> str:
    if not word.isascii():
        return re.escape(word)
    parts = [re.escape(part) for part in _SEPARATORS.split(word) if part]
    return rf"(?<!{_LETTER})" + r"[\s\-]+".join(parts) + rf"(?:es|s)?(?!{_LETTER})"


@lru_cache(maxsize=32)
def _compiled(words: tuple[str, ...]) -> list[tuple[str, re.Pattern[str]]]:
    return [(word, re.compile(_word_pattern(word), re.IGNORECASE)) for word in words if word.strip()]


def denied_words(text: str, words: Iterable[str]) -> list[str]:
    """The entries of `words` that occur in `text`, in list order (empty when the text is clean)."""
    return [word for word, pattern in _compiled(tuple(words)) if pattern.search(text)]


def check_text_settings(config: Any) -> str | None:
    """The first setting whose value carries a denied word, as a one-line error; None when all are clean."""
    words = config.SMS_DENY_WORDS
    for name in TEXT_SETTINGS:
        found = denied_words(str(getattr(config, name, None) or ""), words)
        if found:
            return (
                f"{name}: contains {found[0]!r}, a word in SMS_DENY_WORDS "
                "(texts must not reveal a condition, a treatment or an arm)"
            )
    return None


def sample_params(config: Mapping[str, Any], visit_key: str) -> dict[str, str]:
    """Values like the real ones, for rendering every template once: a visit, a personal link, a record."""
    link = f"{config['PUBLIC_BASE_URL']}/s/{SAMPLE_TOKEN}"
    return {"visit_key": visit_key, "link": link, "record": SAMPLE_RECORD}


def check_rendered_texts(config: Mapping[str, Any]) -> str | None:
    """Every template and visit label rendered in every language; the first denied word as a one-line error.

    Needs an app context (the catalogues). None when every text is clean.
    """
    # Imported here: config.py calls `check_text_settings` while reading the settings, before any
    # command runs, and that needs no catalogues (Flask-Babel and Babel: a tenth of `flask --help`).
    from flask_babel import force_locale

    from app.sms.texts import TEMPLATES, render, visit_label

    words = config["SMS_DENY_WORDS"]
    visit_keys = parse_visit_plan(config["VISIT_PLAN"]).keys()
    for language in config["LANGUAGES"]:
        with force_locale(language):
            for key in visit_keys:
                found = denied_words(visit_label(key), words)
                if found:
                    return (
                        f"VISIT_PLAN: visit {key!r} is named {found[0]!r} in texts, a word in SMS_DENY_WORDS"
                    )
        for template in sorted(TEMPLATES):
            found = denied_words(render(template, language, **sample_params(config, visit_keys[0])), words)
            if found:
                where = "app/sms/texts.py" if language == "en" else f"translations/{language}/"
                return (
                    f"SMS_DENY_WORDS: the {language} {template!r} text contains {found[0]!r} "
                    f"(reword it in {where})"
                )
    return None
