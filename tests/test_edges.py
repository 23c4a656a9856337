"""The edges an attacker or a busy operator meets: each test failed on the earlier code."""

from __future__ import annotations

import json
import logging
import stat
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import MetaData, text
from sqlalchemy.dialects import mssql, mysql, postgresql

from conftest import SCHEMAS, canvas_event, engine_for, sqs_message
from helpers import count, ingest_all
from ledbelly.cli import main
from ledbelly.db.sink import recovery_statement
from ledbelly.db.tables import build_table
from ledbelly.message import Message
from ledbelly.ops.logs import EventLogs
from ledbelly.schema.model import Catalog
from ledbelly.sources.files import read_lines


def _event(i: int, **body: Any) -> Message:
    fields = {"asset_id": str(21070000000000100 + i), "asset_type": "course", **body}
    return sqs_message(f"m-{i}", "asset_accessed", canvas_event(**fields))


def test_evolution_in_the_middle_of_a_batch_keeps_every_value(
    sqlite_url: str, make_pipeline: Any, tmp_path: Path
) -> None:
    pipeline = make_pipeline(
        sqlite_url, overlay_dir=tmp_path / "overlay", schema_evolution="add_columns"
    )
    ingest_all(pipeline, [_event(1), _event(2, sparkle="a"), _event(3, sparkle="b")])
    assert count(sqlite_url, "live_asset_accessed", "WHERE sparkle IS NOT NULL") == 2


def _caliper(kind: str, action: str, object_type: str, n: int) -> dict[str, Any]:
    urn = "urn:instructure:canvas"
    return {
        "@context": "http://purl.imsglobal.org/ctx/caliper/v1p1",
        "id": f"urn:uuid:7a3ba9cd-5f0c-4a58-9d8b-00000000000{n}",
        "type": kind,
        "actor": {"id": f"{urn}:user:21070000000000001", "type": "Person"},
        "action": action,
        "object": {"id": f"{urn}:course:2107000000000014{n}", "type": object_type},
        "eventTime": "2026-09-01T14:03:07.150Z",
        "extensions": {"com.instructure.canvas": {"hostname": "lms.example.edu"}},
    }


def test_every_event_of_a_caliper_envelope_lands_and_the_message_counts_once(
    sqlite_url: str, make_pipeline: Any
) -> None:
    envelope = {
        "sensor": "http://lms.example.edu/",
        "sendTime": "2026-09-01T14:03:08.000Z",
        "dataVersion": "http://purl.imsglobal.org/ctx/caliper/v1p1",
        "data": [
            _caliper("NavigationEvent", "NavigatedTo", "DigitalResource", 1),
            _caliper("SessionEvent", "LoggedIn", "SoftwareApplication", 2),
        ],
    }
    pipeline = make_pipeline(sqlite_url)
    stats = ingest_all(pipeline, [sqs_message("two-events", "asset_accessed", envelope)])
    assert stats.messages == 1 and stats.unknown == 0 and stats.dead_letters == 0
    assert count(sqlite_url, "ims_asset_accessed") == 1
    assert count(sqlite_url, "ims_logged_in") == 1
    assert count(sqlite_url, "ledbelly_messages") == 1


def test_an_event_name_cannot_write_yaml_or_forge_log_lines(
    sqlite_url: str, make_pipeline: Any, tmp_path: Path
) -> None:
    overlay = tmp_path / "overlay"
    evil = "evil\nevent: asset_accessed\n#"
    pipeline = make_pipeline(
        sqlite_url, overlay_dir=overlay, schema_evolution="add_columns_and_tables"
    )
    ingest_all(pipeline, [sqs_message("evil", evil, canvas_event(evil, shiny="x"))])
    catalog = Catalog.load(SCHEMAS, overlay)  # the overlay still parses
    made = [t for t in catalog if t.event == evil]
    assert len(made) == 1 and made[0].name == "live_evil_event__asset_accessed__"
    assert catalog.route("canvas", "asset_accessed") == catalog.tables["live_asset_accessed"]
    changes = (tmp_path / "log" / "schema-changes.log").read_text().splitlines()
    assert changes and all(line[:4].isdigit() for line in changes)  # each line a stamp


