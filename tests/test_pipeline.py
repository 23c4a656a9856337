"""Nothing lost, nothing twice: the ledger, unknown events and dead letters, on every database."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import func, select, text

from conftest import canvas_event, engine_for, sqs_message
from helpers import count, ingest_all
from ledbelly.message import Message


def _good(i: int) -> Message:
    return sqs_message(
        f"good-{i}",
        "asset_accessed",
        canvas_event(asset_id=str(2107 * 10**13 + i), asset_name=f"page {i}"),
    )


def test_ingesting_twice_changes_nothing(db_url: str, make_pipeline: Any) -> None:
    pipeline = make_pipeline(db_url)
    messages = [_good(i) for i in range(30)]
    first = ingest_all(pipeline, messages)
    assert first.rows["canvas"] == 30
    second = ingest_all(pipeline, [_good(i) for i in range(30)])
    assert second.duplicates == 30 and second.rows["canvas"] == 0
    assert count(db_url, "live_asset_accessed") == 30
    assert count(db_url, "live_stream") == 30
    assert count(db_url, "ledbelly_messages") == 30


def test_duplicates_inside_one_batch_insert_once(db_url: str, make_pipeline: Any) -> None:
    pipeline = make_pipeline(db_url)
    stats = ingest_all(pipeline, [_good(1), _good(1), _good(2)])
    assert stats.duplicates == 1
    assert count(db_url, "live_asset_accessed") == 2


MALFORMED: list[tuple[str, str, dict[str, str]]] = [
    ("not-json", "{this is not json", {"event_name": "asset_accessed"}),
    ("array-body", "[1, 2, 3]", {"event_name": "asset_accessed"}),
    ("string-body", '"hello"', {}),
    (
        "body-not-object",
        json.dumps({"metadata": {"event_name": "asset_accessed"}, "body": [1, 2]}),
        {},
    ),
    ("no-metadata", json.dumps({"body": {"asset_id": "1"}}), {"event_name": "asset_accessed"}),
    (
        "caliper-no-data",
        json.dumps({"sensor": "x", "dataVersion": "v", "data": []}),
        {"event_name": "logged_in"},
    ),
]


def test_malformed_messages_become_dead_letters(db_url: str, make_pipeline: Any) -> None:
    pipeline = make_pipeline(db_url)
    bad = [Message(mid, body, attrs) for mid, body, attrs in MALFORMED]
    stats = ingest_all(pipeline, [_good(1), *bad, _good(2)])
    assert stats.messages == len(bad) + 2
    assert stats.dead_letters == len(bad)
    assert stats.rows["canvas"] == 2
    assert count(db_url, "ledbelly_dead_letters") == len(bad)
    assert count(db_url, "ledbelly_messages", "WHERE outcome = 'dead_letter'") == len(bad)
    recovery = (pipeline.settings.log_dir / "sql-recovery.jsonl").read_text().splitlines()
    assert {json.loads(line)["MessageId"] for line in recovery} == {m.message_id for m in bad}
    errors = (pipeline.settings.log_dir / "sql-errors.log").read_text()
    assert "invalid JSON" in errors and "not an object" in errors


def test_hostile_event_name_is_an_unknown_event(db_url: str, make_pipeline: Any) -> None:
    pipeline = make_pipeline(db_url)
    name = "x'; DROP TABLE ledbelly_messages; --\"`]"
    payload = canvas_event(name)
    stats = ingest_all(pipeline, [sqs_message("hostile", name, payload)])
    assert stats.unknown == 1
    engine = engine_for(db_url)
    with engine.connect() as conn:
        stored = conn.execute(
            text("SELECT event_name, raw_body FROM ledbelly_unknown_events")
        ).one()
    engine.dispose()
    assert stored[0] == name
    assert json.loads(stored[1]) == payload
    assert count(db_url, "ledbelly_messages") == 1


def test_values_that_do_not_fit_still_land(db_url: str, make_pipeline: Any) -> None:
    pipeline = make_pipeline(db_url)
    huge = "é" * 300_000
    payload = canvas_event(
        asset_id="99999999999999999999999",
        asset_name=huge,
        asset_type="bad\ud800surrogate\x00nul",
        category="x" * 100,
    )
    stats = ingest_all(pipeline, [sqs_message("odd", "asset_accessed", payload)])
    assert stats.rows["canvas"] == 1 and stats.dead_letters == 0
    engine = engine_for(db_url)
    with engine.connect() as conn:
        row = conn.execute(
            text("SELECT asset_id, asset_name, asset_type, category FROM live_asset_accessed")
        ).one()
    engine.dispose()
    assert row[0] is None  # overflows bigint: NULL, logged
    assert row[1] == "é" * 2000  # trimmed to the column, by characters
    assert row[2] == "bad\ufffdsurrogatenul"
    assert row[3] == "x" * 24
    truncations = (pipeline.settings.log_dir / "sql-truncations.log").read_text()
    assert "live_asset_accessed.asset_name supplied 300000, expecting 2000" in truncations
    assert "live_asset_accessed.category supplied 100, expecting 24" in truncations
    coercions = (pipeline.settings.log_dir / "data-coercions.log").read_text()
    assert "live_asset_accessed.asset_id" in coercions


def test_lone_surrogate_in_json_text_is_accounted(db_url: str, make_pipeline: Any) -> None:
    pipeline = make_pipeline(db_url)
    body = json.dumps(canvas_event(asset_name="a")).replace('"a"', '"\\udc80 lone"')
    stats = ingest_all(pipeline, [Message("surrogate", body, {"event_name": "asset_accessed"})])
    assert stats.rows["canvas"] == 1


def test_a_row_the_database_refuses_does_not_take_its_batch_down(
    db_url: str, make_pipeline: Any
) -> None:
    pipeline = make_pipeline(db_url)
    ingest_all(pipeline, [_good(0)])  # creates the table
    engine = engine_for(db_url)
    # A constraint ledbelly does not know about makes the database refuse one row.
    with engine.begin() as conn:
        conn.execute(text("CREATE UNIQUE INDEX ux_asset_name ON live_asset_accessed (asset_id)"))
    engine.dispose()
    clash = sqs_message(
        "clash", "asset_accessed", canvas_event(asset_id=str(2107 * 10**13 + 0), asset_name="again")
    )
    stats = ingest_all(pipeline, [_good(1), clash, _good(2), _good(3)])
    assert stats.rows["canvas"] == 3
    assert stats.dead_letters == 1
    assert count(db_url, "live_asset_accessed") == 4
    assert count(db_url, "ledbelly_dead_letters", "WHERE message_id = 'clash'") == 1
    recovery_sql = (pipeline.settings.log_dir / "sql-recovery.sql").read_text()
    assert "INSERT INTO live_asset_accessed" in recovery_sql


def test_unknown_events_are_stored_whole(db_url: str, make_pipeline: Any) -> None:
    pipeline = make_pipeline(db_url)
    payload = canvas_event("brand_new_event", thing="x")
    ingest_all(
        pipeline, [sqs_message("new", "brand_new_event", payload, "2026-09-01T14:03:07.150Z")]
    )
    engine = engine_for(db_url)
    with engine.connect() as conn:
        from sqlalchemy import MetaData, Table

        t = Table("ledbelly_unknown_events", MetaData(), autoload_with=conn)
        row = conn.execute(select(t)).mappings().one()
        assert conn.execute(select(func.count()).select_from(t)).scalar_one() == 1
    engine.dispose()
    assert row["event_name"] == "brand_new_event" and row["format"] == "canvas"
    assert row["message_id"] == "new"
    assert row["event_time"].isoformat() == "2026-09-01T14:03:07.150000"


def test_times_keep_milliseconds_and_ids_are_64_bit(db_url: str, make_pipeline: Any) -> None:
    pipeline = make_pipeline(db_url)
    ingest_all(pipeline, [_good(7)])
    engine = engine_for(db_url)
    with engine.connect() as conn:
        from sqlalchemy import MetaData, Table

        t = Table("live_asset_accessed", MetaData(), autoload_with=conn)
        row = conn.execute(
            select(t.c.event_time, t.c.asset_id, t.c.user_id_meta, t.c.event_time_local)
        ).one()
    engine.dispose()
    assert row[0].microsecond == 150000
    assert row[1] == 2107 * 10**13 + 7
    assert row[2] == 21070000000000001
    assert row[3] is not None


def test_live_stream_can_be_switched_off(sqlite_url: str, make_pipeline: Any) -> None:
    pipeline = make_pipeline(sqlite_url, live_stream=False)
    ingest_all(pipeline, [_good(1)])
    assert count(sqlite_url, "live_asset_accessed") == 1
    assert count(sqlite_url, "live_stream") == 0  # created with every table, never written


def test_bare_events_are_keyed_by_their_hash(
    sqlite_url: str, make_pipeline: Any, tmp_path: Any
) -> None:
    from ledbelly.sources.files import read_path

    path = tmp_path / "events.jsonl"
    path.write_text("\n".join(json.dumps(canvas_event(asset_id=str(i))) for i in range(5)))
    pipeline = make_pipeline(sqlite_url)
    assert ingest_all(pipeline, read_path(str(path))).rows["canvas"] == 5
    assert ingest_all(pipeline, read_path(str(path))).duplicates == 5
    assert count(sqlite_url, "live_asset_accessed") == 5


def test_trims_are_logged_for_the_event_table_and_live_stream(
    sqlite_url: str, make_pipeline: Any
) -> None:
    pipeline = make_pipeline(sqlite_url)
    payload = canvas_event()
    payload["metadata"]["session_id"] = "f" * 50  # 32 in both tables
    payload["metadata"]["user_agent"] = "Mozilla/5.0 " + "x" * 1000  # text: never cut
    ingest_all(pipeline, [sqs_message("long-session", "asset_accessed", payload)])
    log = (pipeline.settings.log_dir / "sql-truncations.log").read_text()
    assert "live_asset_accessed.session_id supplied 50, expecting 32" in log
    assert "live_stream.session_id supplied 50, expecting 32" in log
    assert "user_agent" not in log
    engine = engine_for(sqlite_url)
    with engine.connect() as conn:
        stream = conn.execute(text("SELECT user_agent, session_id FROM live_stream")).one()
    engine.dispose()
    assert stream[0] == "Mozilla/5.0 " + "x" * 1000 and stream[1] == "f" * 32


def test_a_bug_on_one_message_makes_a_dead_letter_not_a_stuck_queue(
    sqlite_url: str, make_pipeline: Any
) -> None:
    pipeline = make_pipeline(sqlite_url)
    plan = pipeline.processor.plan(pipeline.catalog.tables["live_asset_accessed"])
    real = plan.build

    def broken(flat: Any, *args: Any) -> Any:
        if flat.get("body.asset_name") == "boom":
            raise KeyError("a bug")
        return real(flat, *args)

    plan.build = broken
    boom = sqs_message("boom", "asset_accessed", canvas_event(asset_name="boom"))
    stats = ingest_all(pipeline, [_good(1), boom, _good(2)])
    assert stats.rows["canvas"] == 2 and stats.dead_letters == 1
    errors = (pipeline.settings.log_dir / "sql-errors.log").read_text()
    assert "internal error: KeyError" in errors
