"""Upgrading: ``ledbelly alter-tables`` brings a database that LEDbelly or an older ledbelly made
up to ``schemas/`` without losing a row.

On SQLite, PostgreSQL and MariaDB a database is built as LEDbelly left it (every table and column
of ``ledbelly-schema.tsv``, with LEDbelly's 32-bit ``int`` ids, its sizes and its second-only
times) or as ``create-tables`` of the schemas before they followed Canvas today (commit
``OLD_COMMIT``); rows go in, the real CLI runs ``alter-tables --apply``, and then: the rows are all
there, every column of ``schemas/`` is there at least as wide, today's events land with nothing
undefined, truncated or coerced, and a second ``alter-tables`` has nothing to do. For MSSQL and
Oracle, ``alter-tables --dialect D --from-schemas OLD`` prints the statements without a server;
they must parse with sqlglot.
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
import subprocess
import tarfile
from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import sqlglot
import yaml
from click.testing import CliRunner, Result
from sqlalchemy import (
    REAL,
    BigInteger,
    Column,
    DateTime,
    Float,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    Unicode,
    UnicodeText,
    inspect,
    select,
)
from sqlalchemy import types as sqltypes
from sqlalchemy.types import TypeEngine
from sqlglot import exp

from conftest import REFERENCE_TSV, ROOT, SCHEMAS, engine_for
from helpers import assert_quiet_logs, count, fixture_line, ingest_file
from ledbelly.cli import main
from ledbelly.db.ddl import DdlOptions
from ledbelly.db.evolve import plan_alter, plan_between
from ledbelly.schema.model import Catalog

# The last commit before the schemas were brought up to what Canvas emits today.
OLD_COMMIT = "1768623"
FIXTURES = Path(__file__).resolve().parent / "fixtures"
# Tables that hold rows before the upgrade: ids LEDbelly kept in ``int``, Caliper, the stream,
# geolocation (``real`` coordinates).
FILLED = (
    "live_asset_accessed",
    "live_course_section_created",
    "live_module_item_created",
    "live_submission_created",
    "ims_asset_accessed",
    "ims_submission_created",
    "live_stream",
    "led_geo_maxmind",
)
ROWS = 3
SQLGLOT = {"mssql": "tsql", "oracle": "oracle"}


@dataclass(frozen=True)
class OldColumn:
    """A column as an older database has it: ``key``, ``bigint``, ``int``, ``float``, ``real``,
    ``boolean``, ``datetime``, ``string`` (with a size) or ``text``."""

    name: str
    type: str
    size: int | None = None
    multibyte: bool = False


OldTables = dict[str, list[OldColumn]]


# ----- the databases as they were ----------------------------------------------------------


def ledbelly_tables() -> OldTables:
    """Every LEDbelly table and column, from ``ledbelly-schema.tsv``."""
    if not REFERENCE_TSV.is_file():
        pytest.skip(
            f"LEDbelly's table list is not at {REFERENCE_TSV} "
            "(the ../shared folder beside the checkout)"
        )
    tables: OldTables = {}
    with REFERENCE_TSV.open(encoding="utf-8", newline="") as f:
        for row in csv.DictReader(f, delimiter="\t"):
            kind, size = row["type"].lower(), row["size"]
            if row["primary_key"]:
                kind = "key"
            elif kind == "string" and size == "MAX":
                kind, size = "text", ""
            column = OldColumn(
                row["column"], kind, int(size) if kind == "string" else None, bool(row["multibyte"])
            )
            tables.setdefault(row["table"], []).append(column)
    return tables


def _ledbelly_type(col: OldColumn) -> TypeEngine[Any]:
    """The type LEDbelly gave a column (second-only times, ``int`` ids, ``real`` coordinates)."""
    if col.type == "bigint":
        return BigInteger()
    if col.type == "int":
        return Integer()
    if col.type == "float":
        return Float(53)
    if col.type == "real":
        return REAL()
    if col.type == "datetime":
        return DateTime()
    if col.type == "text":
        return UnicodeText() if col.multibyte else Text()
    return Unicode(col.size) if col.multibyte else String(col.size)


def create_ledbelly_database(url: str, tables: OldTables) -> None:
    metadata = MetaData()
    for name, columns in tables.items():
        key = BigInteger().with_variant(Integer(), "sqlite")
        Table(
            name,
            metadata,
            *(
                Column(c.name, key, primary_key=True, autoincrement=True)
                if c.type == "key"
                else Column(c.name, _ledbelly_type(c))
                for c in columns
            ),
        )
    engine = engine_for(url)
    try:
        metadata.create_all(engine)
    finally:
        engine.dispose()


def ledbelly_schema_dir(tables: OldTables, tmp_path: Path) -> Path:
    """LEDbelly's tables as a schemas directory, for ``alter-tables --from-schemas``."""
    out = tmp_path / "ledbelly-schemas"
    out.mkdir()
    kinds = {"key": "bigint", "real": "float"}
    for name, columns in tables.items():
        spec: dict[str, Any] = {}
        for c in columns:
            spec[c.name] = {"type": kinds.get(c.type, c.type)}
            if c.type == "key":
                spec[c.name]["primary_key"] = True
            if c.size is not None:
                spec[c.name]["size"] = c.size
        doc = {"table": name, "format": "custom", "columns": spec}
        (out / f"{name}.yml").write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    return out


