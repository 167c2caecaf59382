"""`flask --app wsgi sms test PHONE`: one test text, to check the set-up; `sms resume`: lift a stop."""

from __future__ import annotations

import uuid

import click
from flask import current_app

from app.cli.lazy import CommandGroup

sms_cli = CommandGroup("sms", help="SMS engine: send a test text.")


def normalise_phone(raw: str, region: str) -> str:
    """E.164 form of a number typed by an operator; raises click.BadParameter with the reason."""
    import phonenumbers

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
    from app.extensions import db
    from app.models import OutboundMessage, utcnow
    from app.sms.providers import mask_number
    from app.sms.sender import send_now

    to = normalise_phone(phone, current_app.config["DEFAULT_PHONE_REGION"])
    now = utcnow()
    message = OutboundMessage(
        dedupe_key=f"test:{uuid.uuid4().hex}",
        kind="test",
        to_e164=to,
        language="en",
        template="test",
        status="pending",
        due_at=now,
        created_by="cli:sms-test",
        created_at=now,
    )
    db.session.add(message)
    db.session.commit()
    result = send_now(message.id, now)
    backend = current_app.config["SMS_BACKEND"]
    if result.status in ("queued", "sent", "delivered"):
        sid = result.provider_sid
        click.echo(f"sent test SMS to {mask_number(to)} via {backend}: {sid} ({result.status})")
        return
    reason = result.error_message or result.status
    raise click.ClickException(f"test SMS to {mask_number(to)} via {backend} not sent: {reason}")


@sms_cli.command("resume")
@click.option("--reason", default=None, help="What was fixed (kept in the audit log).")
def resume_command(reason: str | None) -> None:
    """Resume sending after a provider error stopped it (bad template, signature, banned word …).

    Fix the cause first (the provider's console or SMS_TEMPLATES): otherwise the next text stops it again.
    """
    from app.models import utcnow
    from app.sms.carriers import resume

    was = resume(utcnow(), "cli:sms-resume", reason)
    backend = current_app.config["SMS_BACKEND"]
    if was is None:
        click.echo(f"SMS sending via {backend} was not stopped: nothing to resume.")
        return
    stop = f"{was.get('backend')} error {was.get('code')} at {was.get('at')}: {was.get('reason')}"
    if not was["in_force"]:
        click.echo(f"Cleared an old stop ({stop}); it no longer applied, as the settings have changed since.")
        return
    click.echo(
        f"SMS sending via {backend} resumed (it was stopped by {stop}). Due texts go out on the next send "
        "pass; if the cause is not fixed, the next text stops sending again. Recorded in the audit log."
    )
