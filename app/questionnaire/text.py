"""Text helpers shared by the form builder and the "only if" descriptions: REDCap rich text as plain."""

from __future__ import annotations

import re
from html import unescape

_TAG = re.compile(r"<[^>]*>")


def plain(text: str | None) -> str:
    """REDCap labels may hold rich-text HTML; the page shows them as plain text (escaped on output)."""
    return re.sub(r"\s+", " ", unescape(_TAG.sub(" ", text or ""))).strip()
