"""`flask --app wsgi sms test PHONE`: one test text through the configured backend, to check the set-up."""

from __future__ import annotations

import uuid

import click
import phonenumbers
from flask import current_app
from flask.cli import AppGroup

from app.extensions import db
from app.models import OutboundMessage, OutboundStatus, utcnow
from app.sms.providers import mask_number

sms_cli = AppGroup("sms", help="SMS engine: send a test text.")


def normalise_phone(raw: str, region: str) -> str:
    """E.164 form of a number typed by an operator; raises click.BadParameter with the reason."""
    try:
        number = phonenumbers.parse(raw, region)
    except phonenumbers.NumberParseException as exc:
        raise click.BadParameter(f"not a phone number: {exc}") from None
    if not phonenumbers.is_valid_number(number):
        raise click.BadParameter(f"not a valid number for region {region} (add +country code)")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


@sms_cli.command("test")
@click.argument("phone")
def test_command(phone: str) -> None:
    """Send a test SMS to PHONE (a coordinator's phone) and print the provider's answer in one line."""
    from app.sms.sender import send_now

    to = normalise_phone(phone, current_app.config["DEFAULT_PHONE_REGION"])
    now = utcnow()
    message = OutboundMessage(
        dedupe_key=f"test:{uuid.uuid4().hex}",
        kind="test",
        to_e164=to,
        language="en",
        template="test",
        status=OutboundStatus.PENDING,
        due_at=now,
        created_by="cli:sms-test",
        created_at=now,
    )
    db.session.add(message)
    db.session.commit()
    result = send_now(message.id, now)
    backend = current_app.config["SMS_BACKEND"]
    if result.status in (OutboundStatus.QUEUED, OutboundStatus.SENT, OutboundStatus.DELIVERED):
        sid = result.provider_sid
        click.echo(f"sent test SMS to {mask_number(to)} via {backend}: {sid} ({result.status})")
        return
    reason = result.error_message or result.status
    raise click.ClickException(f"test SMS to {mask_number(to)} via {backend} not sent: {reason}")
