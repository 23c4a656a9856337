"""The ``ledbelly`` command: parses options, loads configuration, calls the library.

Library errors become one clear line with a hint and a named exit code.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import click

from ledbelly import kernels
from ledbelly.cli.ops import register as register_ops_commands
from ledbelly.cli.options import (
    create_option,
    db_option,
    log_dir_option,
    reports_errors,
    schemas_option,
)
from ledbelly.cli.prune import register as register_prune_command
from ledbelly.cli.replay import register as register_replay_command
from ledbelly.cli.schema import register as register_schema_commands
from ledbelly.config import EVOLUTION_MODES
from ledbelly.db.engine import pool_size_for, resolve_url, safe_url
from ledbelly.errors import ConfigError
from ledbelly.extensions.config import configured_extensions


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="ledbelly", message=f"%(prog)s %(version)s ({kernels.status()})")
def main() -> None:
    """ledbelly: Canvas Live Events from SQS into your SQL database."""


@main.command()
@db_option
@log_dir_option
@create_option
@schemas_option
@click.option("--batch-size", default=2000, show_default=True, help="Messages per transaction.")
@click.option("--no-live-stream", is_flag=True, help="Do not fill the live_stream table.")
@click.option(
    "--schema-evolution",
    type=click.Choice(EVOLUTION_MODES),
    default="off",
    show_default=True,
    help="Add columns for new fields (and tables for new events) instead of "
    "logging them; changes go to schemas.local/ for review.",
)
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    default=None,
    help="Processes to ingest with [default: one per CPU when the JSON lines "
    "inputs are over 1 MB; always 1 on SQLite, from stdin or with schema "
    "evolution].",
)
@click.argument("paths", nargs=-1, required=True)
@reports_errors
def ingest(
    db_url: str | None,
    log_dir: Path,
    create_missing: bool | None,
    schema_dir: Path | None,
    batch_size: int,
    no_live_stream: bool,
    schema_evolution: str,
    workers: int | None,
    paths: tuple[str, ...],
) -> None:
    """Load events from files (.json, .jsonl, .ndjson) or - (stdin) into the database.

    Large JSON lines files are split among several processes; the ledger keeps every
    message to one row set however the work is divided.

    Example: ledbelly simulate -n 1000 | ledbelly ingest -
    """
    from ledbelly.ingest.parallel import choose_workers, ingest_paths
    from ledbelly.pipeline import PipelineSettings

    for p in paths:
        if p != "-" and not Path(p).is_file():
            raise ConfigError(f"no such file: {p}")
    url = resolve_url(db_url)
    settings = PipelineSettings(
        url=url,
        log_dir=log_dir,
        schema_dir=schema_dir,
        pool_size=pool_size_for(db_url) or 5,
        create_missing=create_missing,
        batch_size=batch_size,
        live_stream=not no_live_stream,
        schema_evolution=schema_evolution,
        extensions=configured_extensions(None),  # LEDbelly's cfg/ledbelly.yml, if there
        durable=False,  # a power cut costs a rerun, not a message
    )
    choice = choose_workers(settings, paths, workers)
    if choice.note:
        click.echo(f"note: {choice.note}", err=True)

    def missing_note(missing: list[str]) -> None:
        click.echo(
            f"note: {len(missing)} event tables are missing in {safe_url(url)}; "
            "their events are stored in ledbelly_unknown_events "
            "(create them with --create-missing)",
            err=True,
        )

    with _progress_line() as progress:
        stats = ingest_paths(settings, paths, choice.count, progress, missing_note)
    click.echo(
        f"messages {stats.messages}: rows canvas {stats.rows['canvas']}, "
        f"caliper {stats.rows['caliper']}; unknown {stats.unknown}; "
        f"dead letters {stats.dead_letters}; duplicates skipped {stats.duplicates}; "
        f"truncations {stats.truncations}; undefined fields {stats.undefined}"
    )
    sys.stdout.flush()  # the summary ends its line before any note on stderr
    if stats.dead_letters:
        click.echo(
            f"dead letters are in ledbelly_dead_letters and {log_dir}/sql-errors.log; "
            "after fixing the cause, replay with: ledbelly replay --dead-letters",
            err=True,
        )


@contextmanager
def _progress_line() -> Iterator[Callable[[int], None] | None]:
    """On a terminal, a live count of messages committed; otherwise nothing."""
    if not sys.stderr.isatty():
        yield None
        return
    import time

    started = time.monotonic()
    done = 0

    def progress(n: int) -> None:
        nonlocal done
        done += n
        rate = done / max(1e-6, time.monotonic() - started)
        click.echo(f"\ringested {done} messages ({rate:,.0f}/s)\x1b[K", err=True, nl=False)

    try:
        yield progress
    finally:
        click.echo("", err=True)


@main.command()
@click.option("-n", "count", default=1000, show_default=True, help="How many messages.")
@click.option("--seed", default=0, show_default=True, help="Random seed (same seed, same output).")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["canvas", "caliper", "mixed"]),
    default="mixed",
    show_default=True,
)
def simulate(count: int, seed: int, fmt: str) -> None:
    """Print N synthetic Live Events as SQS-message JSON lines.

    Example: ledbelly simulate -n 5000 --format mixed > events.jsonl
    """
    import orjson

    from ledbelly.simulate import generate_messages

    out = sys.stdout.buffer
    for msg in generate_messages(count, seed=seed, fmt=fmt):
        out.write(orjson.dumps(msg) + b"\n")
    out.flush()


@main.command()
@click.option(
    "-c",
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=Path("cfg/sqs.yml"),
    show_default=True,
    help="SQS settings (YAML).",
)
@click.option(
    "--database",
    "database_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="LEDbelly-style database.yml (adapter, host, data, user, pass) or a url.",
)
@db_option
@create_option
@click.option(
    "--log-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Where truncation, undefined-field, error and recovery logs go [default: log].",
)
@click.option(
    "--metrics-port",
    type=click.IntRange(0, 65535),
    default=None,
    help="Serve /metrics and /healthz on this port, overriding metrics_port: one each "
    "for processes that share a configuration (https.reuse_port).",
)
@schemas_option
@reports_errors
def run(
    config_path: Path,
    database_file: Path | None,
    db_url: str | None,
    create_missing: bool | None,
    log_dir: Path | None,
    metrics_port: int | None,
    schema_dir: Path | None,
) -> None:
    """Consume SQS queues, Canvas's HTTPS posts, or both, until SIGTERM or SIGINT.

    The run configuration's queues: run SQS pollers, its https: section the intake
    (cfg/https.yml.example); with both, one process serves both on one pipeline.

    Example: ledbelly run -c cfg/sqs.yml --db postgresql://ledbelly@db/canvas
    """
    from ledbelly.config import load_daemon_settings
    from ledbelly.daemon.app import build_daemon, run_daemon
    from ledbelly.ops.logsetup import configure_logging

    settings = load_daemon_settings(config_path, metrics_port)
    configure_logging(settings.log_format, settings.log_level, settings.log_file)
    database = database_file or settings.database
    url = resolve_url(db_url, database)
    daemon = build_daemon(
        settings,
        url,
        log_dir or settings.log_dir or Path("log"),
        create_missing,
        schema_dir,
        pool_size=pool_size_for(db_url, database),
    )
    sys.exit(run_daemon(daemon, settings))


@main.command()
@click.option("-n", "count", default=2000, show_default=True, help="Simulated events to send.")
@click.option(
    "--db",
    "db_url",
    default="sqlite:///ledbelly.db",
    show_default=True,
    metavar="URL",
    help="Where the demo writes.",
)
@click.option("--seed", default=0, show_default=True)
@click.option(
    "--https",
    "use_https",
    is_flag=True,
    help="Canvas's HTTPS delivery instead of SQS: a local signing key and JWKS, "
    "simulated events signed RS256 and POSTed to the daemon's HTTPS intake.",
)
@reports_errors
def demo(count: int, db_url: str, seed: int, use_https: bool) -> None:
    """Run the real daemon against a local SQS (moto) fed by simulate, into SQLite.

    With --https, the daemon's HTTPS intake takes signed POSTs instead.

    Example: ledbelly demo -n 5000; ledbelly demo --https -n 2000
    """
    from ledbelly.demo import run_demo, run_https_demo

    (run_https_demo if use_https else run_demo)(count, db_url, seed, echo=click.echo)


register_schema_commands(main)
register_ops_commands(main)  # logs, stats
register_replay_command(main)
register_prune_command(main)

if __name__ == "__main__":  # pragma: no cover
    main()