def older_schemas(tmp_path: Path) -> Path:
    """``schemas/`` as of ``OLD_COMMIT``, from this checkout's history."""
    try:
        archive = subprocess.run(
            ["git", "-C", str(ROOT), "archive", "--format=tar", OLD_COMMIT, "schemas"],
            capture_output=True,
            check=True,
        ).stdout
    except (OSError, subprocess.CalledProcessError) as exc:
        pytest.skip(f"the schemas of commit {OLD_COMMIT} are not in this checkout's history: {exc}")
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(tmp_path / "old", filter="data")
    return tmp_path / "old" / "schemas"


def tables_of(catalog: Catalog) -> OldTables:
    return {
        t.name: [
            OldColumn(c.name, "key" if c.primary_key else c.type, c.size, c.multibyte)
            for c in t.columns
        ]
        for t in catalog
    }


# ----- rows before, rows after ---------------------------------------------------------------


def _sample(col: OldColumn, i: int) -> Any:
    """A value at the old column's own limit."""
    if col.type == "bigint":
        return 21_070_000_000_000_000 + 1000 * i + len(col.name)
    if col.type == "int":
        return 2**31 - 1 - i
    if col.type in ("float", "real"):
        return 45.123456789 + i
    if col.type == "boolean":
        return i % 2 == 0
    if col.type == "datetime":
        return datetime(2019, 8, 1, 12, 30, i)
    fill = "é" if col.multibyte else "x"
    text = f"{col.name}-{i}-" + fill * (col.size or 3000)
    return text[: col.size] if col.size else text


def insert_samples(url: str, tables: OldTables) -> dict[str, list[dict[str, Any]]]:
    """``ROWS`` rows in each ``FILLED`` table; what went in, per table, in key order."""
    rows = {
        name: [
            {c.name: _sample(c, i) for c in tables[name] if c.type != "key"} for i in range(ROWS)
        ]
        for name in FILLED
    }
    engine = engine_for(url)
    try:
        with engine.begin() as conn:
            for name, values in rows.items():
                conn.execute(Table(name, MetaData(), autoload_with=conn).insert(), values)
    finally:
        engine.dispose()
    return rows


def _same(stored: Any, sent: Any) -> bool:
    if isinstance(sent, bool):
        return bool(stored) == sent
    if isinstance(sent, float):
        return math.isclose(float(stored), sent, rel_tol=1e-6)
    return bool(stored == sent)


def assert_rows_kept(url: str, before: dict[str, list[dict[str, Any]]]) -> None:
    engine = engine_for(url)
    try:
        with engine.connect() as conn:
            for name, sent in before.items():
                table = Table(name, MetaData(), autoload_with=conn)
                got = conn.execute(select(table).order_by(table.c[0])).mappings().all()
                assert len(got) == len(sent), f"{name}: {len(got)} rows, {len(sent)} before"
                for old, new in zip(sent, got, strict=True):
                    changed = {k: (v, new[k]) for k, v in old.items() if not _same(new[k], v)}
                    assert not changed, f"{name}: changed (before, after): {changed}"
    finally:
        engine.dispose()


# ----- the shape after -----------------------------------------------------------------------


