"""`flask --app wsgi demo …`: demo data for `make run` (never used in production).

`demo user` creates the two demo logins; `demo links` prints a fresh personal link for every open
demo visit, so a newcomer has a working questionnaire whatever the hour, while the SMS reminders
keep to the participants' send window like everyone else's.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import click
from flask import current_app
from flask.cli import with_appcontext

from app.cli.lazy import CommandGroup
from app.cli.tick import _parse_now

DEMO_PASSWORD = "demo-password-123"  # noqa: S105 - printed for the newcomer on purpose
DEMO_LOGINS = (("coordinator@example.org", "coordinator"), ("admin@example.org", "admin"))
DEMO_EMAIL = DEMO_LOGINS[0][0]  # the login a newcomer uses first


@dataclass(frozen=True)
class DemoLink:
    """One open demo visit and the personal link just minted for it."""

    record_id: str
    visit_key: str
    language: str
    url: str
    texted_now: bool  # whether the SMS can go out at this moment (inside the send window, allowed)
    sms_note: str | None  # why no SMS will ever go out, if it will not


def _development_only() -> None:
    # The links carry personal tokens: printed on purpose, and only on a developer's own machine.
    if current_app.config["FOLLOWUP_ENV"] not in ("development", "testing"):
        raise click.ClickException(f"demo data is refused in {current_app.config['FOLLOWUP_ENV']}")


def ensure_demo_logins(now: datetime) -> list[tuple[str, str]]:
    """Create the demo coordinator and admin (each with its true role); returns (e-mail, role) pairs.

    A database from an older `make run`, where the coordinator login was an admin, gets its
    coordinator back to the coordinator role once the admin login exists.
    """
    from sqlalchemy import select

    from app.console.accounts import create_user
    from app.console.useradmin import change_role
    from app.extensions import db
    from app.models import User

    for email, role in reversed(DEMO_LOGINS):  # the admin first, so the coordinator can be demoted
        user = db.session.scalar(select(User).where(User.email == email))
        if user is None:
            create_user(email, DEMO_PASSWORD, role, actor="system:demo")
        elif user.role != role:
            change_role(user, role, now, actor="system:demo")
        db.session.flush()
    db.session.commit()
    return [(email, role) for email, role in DEMO_LOGINS]


def demo_links(now: datetime) -> list[DemoLink]:
    """Mint a fresh personal link for every visit open at `now` (active participants); commits.

    Tokens are stored only as hashes, so the links the SMS carried cannot be shown again: these are
    new ones, issued the normal way and valid for the visit's window.
    """
    from sqlalchemy import select

    from app.extensions import db
    from app.models import Participant, Visit
    from app.models.visit import FINAL_STATUSES
    from app.participants.links import issue_link, link_url
    from app.sms.planner import in_send_window

    visits = db.session.scalars(
        select(Visit)
        .join(Participant, Visit.participant_id == Participant.id)
        .where(
            Participant.status == "active",
            Visit.status.not_in(FINAL_STATUSES),
            Visit.opens_at <= now,
            Visit.closes_at > now,
        )
        .order_by(Participant.record_id, Visit.opens_at)
    ).all()
    links = []
    for visit in visits:
        participant = visit.participant
        blocked = participant.sms_block_reason()
        links.append(
            DemoLink(
                record_id=participant.record_id,
                visit_key=visit.visit_key,
                language=participant.language,
                url=link_url(issue_link(visit, now)),
                texted_now=blocked is None and in_send_window(participant, now),
                sms_note=blocked,
            )
        )
    db.session.commit()
    return links


def describe_links(links: list[DemoLink]) -> list[str]:
    """The lines `make run` prints: one per open visit, saying whether and when its SMS goes out."""
    if not links:
        return ["  No demo visit is open now (run `flask --app wsgi roster sync` first?)."]
    window = current_app.config["SMS_SEND_WINDOW"]
    lines = ["  Open demo visits - a personal link for each (a new one every start, all valid):"]
    for link in links:
        if link.sms_note:
            sms = f"never texted: {link.sms_note}"
        elif link.texted_now:
            sms = "its SMS goes out now"
        else:
            sms = f"its SMS waits for the send window, {window} on the participant's clock"
        lines.append(f"    record {link.record_id} {link.visit_key} ({link.language}): {link.url}  [{sms}]")
    return lines


@click.group("demo", cls=CommandGroup, help="Demo data for a local run.")
def demo_cli() -> None:
    pass


@demo_cli.command("user")
@with_appcontext
def demo_user() -> None:
    """Create the demo coordinator and admin logins (development only)."""
    from app.models import utcnow

    _development_only()
    for email, role in ensure_demo_logins(utcnow()):
        click.echo(f"demo login ({role}): {email} / {DEMO_PASSWORD}")


@demo_cli.command("links")
@click.option(
    "--now", "now_text", metavar="ISO-8601", help="Pretend it is this moment (UTC unless a zone is given)."
)
@with_appcontext
def demo_links_command(now_text: str | None) -> None:
    """Print a fresh personal link for every open demo visit (development only)."""
    from app.models import utcnow

    _development_only()
    for line in describe_links(demo_links(_parse_now(now_text) or utcnow())):
        click.echo(line)
