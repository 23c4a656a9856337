"""``ledbelly prune``: the ledger, dead letters and unknown events, older than N days."""

from __future__ import annotations

import click

from ledbelly.cli.options import db_option, reports_errors
from ledbelly.errors import ConfigError

_DAYS = click.FloatRange(min=0)


@click.command("prune")
@db_option
@click.option(
    "--ledger-older-than",
    "ledger_days",
    type=_DAYS,
    metavar="DAYS",
    help="Delete ledger entries (ledbelly_messages) processed more than DAYS ago; "
    "at least 14 (SQS's longest retention) unless --force.",
)
@click.option(
    "--dead-letters-older-than",
    "dead_letter_days",
    type=_DAYS,
    metavar="DAYS",
    help="Delete dead letters stored more than DAYS ago; they can no longer be replayed.",
)
@click.option(
    "--unknown-older-than",
    "unknown_days",
    type=_DAYS,
    metavar="DAYS",
    help="Delete unknown events stored more than DAYS ago; they can no longer be replayed.",
)
@click.option(
    "--force", is_flag=True, help="Allow --ledger-older-than below 14 days (see the trade-off)."
)
@click.option("--dry-run", is_flag=True, help="Count what would be deleted; delete nothing.")
@reports_errors
def prune_cmd(
    db_url: str | None,
    ledger_days: float | None,
    dead_letter_days: float | None,
    unknown_days: float | None,
    force: bool,
    dry_run: bool,
) -> None:
    """Delete old rows from the tables that only grow, in chunks, beside a running daemon.

    The ledger is what makes a redelivered message a duplicate: a message delivered again
    after its entry is gone is stored twice. SQS keeps a message at most 14 days, so an
    entry older than that can only meet a re-ingested file or a replayed recovery file.
    Entries of messages still parked (dead letters, unknown events) are kept.

    Example: ledbelly prune --ledger-older-than 30 --dead-letters-older-than 90
    """
    from ledbelly.db.engine import open_engine, resolve_url, safe_url
    from ledbelly.db.prune import LOSSES, SQS_MAX_RETENTION_DAYS, prune

    if ledger_days is None and dead_letter_days is None and unknown_days is None:
        raise ConfigError(
            "name at least one of --ledger-older-than, --dead-letters-older-than, "
            "--unknown-older-than"
        )
    if ledger_days is not None and ledger_days < SQS_MAX_RETENTION_DAYS and not force:
        raise ConfigError(
            f"--ledger-older-than {ledger_days:g} is below SQS's longest retention "
            f"({SQS_MAX_RETENTION_DAYS} days): a message the queue still holds could be "
            "delivered again after its ledger entry is gone, and be stored twice. If every "
            "queue keeps messages for less (its MessageRetentionPeriod) and you re-ingest "
            "no older files, add --force"
        )
    url = resolve_url(db_url)
    engine = open_engine(url, pool_size=1)
    try:
        results = prune(engine, ledger_days, dead_letter_days, unknown_days, dry_run=dry_run)
    finally:
        engine.dispose()
    click.echo(f"ledbelly prune: {safe_url(url)}{' (dry run: nothing deleted)' if dry_run else ''}")
    for r in results:
        verb = "would delete" if dry_run else "deleted"
        kept = f"; {r.kept:,} older entries kept for parked messages" if r.kept else ""
        click.echo(
            f"{r.table}: {verb} {r.rows:,} rows older than {r.cutoff:%Y-%m-%d %H:%M} UTC{kept}"
        )
        click.echo(f"  what is lost: {LOSSES[r.table]}")


def register(group: click.Group) -> None:
    group.add_command(prune_cmd)