def _type_problem(kind: str, size: int | None, have: TypeEngine[Any], dialect: str) -> str:
    """Why ``have`` is narrower than the schema's ``kind``/``size`` wants ("" if it is not)."""
    name = type(have).__name__
    if kind == "bigint" and not isinstance(have, sqltypes.BigInteger):
        return f"{have} is not a bigint"
    if kind == "string":
        length = getattr(have, "length", None)
        if not isinstance(have, sqltypes.String) or (length is not None and length < (size or 0)):
            return f"{have} is narrower than {size}"
    if kind == "text" and (
        not isinstance(have, sqltypes.String) or (dialect == "mysql" and name != "LONGTEXT")
    ):
        return f"{have} is not unbounded text"
    if kind == "float" and not isinstance(have, sqltypes.Double):
        return f"{have} is not double precision"
    if kind == "datetime" and dialect == "mysql" and getattr(have, "fsp", None) != 6:
        return f"{have} drops the fraction of a second"
    return ""


def assert_shaped_like_schemas(url: str, catalog: Catalog) -> None:
    """Every column of every table is there; on the servers, at least as wide as the schema."""
    problems: list[str] = []
    engine = engine_for(url)
    dialect = "mysql" if engine.dialect.name == "mariadb" else engine.dialect.name
    try:
        with engine.connect() as conn:
            insp = inspect(conn)
            for table in catalog:
                have = {str(c["name"]).lower(): c["type"] for c in insp.get_columns(table.name)}
                for col in table.columns:
                    found = have.get(col.name.lower())
                    if found is None:
                        problems.append(f"{table.name}.{col.name}: missing")
                    elif dialect != "sqlite":  # SQLite enforces no sizes: nothing to widen
                        kind = "bigint" if col.primary_key else col.type
                        why = _type_problem(kind, col.size, found, dialect)
                        problems += [f"{table.name}.{col.name}: {why}"] if why else []
    finally:
        engine.dispose()
    assert not problems, "\n".join(problems)


# ----- the CLI -------------------------------------------------------------------------------


def cli(*args: str) -> Result:
    result = CliRunner().invoke(main, list(args))
    assert result.exit_code == 0, result.output + repr(result.exception)
    return result


def alter_apply(url: str) -> None:
    result = cli("alter-tables", "--db", url, "--schemas", str(SCHEMAS), "--apply")
    assert "applied" in result.stderr, result.output


def assert_nothing_to_do(url: str) -> None:
    result = cli("alter-tables", "--db", url, "--schemas", str(SCHEMAS))
    assert result.stdout == "", result.stdout
    assert "the database matches the schemas" in result.stderr


def assert_today_lands(url: str, tmp_path: Path, before: dict[str, list[dict[str, Any]]]) -> None:
    """Every fixture of Canvas raw and Caliper events today lands in the upgraded tables."""
    lines, landed = [], Counter[str]()
    for fmt, prefix in (("canvas", "live_"), ("caliper", "ims_")):
        for i, path in enumerate(sorted((FIXTURES / f"{fmt}_today").glob("*.json"))):
            doc = json.loads(path.read_text(encoding="utf-8"))
            lines.append(fixture_line(doc, f"upgrade-{fmt}-{i}"))
            landed[prefix + re.sub(r"[^A-Za-z0-9_]", "_", doc["event_name"])] += 1
            landed["live_stream"] += fmt == "canvas"
    events = tmp_path / "today.jsonl"
    events.write_text("\n".join(lines) + "\n", encoding="utf-8")
    log_dir = tmp_path / "log"
    result = ingest_file(url, log_dir, events, create_missing=False)
    assert result.exit_code == 0, result.output
    assert "unknown 0; dead letters 0" in result.output, result.output
    assert_quiet_logs(log_dir)
    for table, n in landed.items():
        assert count(url, table) == n + len(before.get(table, [])), table


# ----- the tests -----------------------------------------------------------------------------


def test_a_ledbelly_database_upgrades_without_losing_a_row(db_url: str, tmp_path: Path) -> None:
    tables = ledbelly_tables()
    create_ledbelly_database(db_url, tables)
    before = insert_samples(db_url, tables)

    alter_apply(db_url)

    assert_rows_kept(db_url, before)
    assert_shaped_like_schemas(db_url, Catalog.load(SCHEMAS))
    assert_today_lands(db_url, tmp_path, before)
    assert_nothing_to_do(db_url)


