"""Messages are kinds with parameters: what an outbox row says, before any provider turns it into a text.

`compose` builds a `Message` from an outbox row: its kind (the row's `template`), its language, the
fixed parameters a provider's registered template receives, and the catalogue text free-text
providers (Twilio, console) send as it is. The parameters are documented for the study team, who
register templates that use them (study/sms_templates.md):

- invite, reminder: visit (第4周 / week 4), deadline (12月5日 / 5 Dec), code (the personal link code)
- reply_link: code, phone
- redflag_alert: records (record ids, cut to fit with "+N")
- help, stop_confirm, start_confirm, reply_help: phone
- test: none

Tencent templates take them in this order ({1}, {2} …): app.sms.kinds.PARAM_ORDER.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from flask import current_app
from flask_babel import force_locale

from app.models import OutboundMessage
from app.participants.entry_codes import issue_code as issue_entry_code
from app.participants.links import issue_link, link_url
from app.sms.kinds import PARAM_ORDER
from app.sms.texts import LINK_TEMPLATES, render, template_for, visit_label

# Parameters that are personal secrets: never stored on the row (the link itself is kept only as a hash).
SECRET_PARAMS = frozenset({"code"})
REDACTED = "[redacted]"
# A template variable's longest value the providers take (Aliyun: 35 characters for a notification variable).
RECORDS_MAX_CHARS = 30
MONTHS_EN = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


@dataclass(frozen=True)
class Message:
    """One text as a kind with parameters, and the catalogue body free-text providers send."""

    kind: str
    language: str
    params: dict[str, str] = field(default_factory=dict)
    body: str = ""

    def ordered_params(self) -> list[str]:
        """The parameters in PARAM_ORDER, for templates that number their variables ({1}, {2} …)."""
        return [self.params[name] for name in PARAM_ORDER.get(self.kind, ()) if name in self.params]

    def stored_params(self) -> dict[str, str]:
        """The parameters as kept on the outbox row: personal codes redacted."""
        return {k: (REDACTED if k in SECRET_PARAMS else v) for k, v in self.params.items()}


def deadline_label(closes_at: datetime, zone: str, language: str) -> str:
    """The last local day a visit can be answered ("12月5日" / "5 Dec"); closes_at is exclusive."""
    day = (closes_at - timedelta(microseconds=1)).astimezone(ZoneInfo(zone)).date()
    if language == "zh":
        return f"{day.month}月{day.day}日"
    return f"{day.day} {MONTHS_EN[day.month - 1]}"


def records_label(records: list[str], limit: int = RECORDS_MAX_CHARS) -> str:
    """Record ids joined by commas, as many as fit in `limit` characters, the rest counted as "+N"."""
    shown: list[str] = []
    for index, record in enumerate(records):
        rest = len(records) - index - 1
        candidate = ",".join([*shown, record]) + (f" +{rest}" if rest else "")
        if len(candidate) > limit and shown:
            return ",".join(shown) + f" +{len(records) - len(shown)}"
        shown.append(record)
    return ",".join(shown)


def issue_code(msg: OutboundMessage, now: datetime) -> tuple[str, str]:
    """A fresh personal `code` for the row's visit (SMS_LINK_MODE: `path`, the link's token, which the
    template puts after its fixed `/s/`; `entry`, an 8-character code typed at the fixed `/c`) and the
    link the catalogue body carries, so free-text providers always send a link that opens."""
    token = issue_link(msg.visit, now)
    if current_app.config.get("SMS_LINK_MODE", "path") == "entry":
        return issue_entry_code(msg.visit, now), link_url(token)
    return token, link_url(token)


def compose(msg: OutboundMessage, now: datetime) -> Message:
    """The row as a Message; link kinds get a fresh personal link (its hash is stored, never the token)."""
    config = current_app.config
    kind, language = msg.template, msg.language
    params: dict[str, str] = {}
    render_params: dict[str, str] = {}
    if kind in LINK_TEMPLATES:
        code, link = issue_code(msg, now)
        params["code"] = code
        render_params["link"] = link
        if kind in ("invite", "reminder"):
            render_params["visit_key"] = msg.visit.visit_key
            with force_locale(language if language in ("en", "zh") else "en"):
                params["visit"] = visit_label(msg.visit.visit_key)
            zone = msg.participant.timezone if msg.participant else config["STUDY_TIMEZONE"]
            params["deadline"] = deadline_label(msg.visit.closes_at, str(zone), language)
    if kind == "redflag_alert":
        stored = (msg.params or {}).get("records")
        records = stored or (msg.participant.record_id if msg.participant else "?")
        params["records"] = records
        render_params["record"] = records
    if "phone" in PARAM_ORDER.get(kind, ()):
        params["phone"] = config["STUDY_PHONE"]
    # Where replies never reach us (Twilio to +86 numbers), the text says how to stop on the web page.
    body = render(template_for(kind, config, msg.to_e164), language, **render_params)
    return Message(kind=kind, language=language, params=params, body=body)
