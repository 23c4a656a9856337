"""The morning report through the real CLI: ``logs summary``, ``logs reset``, ``stats``.

Log files are written by the real ``EventLogs`` or by a real ``ledbelly ingest`` of
simulated events plus a few made to trim, coerce, miss a column, be unknown or be
refused; databases are the real SQLite, PostgreSQL and MariaDB of ``conftest``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from click.testing import CliRunner, Result
from sqlalchemy import text

from conftest import canvas_event, engine_for
from ledbelly.cli import main
from ledbelly.ops.logs import (
    COERCIONS,
    ERRORS,
    RECOVERY_JSONL,
    RECOVERY_SQL,
    TRUNCATIONS,
    EventLogs,
)

# ----- helpers (shareable) ---------------------------------------------------------------


def run_cli(*args: str, input: str | None = None) -> Result:
    """``ledbelly ARGS`` in this process; fails the test on a non-zero exit."""
    result = CliRunner().invoke(main, list(args), input=input, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result


def sqs_line(message_id: str, event_name: str, body: Any) -> str:
    """One JSON line in the SQS form ``ingest`` reads (as boto3's receive_message gives)."""
    text_body = body if isinstance(body, str) else json.dumps(body)
    return json.dumps(
        {
            "MessageId": message_id,
            "Body": text_body,
            "MessageAttributes": {"event_name": {"DataType": "String", "StringValue": event_name}},
        }
    )


def hand_made_lines() -> list[str]:
    """Events that trim, coerce, carry an unknown field, have no table, or do not parse."""

    def accessed(**body: Any) -> dict[str, Any]:
        event = canvas_event()
        event["body"].update(body)
        return event

    return [
        sqs_line("hand-trim-30", "asset_accessed", accessed(asset_type="t" * 30)),
        sqs_line("hand-trim-41", "asset_accessed", accessed(asset_type="u" * 41)),
        sqs_line("hand-coerce", "asset_accessed", accessed(asset_id="not-a-number")),
        sqs_line("hand-undefined", "asset_accessed", accessed(brand_new_field="hello")),
        sqs_line("hand-unknown-1", "totally_new_event", canvas_event("totally_new_event")),
        sqs_line("hand-unknown-2", "totally_new_event", canvas_event("totally_new_event")),
        sqs_line("hand-dead-1", "asset_accessed", "not json {"),
        sqs_line("hand-dead-2", "grade_change", "[still not json"),
    ]


def ingest_simulated(tmp_path: Path, db_url: str, extra: list[str] | None = None) -> Path:
    """``simulate -n 500 --seed 3`` plus ``extra`` lines, ingested; returns the log dir."""
    simulated = run_cli("simulate", "-n", "500", "--seed", "3").stdout
    events = tmp_path / "events.jsonl"
    events.write_text(simulated + "".join(line + "\n" for line in extra or []), encoding="utf-8")
    log_dir = tmp_path / "log"
    run_cli("ingest", "--db", db_url, "--log-dir", str(log_dir), "--create-missing", str(events))
    return log_dir


def real_counts(db_url: str, tables: list[str]) -> dict[str, int]:
    engine = engine_for(db_url)
    try:
        with engine.connect() as conn:
            return {
                t: int(conn.execute(text(f"SELECT COUNT(*) FROM {t}")).scalar_one()) for t in tables
            }
    finally:
        engine.dispose()


# ----- logs summary ----------------------------------------------------------------------


def test_summary_reduces_every_log_and_its_rotated_copies(tmp_path: Path) -> None:
    log_dir = tmp_path / "log"
    # Small files: the truncation lines rotate into .1, .2 ... and must still be counted.
    logs = EventLogs(log_dir, max_bytes=200, backups=5)
    try:
        logs.truncation("live_asset_accessed", "asset_type", 30, 24)
        logs.truncation("live_asset_accessed", "asset_type", 41, 24)
        logs.truncation("live_asset_accessed", "asset_type", 25, 24)
        logs.truncation("live_stream", "user_agent", 900, 512)
        logs.undefined("asset_accessed", "live_asset_accessed", "brand_new_field", "hello")
        logs.undefined("asset_accessed", "live_asset_accessed", "brand_new_field", "again")
        logs.undefined(
            "grade_change",
            "live_grade_change",
            "late_policy_status (column "
            "late_policy_status is in the schema but not in the database: run "
            "alter-tables)",
            "missing",
        )
        logs.coercion("live_course_created", "created_at", "019-11-01T19:11:01.163Z", "not a date")
        logs.coercion("live_course_created", "created_at", "yesterday", "not a date")
        for n, event in enumerate(("asset_accessed", "quiz_submitted", "asset_accessed")):
            logs.error(
                event, "not JSON: Expecting value: line 1 column 1 (char 0)", None, "not json"
            )
            logs.recovery({"MessageId": f"m{n}", "Body": "not json"}, None)
        logs.error(
            "grade_change",
            "database refused the row: (psycopg2.errors.Numeric"
            "ValueOutOfRange) integer out of range 2107000000000012345\n"
            "[SQL: INSERT ...]",
            "INSERT ...",
            {"live_grade_change": {}},
        )
        logs.recovery({"MessageId": "m9", "Body": "{}"}, "INSERT ...")
        logs.schema_change("added column live_asset_accessed.brand_new_field varchar(16)")
    finally:
        logs.close()
    assert (log_dir / (TRUNCATIONS + ".1")).is_file(), "the test needs rotated copies"

    out = run_cli("logs", "summary", "--log-dir", str(log_dir)).stdout.splitlines()
    d = str(log_dir)
    files = len(list(log_dir.iterdir()))
    assert out == [
        f"log summary of {d}: {files} files read",
        "truncations: 4 values cut in 2 columns",
        f"  live_asset_accessed.asset_type: 3 cut, longest 41, column holds 24; fix: ledbelly "
        f"schema suggest --log-dir {d} (then schema apply, ledbelly alter-tables --apply)",
        f"  live_stream.user_agent: 1 cut, longest 900, column holds 512; fix: ledbelly schema "
        f"suggest --log-dir {d} (then schema apply, ledbelly alter-tables --apply)",
        "undefined fields: 2 fields in 2 event types",
        "  asset_accessed (live_asset_accessed): 1 field",
        f'    brand_new_field = "again" (seen in 2 runs); fix: ledbelly schema suggest '
        f"--log-dir {d}",
        "  grade_change (live_grade_change): 1 field",
        '    late_policy_status = "missing" (seen in 1 run); column late_policy_status is in '
        "schemas/ but not in the database; fix: ledbelly alter-tables --apply",
        "coercions: 2 values stored as NULL in 1 column",
        '  live_course_created.created_at: 2 NULL (not a date), e.g. "yesterday"; fix: if the '
        "column's type is wrong, change it in schemas/ and run ledbelly alter-tables --apply",
        "unknown event types: not in the logs; add --db URL to count the stored ones",
        "dead letters: 4 in sql-errors.log, 4 replayable in sql-recovery.jsonl",
        "  3 x not JSON: Expecting value: line N column N (char N) (asset_accessed 2, "
        "quiz_submitted 1); fix the cause, then replay: ledbelly replay --dead-letters",
        "  1 x database refused the row: (psycopg2.errors.NumericValueOutOfRange) integer out "
        "of range N (grade_change 1); fix the cause, then replay: "
        "ledbelly replay --dead-letters",
        "schema changes: 1 made by schema evolution (schema-changes.log); review "
        f"schemas.local/ with ledbelly schema suggest --log-dir {d}",
    ]


def test_summary_of_a_real_ingest_names_each_fix(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'x.db'}"
    log_dir = ingest_simulated(tmp_path, db, hand_made_lines())
    out = run_cli("logs", "summary", "--log-dir", str(log_dir), "--db", db).stdout
    d = str(log_dir)
    suggest = f"fix: ledbelly schema suggest --log-dir {d}"
    replay = "fix the cause, then replay: ledbelly replay --dead-letters"
    assert out.splitlines() == [
        f"log summary of {d}: 6 files read",
        "truncations: 4 values cut in 2 columns",
        f"  live_asset_accessed.asset_type: 2 cut, longest 41, column holds 24; {suggest} "
        "(then schema apply, ledbelly alter-tables --apply)",
        f"  live_stream.asset_type: 2 cut, longest 41, column holds 24; {suggest} "
        "(then schema apply, ledbelly alter-tables --apply)",
        "undefined fields: 5 fields in 3 event types",
        "  asset_accessed (live_asset_accessed): 1 field",
        f'    body.brand_new_field = "hello" (seen in 1 run); {suggest}',
        "  enrollment_created (ims_enrollment_created): 2 fields",
        '    group_suborganizationof_id = "urn:instructure:canvas:course:21070000000002048" '
        f"(seen in 1 run); {suggest}",
        f'    group_suborganizationof_type = "CourseOffering" (seen in 1 run); {suggest}',
        "  enrollment_updated (ims_enrollment_updated): 2 fields",
        '    group_suborganizationof_id = "urn:instructure:canvas:course:21070000000002256" '
        f"(seen in 1 run); {suggest}",
        f'    group_suborganizationof_type = "CourseOffering" (seen in 1 run); {suggest}',
        "coercions: 2 values stored as NULL in 2 columns",
        "  live_asset_accessed.asset_id: 1 NULL (not an integer: 'not-a-number'), e.g. "
        '"not-a-number"; fix: if the column\'s type is wrong, change it in schemas/ and run '
        "ledbelly alter-tables --apply",
        "  live_stream.asset_id: 1 NULL (not an integer: 'not-a-number'), e.g. "
        '"not-a-number"; fix: if the column\'s type is wrong, change it in schemas/ and run '
        "ledbelly alter-tables --apply",
        "key collisions: 2 keys where two payload paths flatten to one column",
        "  ims_enrollment_created.object_type: kept object.type, dropped "
        "object.extensions.com.instructure.canvas.type; fix: give one path its own column in "
        "schemas/ (source:)",
        "  ims_enrollment_updated.object_type: kept object.type, dropped "
        "object.extensions.com.instructure.canvas.type; fix: give one path its own column in "
        "schemas/ (source:)",
        "unknown event types: 2 events of 1 type stored in ledbelly_unknown_events",
        f"  totally_new_event: 2; {suggest} (proposes a table for it; then schema apply, "
        "ledbelly alter-tables --apply)",
        "dead letters: 2 in sql-errors.log, 2 replayable in sql-recovery.jsonl",
        "  2 x invalid JSON: Expecting value: line N column N (char N) (asset_accessed 1, "
        f"grade_change 1); {replay}",
    ]


# ----- logs reset ------------------------------------------------------------------------


def test_reset_empties_files_the_daemon_holds_open(tmp_path: Path) -> None:
    log_dir = tmp_path / "log"
    logs = EventLogs(log_dir, max_bytes=300, backups=5)  # stays open, as the daemon's do
    try:
        for n in range(20):
            logs.truncation("live_stream", "user_agent", 600 + n, 512)
        logs.coercion("live_course_created", "created_at", "yesterday", "not a date")
        logs.error("asset_accessed", "invalid JSON", None, "x")
        logs.recovery({"MessageId": "m1", "Body": "x"}, None)
        backups = sorted(
            (p.name for p in log_dir.glob(TRUNCATIONS + ".*")),
            key=lambda name: -int(name.rsplit(".", 1)[1]),
        )  # oldest first
        assert len(backups) >= 2, "the test needs rotated copies"
        held = sorted(p.name for p in log_dir.iterdir() if not p.suffix[1:].isdigit())
        assert held == sorted([TRUNCATIONS, COERCIONS, ERRORS, RECOVERY_JSONL, RECOVERY_SQL])

        out = run_cli("logs", "reset", "--log-dir", str(log_dir)).stdout.splitlines()

        assert sorted(p.name for p in log_dir.iterdir()) == held  # the copies are gone
        assert all(p.stat().st_size == 0 for p in log_dir.iterdir())
        assert [line for line in out if line.startswith("removed ")] == [
            f"removed {log_dir / name}" for name in backups
        ]
        assert out[-1].startswith("freed ") and out[-1].endswith(" bytes")
        assert (
            run_cli("logs", "summary", "--log-dir", str(log_dir)).stdout.splitlines()[1]
            == "truncations: 0 values cut in 0 columns"
        )

        # The open handler's next line lands at the start of the emptied file, no hole.
        logs.truncation("live_stream", "user_agent", 700, 512)
        logs.coercion("live_course_created", "created_at", "today", "not a date")
    finally:
        logs.close()
    lines = (log_dir / TRUNCATIONS).read_text(encoding="utf-8").splitlines()
    assert len(lines) == 1 and lines[0].endswith(
        " live_stream.user_agent supplied 700, expecting 512"
    )
    assert (log_dir / COERCIONS).read_text(encoding="utf-8").count("\n") == 1
    assert "\0" not in (log_dir / TRUNCATIONS).read_text(encoding="utf-8")
    assert not list(log_dir.glob(TRUNCATIONS + ".*"))
    summary = run_cli("logs", "summary", "--log-dir", str(log_dir)).stdout.splitlines()
    assert summary[1:3] == [
        "truncations: 1 value cut in 1 column",
        f"  live_stream.user_agent: 1 cut, longest 700, column holds 512; fix: ledbelly "
        f"schema suggest --log-dir {log_dir} (then schema apply, ledbelly alter-tables "
        "--apply)",
    ]


def test_reset_of_an_empty_or_missing_directory_says_so(tmp_path: Path) -> None:
    out = run_cli("logs", "reset", "--log-dir", str(tmp_path / "nothing")).stdout
    assert out == "no log files to reset\n"


# ----- stats -----------------------------------------------------------------------------


def test_stats_counts_rows_and_waiting_messages(db_url: str, tmp_path: Path) -> None:
    ingest_simulated(tmp_path, db_url, hand_made_lines())
    report = json.loads(run_cli("stats", "--db", db_url, "--json").stdout)
    tables = {t["name"]: t for t in report["tables"]}
    with_rows = [name for name, t in tables.items() if t["newest"] is not None]
    real = real_counts(db_url, sorted(tables))
    assert real["ledbelly_messages"] == 508
    assert {n for n, c in real.items() if c} == set(with_rows)
    for name, count in real.items():
        figure = tables[name]["rows"]
        if report["dialect"] == "sqlite":
            assert figure == count, name
        else:  # the statistics' estimates
            assert tables[name]["estimated"]
            assert abs(figure - count) <= max(3, count // 5), (name, figure, count)
    assert report["dead_letters"] == {"asset_accessed": 1, "grade_change": 1}
    assert report["unknown_events"] == {"totally_new_event": 2}
    assert len(report["per_minute"]) == 60
    assert sum(report["per_minute"]) == 508  # all processed within the hour
    assert tables["live_asset_accessed"]["newest_column"] == "event_time"
    assert tables["ims_asset_accessed"]["newest_column"] == "eventtime"
    assert tables["ledbelly_messages"]["newest_column"] == "processed_at"

    lines = run_cli("stats", "--db", db_url).stdout.splitlines()
    ledger = next(line for line in lines if line.startswith("ledbelly_messages "))
    assert ledger.split()[1].lstrip("~").replace(",", "") == str(
        tables["ledbelly_messages"]["rows"]
    )
    assert any(line.startswith("~ estimate: ") for line in lines)
    chart = next(line for line in lines if line.startswith("  |"))
    bars = chart[3:-1]  # one column a minute, the newest last
    assert len(chart) == 2 + 62 and chart.endswith("|") and len(bars) == 60
    # The ingest ran in the last minute or two (a run may cross a minute's boundary).
    assert bars[-2:].strip() and not bars[:-2].strip(), chart
    i = lines.index("dead letters waiting: 2")
    assert lines[i + 1 : i + 4] == [
        "  asset_accessed: 1",
        "  grade_change: 1",
        "  replay them after the fix: ledbelly replay --dead-letters",
    ]
    assert "unknown events waiting: 2" in lines
    assert "  totally_new_event: 2" in lines
    assert lines[-1].startswith("ledger (ledbelly_messages): ")


def test_stats_exact_counts_on_sqlite(sqlite_url: str, tmp_path: Path) -> None:
    ingest_simulated(tmp_path, sqlite_url)
    report = json.loads(run_cli("stats", "--db", sqlite_url, "--json", "--exact").stdout)
    tables = {t["name"]: t for t in report["tables"]}
    assert not any(t["estimated"] for t in tables.values())
    assert real_counts(sqlite_url, sorted(tables)) == {n: t["rows"] for n, t in tables.items()}
    assert report["count_method"] == "COUNT(*) per table (exact)"


def test_summary_reads_key_collisions(tmp_path: Path) -> None:
    logs = EventLogs(tmp_path / "log")
    try:
        for _ in range(2):
            logs.collision("live_asset_accessed", "body.a_b", "body.a_b", ("body.a-b",))
    finally:
        logs.close()
    out = run_cli("logs", "summary", "--log-dir", str(tmp_path / "log")).stdout.splitlines()
    assert "key collisions: 1 key where two payload paths flatten to one column" in out
    assert (
        "  live_asset_accessed.body.a_b: kept body.a_b, dropped body.a-b; "
        "fix: give one path its own column in schemas/ (source:)"
    ) in out
    assert not any("unreadable" in line for line in out)
