"""Every Canvas raw event type Canvas emits today lands whole, on SQLite, PostgreSQL and MariaDB.

The fixtures in ``tests/fixtures/canvas_today`` are shaped as ``lib/canvas/live_events.rb`` of
canvas-lms builds them today (each names the file and commit it follows), with values at Canvas's
own limits. Each is ingested with the real CLI; every body value must come back from its column,
and nothing may be logged as undefined, truncated or coerced.

A fixture named ``<event>--<variant>.json`` is that event as Canvas sends it in a case the plain
one does not show (its ``variant`` says which): ``""`` for a custom grade status id it clears
(stored as NULL, with no coercion logged), or keys dropped because they were nil
(``payload.compact!``; its ``dropped`` lists them), which must store as an explicit null would.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import MetaData, Table, func, select

from conftest import SCHEMAS, engine_for
from helpers import assert_quiet_logs, ingest_file
from ledbelly.parsers import canvas_raw
from ledbelly.schema.model import Catalog, ColumnDef, TableDef, resolved_source, table_name_for

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "canvas_today"
CATALOG = Catalog.load(SCHEMAS)


def _fixtures(pattern: str = "*.json") -> list[Path]:
    return sorted(FIXTURES.glob(pattern))


def _load(path: Path) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return doc


def _table(doc: dict[str, Any]) -> TableDef:
    return CATALOG.tables[table_name_for("canvas", doc["event_name"])]


def _ingest_rows(
    url: str, tmp_path: Path, table_def: TableDef, payloads: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """Ingest ``payloads`` (one file) with the CLI, check the logs, return the table's rows."""
    event_file = tmp_path / "events.json"
    event_file.write_text(json.dumps(payloads), encoding="utf-8")
    log_dir = tmp_path / "log"
    result = ingest_file(url, log_dir, event_file)
    assert result.exit_code == 0, result.output
    assert_quiet_logs(log_dir)
    engine = engine_for(url)
    try:
        with engine.connect() as conn:
            table = Table(table_def.name, MetaData(), autoload_with=conn)
            rows = conn.execute(select(table).order_by(table.c[0])).mappings().all()
            unknown = Table("ledbelly_unknown_events", MetaData(), autoload_with=conn)
            assert conn.execute(select(func.count()).select_from(unknown)).scalar_one() == 0
    finally:
        engine.dispose()
    assert len(rows) == len(payloads), f"{len(rows)} rows in {table_def.name}"
    return [dict(r) for r in rows]


def _column_for(table: TableDef, key: str) -> ColumnDef | None:
    for col in table.data_columns:
        if resolved_source(table, col) == key:
            return col
    return None


def _normal(col: ColumnDef, value: Any) -> Any:
    """A payload value or a stored value, in one comparable form for ``col``."""
    if value is None:
        return None
    if col.json:
        return json.loads(value) if isinstance(value, str) else value
    if col.type in ("bigint", "int"):
        return None if value == "" else int(value)  # Canvas sends "" for an id it clears
    if col.type == "float":
        return round(float(value), 6)
    if col.type == "boolean":
        return value if isinstance(value, bool) else str(value).lower() in ("1", "true")
    if col.type == "datetime":
        if isinstance(value, datetime):
            return value.replace(tzinfo=None)
        return datetime.fromisoformat(str(value).replace("Z", "+00:00")).replace(tzinfo=None)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, dict)):
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    return str(value)


def _same(col: ColumnDef, stored: Any, sent: Any) -> bool:
    a, b = _normal(col, stored), _normal(col, sent)
    if col.type == "datetime" and isinstance(a, datetime) and isinstance(b, datetime):
        return abs((a - b).total_seconds()) < 0.001
    if col.type in ("string", "text") and not col.json and isinstance(a, str) and b is not None:
        return a == b or _lists_equal(a, b)
    return bool(a == b)


def _lists_equal(stored: str, sent: str) -> bool:
    try:
        return bool(json.loads(stored) == json.loads(sent))
    except ValueError:
        return False


@pytest.mark.parametrize("fixture", _fixtures(), ids=lambda p: p.stem)
def test_today_event_lands_whole(fixture: Path, db_url: str, tmp_path: Path) -> None:
    doc = _load(fixture)
    payload: dict[str, Any] = doc["payload"]
    assert payload["metadata"]["event_name"] == doc["event_name"]
    assert fixture.stem.split("--")[0] == doc["event_name"]
    table_def = _table(doc)
    row = _ingest_rows(db_url, tmp_path, table_def, [payload])[0]

    keep = frozenset(resolved_source(table_def, c) for c in table_def.data_columns if c.json)
    flat = canvas_raw.flatten(payload, keep)
    for key, sent in flat.items():
        if sent is None:
            continue
        col = _column_for(table_def, key)
        assert col is not None, f"{table_def.name}: no column takes {key}"
        assert _same(col, row[col.name], sent), (
            f"{table_def.name}.{col.name}: sent {sent!r}, stored {row[col.name]!r}"
        )


@pytest.mark.parametrize("fixture", _fixtures("*custom*status--*.json"), ids=lambda p: p.stem)
def test_cleared_status_id_is_null_and_its_name_empty(
    fixture: Path, db_url: str, tmp_path: Path
) -> None:
    """Canvas sends "" for a custom grade status it clears: the bigint id column is NULL
    (no coercion logged), the name column keeps ""."""
    doc = _load(fixture)
    body: dict[str, Any] = doc["payload"]["body"]
    cleared = [k for k, v in body.items() if v == ""]
    assert any(k.endswith("_id") for k in cleared) and any(
        not k.endswith("_id") for k in cleared
    ), f"{fixture.name} clears no status"
    table_def = _table(doc)
    row = _ingest_rows(db_url, tmp_path, table_def, [doc["payload"]])[0]
    for key in cleared:
        col = table_def.column(key)
        assert col is not None, key
        expected = None if col.type == "bigint" else ""
        assert row[key] == expected, (key, row[key])


@pytest.mark.parametrize("fixture", _fixtures("*--nil_dropped.json"), ids=lambda p: p.stem)
def test_dropped_nil_keys_store_as_explicit_nulls(
    fixture: Path, db_url: str, tmp_path: Path
) -> None:
    """Canvas drops nil keys (``payload.compact!``); a key that is absent stores exactly as
    the same key sent as null does."""
    doc = _load(fixture)
    dropped: list[str] = doc["dropped"]
    table_def = _table(doc)
    absent: dict[str, Any] = doc["payload"]
    explicit = json.loads(json.dumps(absent))
    for key in dropped:
        part, name = key.split(".", 1)
        assert name not in absent[part], f"{fixture.name} still sends {key}"
        explicit[part][name] = None
        col = _column_for(table_def, key)
        assert col is not None, f"{table_def.name}: no column takes {key}"
    rows = _ingest_rows(db_url, tmp_path, table_def, [absent, explicit])
    filled_by_ledbelly = {c.name for c in table_def.columns if c.is_system}
    first, second = ({k: v for k, v in r.items() if k not in filled_by_ledbelly} for r in rows)
    assert first == second
    for key in dropped:
        col = _column_for(table_def, key)
        assert col is not None and first[col.name] is None, key