def test_a_log_line_holds_one_line_whatever_the_payload(tmp_path: Path) -> None:
    logs = EventLogs(tmp_path / "log")
    try:
        logs.coercion("t", "c", "x\n2026-01-01T00:00:00Z forged", "not an integer: 'a\rb'")
        logs.error("evil\n/---evil---", "boom\nforged", "INSERT\n/---x---", {"a": "\ud800"})
    finally:
        logs.close()
    assert len((tmp_path / "log" / "data-coercions.log").read_text().splitlines()) == 1
    block = (tmp_path / "log" / "sql-errors.log").read_text().splitlines()
    assert [line for line in block if line.startswith("/---")] == ["/---evil\\n/---evil------"]


def test_evolution_that_fails_lands_the_row_as_with_evolution_off(
    sqlite_url: str, make_pipeline: Any, tmp_path: Path
) -> None:
    overlay = tmp_path / "overlay"
    overlay.write_text("a file where the overlay directory should be")
    pipeline = make_pipeline(sqlite_url, overlay_dir=overlay, schema_evolution="add_columns")
    stats = ingest_all(pipeline, [_event(1, sparkle="a"), _event(2, sparkle="b")])
    assert stats.dead_letters == 0 and count(sqlite_url, "live_asset_accessed") == 2
    undefined = (tmp_path / "log" / "ddl-undefined.log").read_text()
    assert "body.sparkle" in undefined


def test_a_time_out_of_range_is_a_coercion_not_a_dead_letter(
    sqlite_url: str, make_pipeline: Any, tmp_path: Path
) -> None:
    payload = canvas_event(asset_id="21070000000000144", asset_type="course")
    payload["metadata"]["event_time"] = "0001-01-01T00:30+01:00"
    pipeline = make_pipeline(sqlite_url)
    stats = ingest_all(pipeline, [sqs_message("early", "asset_accessed", payload)])
    assert stats.dead_letters == 0 and count(sqlite_url, "live_asset_accessed") == 1
    assert "out of range" in (tmp_path / "log" / "data-coercions.log").read_text()


def test_long_event_names_make_distinct_tables_within_every_limit(
    sqlite_url: str, make_pipeline: Any, tmp_path: Path
) -> None:
    pipeline = make_pipeline(
        sqlite_url, overlay_dir=tmp_path / "overlay", schema_evolution="add_columns_and_tables"
    )
    names = ["x" * 70 + "_created", "x" * 70 + "_updated"]
    ingest_all(pipeline, [sqs_message(n, n, canvas_event(n, a="1")) for n in names])
    made = [t for t in pipeline.catalog if t.event in names]
    assert len({t.name for t in made}) == 2
    assert all(len(t.name) <= 60 and len(t.columns[0].name) <= 60 for t in made)
    assert all(count(sqlite_url, t.name) == 1 for t in made)


def test_sqlite_commits_reach_the_disk_for_the_daemon(sqlite_url: str, make_pipeline: Any) -> None:
    daemon_side = make_pipeline(sqlite_url)
    ingest_side = make_pipeline(sqlite_url, durable=False)
    for pipeline, level in ((daemon_side, 2), (ingest_side, 1)):  # FULL, NORMAL
        with pipeline.engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == level


def test_files_with_student_data_are_owner_only(tmp_path: Path) -> None:
    events = tmp_path / "e.jsonl"
    events.write_text("not json\n")
    db = tmp_path / "canvas.db"
    result = CliRunner().invoke(
        main, ["ingest", "--db", f"sqlite:///{db}", "--log-dir", str(tmp_path / "log"), str(events)]
    )
    assert result.exit_code == 0, result.output
    for path in (db, tmp_path / "log", tmp_path / "log" / "sql-errors.log"):
        assert stat.S_IMODE(path.stat().st_mode) & 0o077 == 0, path


