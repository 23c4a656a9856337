"""Every Canvas raw event type Canvas emits today lands whole, on SQLite, PostgreSQL and MariaDB.

The fixtures in ``tests/fixtures/canvas_today`` are shaped as ``lib/canvas/live_events.rb`` of
canvas-lms builds them today (each names the file and commit it follows), with values at Canvas's
own limits. Each is ingested with the real CLI; every body value must come back from its column,
and nothing may be logged as undefined, truncated or coerced.
"""

from __future__ import annotations

import json
import shutil
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import MetaData, Table, create_engine, func, select

from ledbelly.cli import main
from ledbelly.db.engine import normalize_url
from ledbelly.parsers import canvas_raw
from ledbelly.schema.model import Catalog, ColumnDef, TableDef, resolved_source, table_name_for

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).resolve().parent / "fixtures" / "canvas_today"
QUIET_LOGS = ("ddl-undefined.log", "sql-truncations.log", "data-coercions.log")


def _fixtures() -> list[Path]:
    return sorted(FIXTURES.glob("*.json"))


def canvas_schemas(tmp_path: Path) -> Path:
    """A copy of this checkout's Canvas raw and custom schemas (not the Caliper ones, which
    other work may be changing): this test is about Canvas raw events."""
    schema_dir = tmp_path / "schemas"
    schema_dir.mkdir()
    for part in ("canvas", "custom"):
        shutil.copytree(ROOT / "schemas" / part, schema_dir / part)
    return schema_dir


def ingest_file(url: str, log_dir: Path, path: Path, schema_dir: Path) -> Result:
    """Run ``ledbelly ingest --create-missing`` on one file."""
    return CliRunner().invoke(
        main,
        [
            "ingest",
            "--db",
            url,
            "--log-dir",
            str(log_dir),
            "--schemas",
            str(schema_dir),
            "--create-missing",
            str(path),
        ],
        catch_exceptions=False,
    )


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
        return int(value)
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
    doc = json.loads(fixture.read_text(encoding="utf-8"))
    payload: dict[str, Any] = doc["payload"]
    assert payload["metadata"]["event_name"] == doc["event_name"]
    schema_dir = canvas_schemas(tmp_path)
    catalog = Catalog.load(schema_dir)
    table_def = catalog.tables[table_name_for("canvas", doc["event_name"])]

    event_file = tmp_path / f"{fixture.stem}.json"
    event_file.write_text(json.dumps(payload), encoding="utf-8")
    log_dir = tmp_path / "log"
    result = ingest_file(db_url, log_dir, event_file, schema_dir)
    assert result.exit_code == 0, result.output

    for name in QUIET_LOGS:
        log = log_dir / name
        assert not log.exists() or not log.read_text().strip(), f"{name}:\n{log.read_text()}"

    keep = frozenset(resolved_source(table_def, c) for c in table_def.data_columns if c.json)
    flat = canvas_raw.flatten(payload, keep)
    engine = create_engine(normalize_url(db_url))
    try:
        with engine.connect() as conn:
            table = Table(table_def.name, MetaData(), autoload_with=conn)
            rows = conn.execute(select(table)).mappings().all()
            assert len(rows) == 1, f"{len(rows)} rows in {table_def.name}"
            row = rows[0]
            unknown = Table("ledbelly_unknown_events", MetaData(), autoload_with=conn)
            assert conn.execute(select(func.count()).select_from(unknown)).scalar_one() == 0
    finally:
        engine.dispose()

    for key, sent in flat.items():
        if sent is None:
            continue
        col = _column_for(table_def, key)
        assert col is not None, f"{table_def.name}: no column takes {key}"
        assert _same(col, row[col.name], sent), (
            f"{table_def.name}.{col.name}: sent {sent!r}, stored {row[col.name]!r}"
        )
