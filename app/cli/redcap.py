"""`flask --app wsgi roster sync` and `flask --app wsgi redcap …`: the REDCap bridge's operator commands."""

from __future__ import annotations

import click
from flask.cli import with_appcontext

from app.cli.lazy import CommandGroup
from app.cli.tick import _parse_now

NOW_HELP = "Pretend it is this moment (UTC unless a zone is given)."


def _fail(what: str, exc: Exception) -> click.ClickException:
    """One line naming what failed and why; the database is rolled back and the REDCap error time noted."""
    from app.extensions import db
    from app.models import utcnow
    from app.redcap.client import (
        ForbiddenFieldError,
        RedcapAuthError,
        RedcapClientError,
        RedcapConfigError,
        RedcapRejected,
        RedcapUnavailable,
    )
    from app.redcap.state import note_redcap_error

    db.session.rollback()
    if isinstance(exc, RedcapClientError) and not isinstance(exc, ForbiddenFieldError | RedcapConfigError):
        note_redcap_error(utcnow())
        db.session.commit()
    if isinstance(exc, RedcapUnavailable):
        return click.ClickException(
            f"{what}: REDCap unavailable ({exc}); nothing more was changed, try again later"
        )
    if isinstance(exc, RedcapAuthError):
        return click.ClickException(f"{what}: {exc} (check REDCAP_API_TOKEN and the token's API rights)")
    if isinstance(exc, RedcapRejected):
        return click.ClickException(f"{what}: REDCap refused the request: {exc.message}")
    return click.ClickException(f"{what}: {exc}")


@click.group("roster", cls=CommandGroup, help="Pull participants from REDCap.")
def roster_cli() -> None:
    pass


@roster_cli.command("sync")
@click.option("--now", "now_text", metavar="ISO-8601", help=NOW_HELP)
@with_appcontext
def roster_sync(now_text: str | None) -> None:
    """Create or update participants and their visits from REDCap's enrollment rows (never deletes)."""
    from app.models import utcnow
    from app.redcap.client import RedcapClientError, RedcapConfigError
    from app.redcap.roster import RowSkipped, sync_roster

    now = _parse_now(now_text) or utcnow()
    with click.progressbar(length=0, label="roster", file=None, show_pos=True) as bar:

        def progress(n: int) -> None:
            bar.update(n)

        try:
            report = sync_roster(now, progress=progress, on_total=lambda total: setattr(bar, "length", total))
        except (RedcapClientError, RowSkipped, RedcapConfigError) as exc:
            raise _fail("roster sync failed", exc) from None
    for line in report.skipped:
        click.echo(f"skipped {line}")
    for line in report.warnings:
        click.echo(f"warning {line}")
    if report.missing_from_redcap:
        shown = ", ".join(report.missing_from_redcap[:20])
        more = (
            f" and {len(report.missing_from_redcap) - 20} more"
            if len(report.missing_from_redcap) > 20
            else ""
        )
        click.echo(f"not in REDCap (kept, flagged for coordinators): {shown}{more}")
    click.echo(report.summary())


@click.group("redcap", cls=CommandGroup, help="Exchange data with the trial's REDCap project.")
def redcap_cli() -> None:
    pass


@redcap_cli.command("refresh-metadata")
@click.option("--now", "now_text", metavar="ISO-8601", help=NOW_HELP)
@with_appcontext
def refresh_metadata_command(now_text: str | None) -> None:
    """Fetch the questionnaire's definition from REDCap and check events; a bad one keeps the last good."""
    from app.extensions import db
    from app.models import utcnow
    from app.questionnaire.definition import MetadataError
    from app.redcap.client import RedcapClientError
    from app.redcap.metadata import RefreshError, refresh_metadata

    now = _parse_now(now_text) or utcnow()
    try:
        result = refresh_metadata(now)
    except MetadataError as exc:
        db.session.rollback()
        raise click.ClickException(
            f"metadata refresh refused, the last good version stays in use: {exc}"
        ) from None
    except (RefreshError, RedcapClientError) as exc:
        raise _fail("metadata refresh failed, the last good version stays in use", exc) from None
    click.echo(result.summary())


@redcap_cli.command("push")
@click.option("--now", "now_text", metavar="ISO-8601", help=NOW_HELP)
@click.option(
    "--retry-now", is_flag=True, help="Also push rows waiting for their backoff time (not failed ones)."
)
@with_appcontext
def push_command(now_text: str | None, retry_now: bool) -> None:
    """Push queued answers and visit statuses to REDCap in batches; non-zero exit if REDCap is down."""
    from app.models import utcnow
    from app.redcap.client import RedcapClientError
    from app.redcap.push.run import push_pending

    now = _parse_now(now_text) or utcnow()
    try:
        report = push_pending(now, retry_now=retry_now)
    except RedcapClientError as exc:
        raise _fail("redcap push failed", exc) from None
    click.echo(report.summary())
    if report.unavailable:
        raise click.ClickException(f"REDCap unavailable: {report.unavailable}; unsent rows stay queued")
    if report.problem:
        raise click.ClickException(f"{report.problem}; the submissions stay queued")
