"""``ledbelly replay``: parked messages land once their cause is fixed, and only once."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from click.testing import CliRunner, Result
from sqlalchemy import text

from conftest import SCHEMAS, canvas_event, engine_for
from helpers import count, scalar
from ledbelly.cli import main


def _cli(*args: str) -> Result:
    result = CliRunner().invoke(main, list(args))
    assert result.exit_code == 0, result.output
    return result


def _ingest(
    url: str, tmp: Path, schemas: Path, message_id: str, name: str, event: dict[str, object]
) -> None:
    path = tmp / f"{message_id}.jsonl"
    path.write_text(
        json.dumps(
            {
                "MessageId": message_id,
                "Body": json.dumps(event),
                "MessageAttributes": {"event_name": {"StringValue": name, "DataType": "String"}},
            }
        )
        + "\n"
    )
    _cli(
        "ingest",
        "--db",
        url,
        "--schemas",
        str(schemas),
        "--log-dir",
        str(tmp / "log"),
        "--create-missing",
        str(path),
    )


def test_a_dead_letter_replays_once_after_its_column_is_widened(
    db_url: str, tmp_path: Path
) -> None:
    name = "x" * 300
    _ingest(db_url, tmp_path, SCHEMAS, "warmup", "asset_accessed", canvas_event())
    engine = engine_for(db_url)
    with engine.begin() as conn:  # the column as an older, narrower schema made it
        if engine.dialect.name == "sqlite":  # SQLite does not enforce sizes: a trigger does
            conn.execute(
                text(
                    "CREATE TRIGGER narrow BEFORE INSERT ON live_asset_accessed "
                    "WHEN length(NEW.asset_name) > 100 BEGIN SELECT RAISE(ABORT, 'too long'); END"
                )
            )
        elif engine.dialect.name == "postgresql":
            conn.execute(
                text("ALTER TABLE live_asset_accessed ALTER COLUMN asset_name TYPE VARCHAR(100)")
            )
        else:
            conn.execute(text("ALTER TABLE live_asset_accessed MODIFY asset_name VARCHAR(100)"))
    engine.dispose()
    event = canvas_event(asset_id="21070000000000144", asset_type="course", asset_name=name)
    _ingest(db_url, tmp_path, SCHEMAS, "narrow-1", "asset_accessed", event)
    assert count(db_url, "ledbelly_dead_letters", "WHERE message_id = 'narrow-1'") == 1

    still = _cli("replay", "--db", db_url, "--dead-letters", "--log-dir", str(tmp_path / "log"))
    assert "moved 0, stayed 1" in still.output
    assert (
        scalar(db_url, "SELECT attempts FROM ledbelly_dead_letters WHERE message_id = 'narrow-1'")
        == 2
    )

    dry = _cli("replay", "--db", db_url, "--dead-letters", "--dry-run")
    assert "would move 1, would stay 0" in dry.output  # it parses; the database decides later
    assert (
        scalar(db_url, "SELECT attempts FROM ledbelly_dead_letters WHERE message_id = 'narrow-1'")
        == 2
    )  # and nothing was written

    if db_url.startswith("sqlite"):
        engine = engine_for(db_url)
        with engine.begin() as conn:
            conn.execute(text("DROP TRIGGER narrow"))
        engine.dispose()
    else:
        _cli("alter-tables", "--db", db_url, "--apply")
    moved = _cli("replay", "--db", db_url, "--dead-letters", "--log-dir", str(tmp_path / "log"))
    assert "moved 1, stayed 0" in moved.output
    assert count(db_url, "live_asset_accessed", f"WHERE asset_name = '{name}'") == 1
    assert count(db_url, "ledbelly_dead_letters") == 0
    assert (
        scalar(
            db_url,
            "SELECT COUNT(*) FROM ledbelly_messages WHERE message_id = 'narrow-1' "
            "AND outcome = 'inserted'",
        )
        == 1
    )
    again = _cli("replay", "--db", db_url, "--dead-letters")
    assert "moved 0, stayed 0" in again.output
    assert count(db_url, "live_asset_accessed", f"WHERE asset_name = '{name}'") == 1


def test_an_unknown_event_replays_once_after_its_schema_is_added(
    db_url: str, tmp_path: Path
) -> None:
    schemas = tmp_path / "schemas"
    shutil.copytree(SCHEMAS, schemas)
    event = canvas_event("badge_awarded", badge_id="21070000000000009", badge_name="Reader")
    _ingest(db_url, tmp_path, schemas, "badge-1", "badge_awarded", event)
    assert count(db_url, "ledbelly_unknown_events", "WHERE message_id = 'badge-1'") == 1
    patch = tmp_path / "patch.yml"
    _cli(
        "schema", "suggest", "--db", db_url, "--schemas", str(schemas),
        "--log-dir", str(tmp_path / "log"), "--overlay", str(tmp_path / "none"),
        "--output", str(patch),
    )  # fmt: skip
    assert "live_badge_awarded" in patch.read_text()
    _cli("schema", "apply", str(patch), "--schemas", str(schemas))
    for _ in range(2):  # the second replay finds nothing left to move
        _cli(
            "replay",
            "--db",
            db_url,
            "--unknown-events",
            "--schemas",
            str(schemas),
            "--create-missing",
            "--log-dir",
            str(tmp_path / "log"),
        )
    assert count(db_url, "live_badge_awarded", "WHERE badge_id = 21070000000000009") == 1
    assert count(db_url, "ledbelly_unknown_events") == 0
    assert (
        scalar(
            db_url,
            "SELECT COUNT(*) FROM ledbelly_messages WHERE message_id = 'badge-1' "
            "AND outcome = 'inserted'",
        )
        == 1
    )