def test_the_reader_takes_a_bom_a_bare_cr_and_bytes_that_are_not_utf8(tmp_path: Path) -> None:
    first, second = (
        json.dumps(canvas_event(asset_id=str(21070000000000144 + i), asset_type="course"))
        for i in range(2)
    )
    path = tmp_path / "events.jsonl"
    path.write_bytes(
        ("\ufeff" + first + "\n" + second.replace('{"metadata"', '{\r"metadata"', 1) + "\n").encode(
            "utf-8"
        )
        + b"not json \xff\n"  # not UTF-8 either: a dead letter, logged whole
    )
    db = f"sqlite:///{tmp_path / 'x.db'}"
    log_dir = tmp_path / "log"
    result = CliRunner().invoke(main, ["ingest", "--db", db, "--log-dir", str(log_dir), str(path)])
    assert result.exit_code == 0, result.output
    assert count(db, "live_asset_accessed") == 2
    assert count(db, "ledbelly_dead_letters") == 1
    recovery = (log_dir / "sql-recovery.jsonl").read_text(encoding="utf-8").splitlines()
    assert len(recovery) == 1 and json.loads(recovery[0])["Body"] == "not json \udcff"
    assert "/---" in (log_dir / "sql-errors.log").read_text(encoding="utf-8")


def test_lines_read_as_bytes_make_the_messages_lines_read_as_text_make() -> None:
    """The reader hands UTF-8 lines straight to orjson; any line it refuses goes the way
    text goes, so nothing differs but the speed."""
    lines = [
        b'{"metadata": {"event_name": "x"}, "body": {}}\r\n',
        b'  {"Body": "{}", "MessageId": "m-1", "MessageAttributes": {}}  \n',
        b'\xef\xbb\xbf{"metadata": {}}\n',
        b'{"metadata": {"a": "\xff"}}\n',
        b'{"metadata": {"n": 123456789012345678901234567890}}\n',
        b'{"metadata": {"s": "\\ud800"}}\n',
        b"\n",
        b"not json\n",
        b'{"body": {"caf\xc3\xa9": 1}}',
    ]
    as_bytes = list(read_lines(lines))
    as_text = list(read_lines([line.decode("utf-8", "surrogateescape") for line in lines]))
    assert len(as_bytes) == 8

    def seen(m: Message) -> tuple[Any, ...]:
        return m.message_id, m.body, m.attributes, repr(m.payload)

    assert [seen(m) for m in as_bytes] == [seen(m) for m in as_text]


def test_a_renamed_event_is_said_once_per_pair(
    sqlite_url: str, make_pipeline: Any, caplog: pytest.LogCaptureFixture
) -> None:
    pipeline = make_pipeline(sqlite_url)
    messages = [
        sqs_message(f"r-{i}", "asset_accessed", canvas_event("page_viewed", asset_id=str(i)))
        for i in range(3)
    ]
    with caplog.at_level(logging.WARNING, logger="ledbelly"):
        ingest_all(pipeline, messages)
    said = [r for r in caplog.records if "differs from metadata.event_name" in r.getMessage()]
    assert len(said) == 1 and "page_viewed" in said[0].getMessage()
    assert count(sqlite_url, "live_asset_accessed") == 3  # routed by the attribute


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("postgresql", "'https://lms.example.edu/a%20b'"),
        ("mysql", "'https://lms.example.edu/a%20b'"),
        ("mssql", "N'https://lms.example.edu/a%20b'"),
    ],
)
def test_recovery_sql_runs_as_written(name: str, expected: str) -> None:
    dialect = {"postgresql": postgresql, "mysql": mysql, "mssql": mssql}[name].dialect()
    table = build_table(Catalog.load(SCHEMAS).tables["live_asset_accessed"], MetaData())
    sql = recovery_statement(table, {"url_meta": "https://lms.example.edu/a%20b"}, dialect)
    assert expected in sql and "%%" not in sql


def test_recovery_sql_runs_in_postgresql(tmp_path: Path) -> None:
    from conftest import fresh_database_url

    url = fresh_database_url("postgresql", tmp_path)
    engine = engine_for(url)
    table = build_table(Catalog.load(SCHEMAS).tables["live_asset_accessed"], MetaData())
    try:
        with engine.begin() as conn:
            table.create(conn)
            sql = recovery_statement(table, {"url_meta": "50% off: a%20b"}, conn.dialect)
            conn.connection.cursor().execute(sql.rstrip(";"))  # as psql would, no parameters
            assert conn.execute(text("SELECT url_meta FROM live_asset_accessed")).scalar() == (
                "50% off: a%20b"
            )
    finally:
        engine.dispose()
