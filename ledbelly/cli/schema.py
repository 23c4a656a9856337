"""The schema commands: ``create-tables``, ``alter-tables``, ``schema suggest|apply``.

Each parses its options and calls one function of ``ledbelly.db.ddl`` or ``ledbelly.db.evolve``;
``register`` adds them to the ``ledbelly`` group.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from ledbelly.cli.options import db_option, reports_errors, schemas_option
from ledbelly.db.ddl import DIALECTS, DdlOptions, DdlScript, apply, generate, write_script
from ledbelly.errors import ConfigError

DEFAULT_DDL_DIR = Path("sql/ddl")
DEFAULT_OVERLAY = Path("schemas.local")


_db_schema = click.option(
    "--schema",
    "db_schema",
    metavar="NAME",
    help="Qualify table names with this database schema "
    "(default: unqualified, the connection's own).",
)


def _engine(db_url: str | None) -> Any:
    from ledbelly.db.engine import open_engine, resolve_url

    return open_engine(resolve_url(db_url), pool_size=1)


def _catalog(schema_dir: Path | None, overlay: Path | None = None) -> Any:
    from ledbelly.schema.model import Catalog

    return Catalog.load(schema_dir, overlay)


@click.command("create-tables")
@click.option(
    "--dialect",
    type=click.Choice([*DIALECTS, "mariadb"]),
    help="Write DDL for this dialect (with --apply: taken from --db).",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["canvas", "caliper", "custom", "all"]),
    default="all",
    show_default=True,
    help="Which tables (the system tables always).",
)
@click.option(
    "--output",
    metavar="DIR|-",
    default=str(DEFAULT_DDL_DIR),
    show_default=True,
    help="Directory for <format>-create-<dialect>-<timestamp>.sql, or - to print.",
)
@_db_schema
@click.option(
    "--apply",
    "do_apply",
    is_flag=True,
    help="Create the missing tables in --db instead of writing a file.",
)
@db_option
@click.option("--drop-existing", is_flag=True, help="DROP the tables first (destroys their data).")
@click.option(
    "--oracle-compat",
    default="19",
    show_default=True,
    metavar="VERSION",
    help="Oracle version: below 12 uses a sequence and trigger for keys; "
    "below 12.2 limits names to 30 characters.",
)
@click.option(
    "--max-identifier-length",
    type=click.IntRange(16, 255),
    help="Shorten longer names (default: 30 for Oracle before 12.2, 128 after).",
)
@schemas_option
@reports_errors
def create_tables(
    dialect: str | None,
    fmt: str,
    output: str,
    db_schema: str | None,
    do_apply: bool,
    db_url: str | None,
    drop_existing: bool,
    oracle_compat: str,
    max_identifier_length: int | None,
    schema_dir: Path | None,
) -> None:
    """Write (or, with --apply, run) the DDL for every table in schemas/.

    Example: ledbelly create-tables --dialect postgresql --output -
    """
    tables = _catalog(schema_dir).by_format(fmt)
    if do_apply:
        engine = _engine(db_url)
        try:
            if (
                dialect
                and dialect != engine.dialect.name
                and {dialect, engine.dialect.name} != {"mysql", "mariadb"}
            ):
                raise ConfigError(f"--dialect {dialect} but --db is {engine.dialect.name}")
            opts = DdlOptions.for_engine(engine, db_schema)
            script = apply(engine, tables, opts, drop_existing)
        finally:
            engine.dispose()
        _echo_names(script)
        click.echo(
            f"created {len(script.tables)} tables"
            + (": " + ", ".join(script.tables) if script.tables else " (all exist)")
        )
        return
    if dialect is None:
        raise ConfigError("say which --dialect to write (or --apply with --db)")
    opts = DdlOptions(dialect, db_schema, oracle_compat, max_identifier_length)
    script = generate(tables, opts, drop_existing)
    title = f"format: {fmt}; {len(script.tables)} tables" + (
        "; DROPs existing tables first" if drop_existing else ""
    )
    if output == "-":
        click.echo(script.render(title), nl=False)
        return
    path = write_script(script, Path(output), fmt, title)
    _echo_names(script)
    click.echo(f"wrote {path} ({len(script.tables)} tables)")


def _echo_names(script: DdlScript) -> None:
    if script.name_map:
        click.echo("names shortened to the identifier limit:", err=True)
        for long, short in sorted(script.name_map.items()):
            click.echo(f"  {long} -> {short}", err=True)


@click.command("alter-tables")
@db_option
@click.option("--apply", "do_apply", is_flag=True, help="Run the statements.")
@click.option(
    "--from-schemas",
    "old_dir",
    type=click.Path(file_okay=False, exists=True, path_type=Path),
    help="Without a connection: compare with the tables this older schemas directory "
    "made (create-tables) and print the statements for --dialect.",
)
@click.option(
    "--dialect",
    type=click.Choice([*DIALECTS, "mariadb"]),
    help="The dialect to print for, with --from-schemas.",
)
@click.option(
    "--oracle-compat",
    default="19",
    show_default=True,
    metavar="VERSION",
    help="With --from-schemas --dialect oracle: as for create-tables.",
)
@click.option(
    "--overlay",
    type=click.Path(file_okay=False, path_type=Path),
    help="Also bring in the tables of this overlay directory (e.g. schemas.local).",
)
@_db_schema
@schemas_option
@reports_errors
def alter_tables(
    db_url: str | None,
    do_apply: bool,
    old_dir: Path | None,
    dialect: str | None,
    oracle_compat: str,
    overlay: Path | None,
    db_schema: str | None,
    schema_dir: Path | None,
) -> None:
    """Print the DDL that brings the database up to schemas/: new tables, columns, wider types.

    Never drops or narrows; columns only in the database are listed as comments.
    Example: ledbelly alter-tables --db postgresql://... --apply
    Without a connection: ledbelly alter-tables --dialect mssql --from-schemas OLD_DIR
    """
    from ledbelly.db.evolve import apply_alter, plan_alter

    catalog = _catalog(schema_dir, overlay)
    if old_dir is not None or dialect is not None:
        if old_dir is None or dialect is None or do_apply:
            raise ConfigError(
                "print statements without a connection with both --from-schemas and "
                "--dialect (and no --apply), or give --db"
            )
        _print_between(_catalog(old_dir), catalog, DdlOptions(dialect, db_schema, oracle_compat))
        return
    engine = _engine(db_url)
    try:
        plan = plan_alter(engine, list(catalog), DdlOptions.for_engine(engine, db_schema))
        click.echo(plan.render(), nl=False)
        if do_apply and plan.statements:
            apply_alter(engine, plan)
            click.echo(f"applied {len(plan.statements)} statements", err=True)
        elif not plan.changes:
            click.echo("the database matches the schemas", err=True)
    finally:
        engine.dispose()


def _print_between(old: Any, new: Any, opts: DdlOptions) -> None:
    from ledbelly.db.evolve import plan_between

    plan = plan_between(list(old), list(new), opts)
    click.echo(plan.render(), nl=False)
    click.echo(
        "the system tables are not compared without a connection"
        + ("" if plan.changes else "; the schemas match"),
        err=True,
    )


@click.group("schema")
def schema_group() -> None:
    """Evolve schemas/ from what ledbelly saw (replaces LEDbelly's reduce_logs)."""


@schema_group.command("suggest")
@click.option(
    "--log-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("log"),
    show_default=True,
)
@db_option
@click.option("--no-db", is_flag=True, help="Do not read ledbelly_unknown_events.")
@click.option(
    "--overlay",
    type=click.Path(file_okay=False, path_type=Path),
    default=DEFAULT_OVERLAY,
    show_default=True,
    help="Tables added or changed by automatic evolution.",
)
@click.option("--output", metavar="FILE|-", default="schema-patch.yml", show_default=True)
@schemas_option
@reports_errors
def suggest_cmd(
    log_dir: Path,
    db_url: str | None,
    no_db: bool,
    overlay: Path,
    output: str,
    schema_dir: Path | None,
) -> None:
    """Write a reviewable YAML patch: new columns, longer sizes, tables for unknown events.

    Reads log/ddl-undefined.log, log/sql-truncations.log, the overlay directory and the
    ledbelly_unknown_events table. Example: ledbelly schema suggest && ledbelly schema apply
    schema-patch.yml
    """
    from ledbelly.schema.patch import suggest

    engine = None if no_db else _engine(db_url)
    try:
        patch = suggest(schema_dir, log_dir, engine, overlay)
    finally:
        if engine is not None:
            engine.dispose()
    if output == "-":
        click.echo(patch.render(), nl=False)
        return
    Path(output).write_text(patch.render(), encoding="utf-8")
    click.echo(
        f"wrote {output}: {len(patch.tables)} tables to change"
        if patch
        else f"wrote {output}: nothing to change"
    )


@schema_group.command("apply")
@click.argument("patch_file", type=click.Path(dir_okay=False, exists=True, path_type=Path))
@schemas_option
@reports_errors
def apply_cmd(patch_file: Path, schema_dir: Path | None) -> None:
    """Merge a patch from 'schema suggest' into schemas/ (never narrows a column).

    Then bring the database along with: ledbelly alter-tables --apply
    """
    from ledbelly.schema.model import default_schema_dir
    from ledbelly.schema.patch import Patch, apply_patch

    written = apply_patch(Patch.load(patch_file), schema_dir or default_schema_dir())
    for path in written:
        click.echo(f"updated {path}")
    if not written:
        click.echo("schemas already include the patch", err=True)


def register(main: click.Group) -> None:
    """Add the schema commands to the ``ledbelly`` group."""
    for command in (create_tables, alter_tables, schema_group):
        main.add_command(command)