def test_an_older_ledbelly_database_upgrades_without_losing_a_row(
    db_url: str, tmp_path: Path
) -> None:
    old_dir = older_schemas(tmp_path)
    old, new = Catalog.load(old_dir), Catalog.load(SCHEMAS)
    cli("create-tables", "--apply", "--schemas", str(old_dir), "--db", db_url)
    before = insert_samples(db_url, tables_of(old))

    # What the live database asks for is what the two schema directories alone say (but for
    # quoting: MariaDB's server reserves fewer words than SQLAlchemy's offline MySQL dialect).
    engine = engine_for(db_url)
    try:
        opts = DdlOptions.for_engine(engine)
        live = plan_alter(engine, list(new), opts, include_system=False)
    finally:
        engine.dispose()
    offline = plan_between(list(old), list(new), opts)
    assert [_unquoted(s) for s in live.statements] == [_unquoted(s) for s in offline.statements]

    alter_apply(db_url)

    assert_rows_kept(db_url, before)
    assert_shaped_like_schemas(db_url, new)
    assert_today_lands(db_url, tmp_path, before)
    assert_nothing_to_do(db_url)


def _unquoted(sql: str) -> str:
    return re.sub(r'[`"]', "", sql)


_MODIFY = re.compile(r"^ALTER TABLE (\S+) MODIFY \((.+)\)$", re.S)


def _statements(rendered: str) -> list[str]:
    body = "\n".join(line for line in rendered.splitlines() if not line.startswith("--"))
    return [s.strip() for s in body.split(";\n") if s.strip().rstrip(";")]


def assert_parses(rendered: str, dialect: str) -> list[str]:
    """Each statement parses as ``dialect`` with sqlglot; sqlglot cannot read Oracle's
    ``MODIFY (column type)``, so its column definition is parsed as an ``ADD`` instead."""
    statements = [s.rstrip(";") for s in _statements(rendered)]
    assert statements
    for sql in statements:
        parsed = sqlglot.parse_one(sql, read=SQLGLOT[dialect], error_level=sqlglot.ErrorLevel.RAISE)
        modify = _MODIFY.match(sql)
        if isinstance(parsed, exp.Command) and dialect == "oracle" and modify:
            sql = f"ALTER TABLE {modify[1]} ADD ({modify[2]})"
            parsed = sqlglot.parse_one(sql, read="oracle", error_level=sqlglot.ErrorLevel.RAISE)
        assert isinstance(parsed, exp.Alter | exp.Create | exp.Update), (type(parsed), sql)
    return statements


@pytest.mark.parametrize("dialect", ["mssql", "oracle"])
@pytest.mark.parametrize("origin", ["ledbelly", "older-ledbelly"])
def test_statements_for_a_dialect_without_a_server(
    origin: str, dialect: str, tmp_path: Path
) -> None:
    if origin == "ledbelly":
        old_dir = ledbelly_schema_dir(ledbelly_tables(), tmp_path)
    else:
        old_dir = older_schemas(tmp_path)
    args = ["alter-tables", "--dialect", dialect, "--from-schemas", str(old_dir)]
    result = cli(*args, "--schemas", str(SCHEMAS))
    assert "the system tables are not compared" in result.stderr
    statements = assert_parses(result.stdout, dialect)

    widened = {
        "mssql": "ALTER TABLE live_module_item_created ALTER COLUMN module_id BIGINT NULL",
        "oracle": "ALTER TABLE live_module_item_created MODIFY (module_id NUMBER(19))",
    }
    new_table = "CREATE TABLE live_heartbeat"
    if origin == "ledbelly":
        assert widened[dialect] in statements
    assert any(s.startswith(new_table) for s in statements)
    assert any("ADD" in s and "actor_canvas_id" in s for s in statements)


def test_statements_without_a_server_when_nothing_differs() -> None:
    result = cli("alter-tables", "--dialect", "oracle", "--from-schemas", str(SCHEMAS))
    assert result.stdout == ""
    assert "the schemas match" in result.stderr


@pytest.mark.parametrize(
    "args",
    [["--dialect", "mssql"], ["--from-schemas", str(SCHEMAS)], ["--apply", "--dialect", "mssql"]],
)
def test_statements_without_a_server_need_both_options(args: list[str]) -> None:
    if "--apply" in args:
        args = [*args, "--from-schemas", str(SCHEMAS)]
    result = CliRunner().invoke(main, ["alter-tables", *args])
    assert result.exit_code == 2, result.output
    assert "--from-schemas" in result.output
