"""``ledbelly replay``: parked messages back into their tables once their cause is fixed."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from pathlib import Path

import click

from ledbelly.cli.options import (
    create_option,
    db_option,
    log_dir_option,
    reports_errors,
    schemas_option,
)
from ledbelly.errors import ConfigError
from ledbelly.message import Message


@click.command("replay")
@db_option
@log_dir_option
@schemas_option
@create_option
@click.option("--dead-letters", is_flag=True, help="Replay ledbelly_dead_letters.")
@click.option("--unknown-events", is_flag=True, help="Replay ledbelly_unknown_events.")
@click.option("--event", metavar="NAME", help="Only this event name.")
@click.option("--table", metavar="T", help="Only messages bound for this table.")
@click.option(
    "--since", type=click.DateTime(), help="Only messages parked at or after this UTC time."
)
@click.option("--limit", type=click.IntRange(min=1), help="At most this many messages.")
@click.option(
    "--dry-run",
    is_flag=True,
    help="Say what would move; write nothing. It "
    "judges parsing and routing: a row the database would refuse shows as moving.",
)
@click.argument("paths", nargs=-1)
@reports_errors
def replay_cmd(
    db_url: str | None,
    log_dir: Path,
    schema_dir: Path | None,
    create_missing: bool | None,
    dead_letters: bool,
    unknown_events: bool,
    event: str | None,
    table: str | None,
    since: datetime | None,
    limit: int | None,
    dry_run: bool,
    paths: tuple[str, ...],
) -> None:
    """Process dead letters or unknown events again, after a schema or table fix.

    What now lands is inserted once and leaves its parked table; what still fails stays,
    with its new error and one more attempt. Replaying twice changes nothing.

    Example: ledbelly replay --dead-letters --event submission_created
    """
    from ledbelly.db.engine import pool_size_for, resolve_url
    from ledbelly.db.replay import ReplayFilter, parked, replay
    from ledbelly.outcome import Kind
    from ledbelly.pipeline import Pipeline, PipelineSettings
    from ledbelly.sources.files import read_path

    if sum([dead_letters, unknown_events, bool(paths)]) != 1:
        raise ConfigError(
            "name one of --dead-letters, --unknown-events or recovery files "
            "(log/sql-recovery.jsonl)"
        )
    settings = PipelineSettings(
        url=resolve_url(db_url),
        log_dir=log_dir,
        schema_dir=schema_dir,
        pool_size=pool_size_for(db_url) or 2,
        create_missing=create_missing,
    )
    pipeline = Pipeline(settings)
    try:
        pipeline.prepare()
        wanted = ReplayFilter(event, table, since, limit)
        messages: Iterable[Message]
        if paths:
            messages = (
                m
                for p in paths
                for m in read_path(p)
                if not event or m.attributes.get("event_name") == event
            )
        else:
            kind = Kind.DEAD_LETTER if dead_letters else Kind.UNKNOWN
            messages = parked(pipeline.engine, pipeline, kind, wanted)
        report = replay(pipeline, messages, dry_run=dry_run)
    finally:
        pipeline.close()
    for line in report.render(dry_run):
        click.echo(line)


def register(group: click.Group) -> None:
    group.add_command(replay_cmd)
