"""alter-tables, schema suggest/apply and opt-in automatic evolution, on real databases."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path
from typing import Any

from click.testing import CliRunner
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import MetaData, Table, inspect, select, text
from sqlalchemy import types as sqltypes
from sqlalchemy.dialects import mssql, oracle
from sqlalchemy.engine import Dialect

from conftest import SCHEMAS, canvas_event, engine_for, sqs_message
from helpers import ingest_all
from ledbelly.cli import main
from ledbelly.db.ddl import DdlOptions, apply, event_table
from ledbelly.db.evolve import (
    Evolver,
    Patch,
    _compare,
    apply_patch,
    plan_alter,
    suggest,
)
from ledbelly.schema.infer import column_name, headroom, infer_column
from ledbelly.schema.model import Catalog, ColumnDef, TableDef, load_table_file

CATALOG = Catalog.load(SCHEMAS)
ASSET = CATALOG.tables["live_asset_accessed"]


def older(table: TableDef) -> TableDef:
    """The table as an older schema had it: two columns fewer, one shorter, one narrower."""
    cols = []
    for c in table.columns:
        if c.name in ("url", "section_id"):
            continue
        if c.name == "asset_name":
            c = replace(c, size=20)
        if c.name == "asset_id":
            c = replace(c, type="int")
        cols.append(c)
    return replace(table, columns=tuple(cols))


# ----- inference ------------------------------------------------------------------------------


@given(st.integers(min_value=1, max_value=5000))
def test_headroom_leaves_room(length: int) -> None:
    size = headroom(length)
    assert size is None or size >= length * 1.5
    assert (size is None) == (length * 1.5 > 2000)


def test_infer_column_types() -> None:
    assert infer_column("a", [True, False]).type == "boolean"
    assert infer_column("a", [1, 2**40]).type == "bigint"
    assert infer_column("a", [1, 2.5]).type == "float"
    assert infer_column("a", ["2026-09-01T14:03:07.150Z"]).type == "datetime"
    assert infer_column("user_id", ["21070000000000001"]).type == "bigint"
    assert infer_column("code", ["0012"]) == ColumnDef("code", "string", size=16)
    assert infer_column("a", ["é" * 30]) == ColumnDef("a", "string", size=64, multibyte=True)
    assert infer_column("a", ["x" * 1500]).type == "text"
    assert infer_column("a", [[1, 2], None]).type == "text"
    assert infer_column("a", [None]).type == "text"


def test_column_names_follow_the_schema_rules() -> None:
    taken = {c.name for c in ASSET.columns}
    assert column_name(ASSET, "body.new_thing", taken) == ("new_thing", None)
    assert column_name(ASSET, "metadata.new_thing", taken) == ("new_thing_meta", None)
    assert column_name(ASSET, "body.user_agent", taken) == ("user_agent_body", "body.user_agent")
    assert column_name(ASSET, "body.asset_id", taken) == ("asset_id_body", "body.asset_id")
    caliper = CATALOG.tables["ims_logged_out"]
    assert column_name(caliper, "object_new_key", set()) == ("object_new_key", None)


# ----- alter-tables ---------------------------------------------------------------------------


def test_alter_tables_brings_an_older_table_up_to_date(db_url: str) -> None:
    engine = engine_for(db_url)
    try:
        apply(engine, [older(ASSET)], DdlOptions.for_engine(engine))
        with engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO live_asset_accessed (asset_id, asset_name, event_time) "
                    "VALUES (42, 'Biology', '2026-09-01 14:03:07')"
                )
            )
        plan = plan_alter(engine, [ASSET])
        rendered = plan.render()
        assert "live_asset_accessed.url: new column" in rendered
        assert "DROP" not in rendered.upper()
        if engine.dialect.name != "sqlite":
            assert "asset_name: widen" in rendered and "asset_id: widen" in rendered
        result = CliRunner().invoke(main, ["alter-tables", "--db", db_url, "--apply"])
        assert result.exit_code == 0, result.output
        assert plan_alter(engine, [ASSET]).render() == ""
        assert CliRunner().invoke(main, ["alter-tables", "--db", db_url]).stdout == ""
        insp = inspect(engine)
        cols = {c["name"]: c["type"] for c in insp.get_columns("live_asset_accessed")}
        assert [c.name for c in ASSET.columns if c.name not in cols] == []
        if engine.dialect.name != "sqlite":
            assert getattr(cols["asset_name"], "length", None) == 2000
            assert isinstance(cols["asset_id"], sqltypes.BigInteger)
        with engine.connect() as conn:
            row = conn.execute(
                text(
                    "SELECT asset_id, asset_name, url FROM live_asset_accessed WHERE asset_id = 42"
                )
            )
            assert list(row) == [(42, "Biology", None)]
    finally:
        engine.dispose()


def test_columns_only_in_the_database_are_a_comment(sqlite_url: str) -> None:
    engine = engine_for(sqlite_url)
    try:
        apply(engine, [ASSET], DdlOptions("sqlite"))
        with engine.begin() as conn:
            conn.execute(text("ALTER TABLE live_asset_accessed ADD COLUMN local_note TEXT"))
        plan = plan_alter(engine, [ASSET])
        assert plan.statements == []
        assert (
            plan.render() == "-- live_asset_accessed.local_note: only in the database "
            "(left alone)\n"
        )
    finally:
        engine.dispose()


def test_mssql_and_oracle_alter_statements() -> None:
    """No server for these: compare against what reflection would report."""
    live = [
        {
            "name": c.name,
            "type": sqltypes.VARCHAR(20)
            if c.name == "asset_name"
            else sqltypes.INTEGER()
            if c.name == "asset_id"
            else sqltypes.NullType(),
        }
        for c in ASSET.columns
        if c.name != "url"
    ]
    expected = {
        "mssql": [
            "ALTER TABLE live_asset_accessed ALTER COLUMN asset_id BIGINT NULL",
            "ALTER TABLE live_asset_accessed ALTER COLUMN asset_name VARCHAR(2000) NULL",
            "ALTER TABLE live_asset_accessed ADD url VARCHAR(max) NULL",
        ],
        "oracle": [
            "ALTER TABLE live_asset_accessed MODIFY (asset_id NUMBER(19))",
            "ALTER TABLE live_asset_accessed MODIFY (asset_name VARCHAR2(2000 CHAR))",
            "ALTER TABLE live_asset_accessed ADD (url CLOB)",
        ],
    }
    dialects: tuple[Dialect, ...] = (mssql.dialect(), oracle.dialect())  # type: ignore[no-untyped-call]
    for dialect in dialects:
        table = event_table(ASSET, MetaData(), DdlOptions(dialect.name))
        change = _compare(table, live, dialect)
        assert change.statements == expected[dialect.name]


# ----- suggest and apply ----------------------------------------------------------------------


def copy_schemas(tmp_path: Path) -> Path:
    target = tmp_path / "schemas"
    shutil.copytree(SCHEMAS, target)
    return target


def test_suggest_from_logs_then_apply(tmp_path: Path) -> None:
    log = tmp_path / "log"
    log.mkdir()
    undefined = [
        {
            "at": "x",
            "event_name": "asset_accessed",
            "table": "live_asset_accessed",
            "field": "body.shiny_new",
            "sample": json.dumps("abc"),
        },
        {
            "at": "x",
            "event_name": "asset_accessed",
            "table": "live_asset_accessed",
            "field": "body.counter",
            "sample": "17",
        },
        {
            "at": "x",
            "event_name": "asset_accessed",
            "table": "live_asset_accessed",
            "field": "body.section_id (column section_id is in the schema but not in the "
            "database: run alter-tables)",
            "sample": "5",
        },
    ]
    (log / "ddl-undefined.log").write_text("\n".join(map(json.dumps, undefined)) + "\n")
    (log / "sql-truncations.log").write_text(
        "2026-09-01T00:00:00.000000Z live_asset_accessed.asset_name supplied 2400, expecting 2000\n"
        "2026-09-01T00:00:00.000000Z live_asset_accessed.asset_type supplied 30, expecting 24\n"
    )
    schemas = copy_schemas(tmp_path)
    patch = suggest(schemas, log)
    text_ = patch.render()
    assert "shiny_new: {type: string, size: 16}" in text_
    assert "counter: {type: bigint}" in text_
    assert "section_id" not in text_.split("widen_columns")[0].split("add_columns")[1]
    assert "asset_name: {type: text}" in text_ and "asset_type: {type: string, size: 64}" in text_
    patch_file = tmp_path / "patch.yml"
    patch_file.write_text(text_)
    result = CliRunner().invoke(
        main, ["schema", "apply", str(patch_file), "--schemas", str(schemas)]
    )
    assert result.exit_code == 0, result.output
    table = load_table_file(schemas / "canvas" / "live_asset_accessed.yml")
    assert table.column("shiny_new") == ColumnDef("shiny_new", "string", size=16)
    assert table.column("asset_name") == ColumnDef("asset_name", "text")
    assert table.columns[: len(ASSET.columns)] != ASSET.columns  # widened in place
    first_line = (schemas / "canvas" / "live_asset_accessed.yml").read_text().splitlines()[0]
    assert first_line.startswith("# Canvas raw event asset_accessed")
    assert apply_patch(Patch.load(patch_file), schemas) == []  # applying twice: no change
    assert not suggest(schemas, log)


# ----- evolution end to end -------------------------------------------------------------------


def test_evolution_adds_columns_and_tables_and_suggest_closes_the_loop(
    db_url: str, make_pipeline: Any, tmp_path: Path
) -> None:
    schemas = copy_schemas(tmp_path)
    overlay = tmp_path / "schemas.local"
    pipeline = make_pipeline(db_url, schema_dir=schemas, overlay_dir=overlay)
    apply(pipeline.engine, list(pipeline.catalog), DdlOptions.for_engine(pipeline.engine))
    new_type = canvas_event("badge_awarded", badge_id="21070000000000009", badge_name="Früh")
    stored = sqs_message("m-unknown-1", "badge_awarded", new_type)
    ingest_all(pipeline, [stored])  # evolution off: stored as an unknown event

    # The real path: ingest with schema_evolution on (the daemon uses the same processor).
    evolving = make_pipeline(
        db_url, schema_dir=schemas, overlay_dir=overlay, schema_evolution="add_columns_and_tables"
    )
    with_field = canvas_event(asset_id="21070000000000144", asset_type="course", sparkle_level=7)
    later = canvas_event("badge_awarded", badge_id="21070000000000010", badge_name="Spät")
    stats = ingest_all(
        evolving,
        [
            sqs_message("m-1", "asset_accessed", with_field),
            sqs_message("m-2", "badge_awarded", later),
        ],
    )
    assert stats.rows["canvas"] == 2 and stats.unknown == 0
    pipeline = evolving

    with pipeline.engine.connect() as conn:
        md = MetaData()
        asset = Table("live_asset_accessed", md, autoload_with=conn)
        badges = Table("live_badge_awarded", md, autoload_with=conn)
        assert list(conn.execute(select(asset.c.sparkle_level))) == [(7,)]
        got = conn.execute(
            select(badges.c.badge_id, badges.c.badge_name, badges.c.user_id_meta).order_by(
                badges.c.badge_id
            )
        ).all()
        assert got == [
            (21070000000000009, "Früh", 21070000000000001),
            (21070000000000010, "Spät", 21070000000000001),
        ]
        assert conn.execute(text("SELECT COUNT(*) FROM ledbelly_unknown_events")).scalar() == 0
        ledger = conn.execute(text("SELECT message_id, outcome FROM ledbelly_messages"))
        outcomes = {r[0]: r[1] for r in ledger}
        assert outcomes == {"m-unknown-1": "inserted", "m-1": "inserted", "m-2": "inserted"}
    assert (overlay / "canvas" / "live_badge_awarded.yml").is_file()
    assert "sparkle_level" in (overlay / "canvas" / "live_asset_accessed.yml").read_text()
    changes = (tmp_path / "log" / "schema-changes.log").read_text()
    assert "added columns sparkle_level" in changes and "new table" in changes

    patch_file = tmp_path / "patch.yml"
    runner = CliRunner()
    result = runner.invoke(
        main,
        [
            "schema",
            "suggest",
            "--db",
            db_url,
            "--log-dir",
            str(tmp_path / "log"),
            "--overlay",
            str(overlay),
            "--schemas",
            str(schemas),
            "--output",
            str(patch_file),
        ],
    )
    assert result.exit_code == 0, result.output
    assert (
        runner.invoke(
            main, ["schema", "apply", str(patch_file), "--schemas", str(schemas)]
        ).exit_code
        == 0
    )
    result = runner.invoke(main, ["alter-tables", "--db", db_url, "--schemas", str(schemas)])
    assert result.exit_code == 0 and result.stdout == "", result.output


def test_suggest_infers_tables_from_stored_unknown_events(
    sqlite_url: str, make_pipeline: Any, tmp_path: Path
) -> None:
    schemas = copy_schemas(tmp_path)
    pipeline = make_pipeline(sqlite_url, schema_dir=schemas)
    event = canvas_event(
        "badge_awarded", badge_id="21070000000000009", awarded_at="2026-09-01T14:03:07Z"
    )
    ingest_all(pipeline, [sqs_message("u-1", "badge_awarded", event)])
    patch = suggest(schemas, tmp_path / "log", pipeline.engine)
    created = patch.tables["live_badge_awarded"].create
    assert created is not None
    assert [c.name for c in created.columns[:3]] == [
        "badge_awarded_id",
        "processed_at",
        "event_time_local",
    ]
    assert created.column("badge_id") == ColumnDef("badge_id", "bigint")
    assert created.column("awarded_at") == ColumnDef("awarded_at", "datetime")
    assert created.column("user_id_meta") == ASSET.column("user_id_meta")
    assert "from 1 stored canvas events badge_awarded" in patch.render()
    apply_patch(patch, schemas)
    assert Catalog.load(schemas).route("canvas", "badge_awarded") is not None


def test_evolution_off_changes_nothing(sqlite_url: str, tmp_path: Path) -> None:
    engine = engine_for(sqlite_url)
    try:
        catalog = Catalog.load(SCHEMAS)
        from ledbelly.ops.logs import EventLogs

        logs = EventLogs(tmp_path / "log")
        ev = Evolver(engine, catalog, tmp_path / "overlay", logs, "off")
        assert ev.add_columns(ASSET, {"body.x": 1}) is None
        assert ev.create_table("canvas", "x", {"body.x": 1}) is None
        only_columns = Evolver(engine, catalog, tmp_path / "overlay", logs, "add_columns")
        assert only_columns.create_table("canvas", "x", {"body.x": 1}) is None
        logs.close()
        assert not (tmp_path / "overlay").exists()
    finally:
        engine.dispose()


def test_widen_writes_the_overlay(sqlite_url: str, tmp_path: Path) -> None:
    engine = engine_for(sqlite_url)
    from ledbelly.ops.logs import EventLogs

    logs = EventLogs(tmp_path / "log")
    try:
        catalog = Catalog.load(SCHEMAS)
        apply(engine, [ASSET], DdlOptions("sqlite"))
        ev = Evolver(engine, catalog, tmp_path / "overlay", logs, "add_columns")
        new = ev.widen(ASSET, "asset_type", 40)
        widened = ColumnDef("asset_type", "string", size=64)
        assert new is not None and new.column("asset_type") == widened
        assert catalog.tables["live_asset_accessed"].column("asset_type") == widened
        assert ev.widen(new, "asset_type", 40) is None  # wide enough already
        overlay = Catalog.load(SCHEMAS, tmp_path / "overlay")
        assert overlay.tables["live_asset_accessed"].column("asset_type") == widened
    finally:
        logs.close()
        engine.dispose()
