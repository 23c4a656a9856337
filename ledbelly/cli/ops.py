"""The report commands: ``logs summary``, ``logs reset`` and ``stats``.

Each parses its options and calls ``ledbelly.ops.log_report`` or ``ledbelly.ops.db_report``;
``register`` adds them to the ``ledbelly`` group.
"""

from __future__ import annotations

from pathlib import Path

import click
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError, SQLAlchemyError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from ledbelly.cli.options import db_option, log_dir_option, reports_errors
from ledbelly.errors import DatabaseUnavailable, LedbellyError


def _database_error(exc: SQLAlchemyError) -> LedbellyError:
    """A read that failed: the server unreachable (exit 3), or another error (exit 1)."""
    orig = exc.orig if isinstance(exc, DBAPIError) and exc.orig is not None else exc
    first = (str(orig).strip().splitlines() or [type(orig).__name__])[0]
    if isinstance(exc, OperationalError | InterfaceError | PoolTimeout):
        return DatabaseUnavailable(first)
    return LedbellyError(first)


@click.group("logs")
def logs_group() -> None:
    """Read or empty the log files in log/ (replaces LEDbelly's reduce_logs and reset_logs)."""


@logs_group.command("summary")
@log_dir_option
@click.option(
    "--db",
    "db_url",
    metavar="URL",
    help="Also count the unknown events stored in this database (they are not in the logs).",
)
@reports_errors
def logs_summary(log_dir: Path, db_url: str | None) -> None:
    """What the logs say needs fixing, one line per column, field or error, with the fix.

    Reads each log and its rotated copies (.1 ... .5). Example: ledbelly logs summary
    """
    from ledbelly.ops.log_report import UnknownType, render_summary, summarize_logs

    unknown: list[UnknownType] | None = None
    if db_url:
        from ledbelly.db.engine import open_engine, resolve_url
        from ledbelly.ops.db_report import unknown_event_counts

        engine = open_engine(resolve_url(db_url), pool_size=1)
        try:
            counts = unknown_event_counts(engine)
        except SQLAlchemyError as exc:
            raise _database_error(exc) from exc
        finally:
            engine.dispose()
        unknown = [UnknownType(name, n) for name, n in counts.items()]
    click.echo(render_summary(summarize_logs(log_dir, unknown), str(log_dir)), nl=False)


@logs_group.command("reset")
@log_dir_option
@reports_errors
def logs_reset(log_dir: Path) -> None:
    """Empty the logs, safely while the daemon runs.

    Each file is truncated in place (the daemon keeps writing to it) and the rotated
    copies are removed. Example: ledbelly logs summary && ledbelly logs reset
    """
    from ledbelly.ops.log_report import render_reset, reset_logs

    click.echo(render_reset(reset_logs(log_dir)), nl=False)


@click.command("stats")
@db_option
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.option(
    "--exact",
    is_flag=True,
    help="COUNT(*) every table instead of reading the statistics (reads every row).",
)
@click.option("--all-tables", is_flag=True, help="Also list the empty tables.")
@reports_errors
def stats(db_url: str | None, as_json: bool, exact: bool, all_tables: bool) -> None:
    """What the database holds: rows, newest event and lag per table, the last hour.

    Row counts come from the database's statistics (estimates, marked ~), so this takes
    seconds on millions of rows. Example: ledbelly stats --db postgresql://.../canvas
    """
    from ledbelly.db.engine import open_engine, resolve_url, safe_url
    from ledbelly.ops.db_report import collect_stats, render_stats, stats_json

    url = resolve_url(db_url)
    engine = open_engine(url, pool_size=1)
    try:
        report = collect_stats(engine, exact=exact, database=safe_url(url))
    except SQLAlchemyError as exc:
        raise _database_error(exc) from exc
    finally:
        engine.dispose()
    click.echo(stats_json(report) if as_json else render_stats(report, all_tables), nl=False)


def register(main: click.Group) -> None:
    """Add the report commands to the ``ledbelly`` group."""
    for command in (logs_group, stats):
        main.add_command(command)
