"""Helpers the tests share: reading a database, waiting on a condition, running ingest."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from click.testing import CliRunner, Result
from sqlalchemy import text

from conftest import SCHEMAS, engine_for
from ledbelly.cli import main
from ledbelly.ingest.consume import ingest
from ledbelly.message import Message
from ledbelly.ops.stats import Stats
from ledbelly.pipeline import Pipeline
from ledbelly.schema.model import ColumnDef, TableDef
from ledbelly.sources.files import IterSource


def scalar(url: str, sql: str, missing: int | None = None) -> int:
    """One integer from ``sql``; ``missing`` instead when it fails (a table not there yet)."""
    engine = engine_for(url)
    try:
        with engine.connect() as conn:
            return int(conn.execute(text(sql)).scalar_one())
    except Exception:
        if missing is None:
            raise
        return missing
    finally:
        engine.dispose()


def count(url: str, table: str, where: str = "") -> int:
    return scalar(url, f"SELECT COUNT(*) FROM {table} {where}")


def wait_for(
    predicate: Callable[[], bool],
    timeout: float = 30,
    what: str = "a condition",
    every: float = 0.05,
) -> None:
    """For what only the outside world shows (a queue's depth, another process's rows)."""
    until = time.monotonic() + timeout
    while time.monotonic() < until:
        if predicate():
            return
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def ingest_all(pipeline: Pipeline, messages: Iterable[Message]) -> Stats:
    """``ingest`` of a list of messages, as ``ledbelly ingest`` reads a file."""
    return ingest(pipeline, IterSource(messages))


# The log files that must stay empty when an event lands whole.
QUIET_LOGS = ("ddl-undefined.log", "sql-truncations.log", "data-coercions.log")


def ingest_file(
    url: str, log_dir: Path, path: Path, schema_dir: Path = SCHEMAS, create_missing: bool = True
) -> Result:
    """``ledbelly ingest`` of one file through the real CLI."""
    args = ["ingest", "--db", url, "--log-dir", str(log_dir), "--schemas", str(schema_dir)]
    args.append("--create-missing" if create_missing else "--no-create-missing")
    return CliRunner().invoke(main, [*args, str(path)], catch_exceptions=False)


def assert_quiet_logs(log_dir: Path) -> None:
    """Nothing was logged as undefined, truncated or coerced."""
    for name in QUIET_LOGS:
        log = log_dir / name
        assert not log.exists() or not log.read_text().strip(), f"{name}:\n{log.read_text()}"


def fixture_line(doc: dict[str, Any], message_id: str) -> str:
    """A ``tests/fixtures/*_today`` document as one SQS message line for ``ledbelly ingest``."""
    return json.dumps(
        {
            "MessageId": message_id,
            "Body": json.dumps(doc["payload"]),
            "MessageAttributes": {
                "event_name": {"StringValue": doc["event_name"], "DataType": "String"}
            },
        }
    )


LEDGER_COUNT = "SELECT COUNT(*) FROM ledbelly_messages"


def simulated(n: int, seed: int) -> list[Message]:
    """``n`` realistic messages from the simulator, as an SQS source would hand them over."""
    from ledbelly.simulate import generate_messages

    return [
        Message(
            m["MessageId"],
            m["Body"],
            {k: v["StringValue"] for k, v in m["MessageAttributes"].items()},
        )
        for m in generate_messages(n, seed=seed, fmt="mixed")
    ]


class SlowSink:
    """Wraps a sink so each write waits: messages stay held (in memory, invisible) that long."""

    def __init__(self, sink: Any, delay: float) -> None:
        self._sink, self._delay = sink, delay

    def write(self, outcomes: Any, *args: Any, **kwargs: Any) -> Any:
        time.sleep(self._delay)
        return self._sink.write(outcomes, *args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sink, name)


# One column of each kind the row builders treat apart: the property tests build rows
# for it with every builder and compare them.
BUILDER_TABLE = TableDef(
    "live_props",
    "canvas",
    (
        ColumnDef("id", "bigint", primary_key=True),
        ColumnDef("a_id", "bigint", source="body.a_id"),
        ColumnDef("n", "int", source="body.n"),
        ColumnDef("short", "string", size=8, source="body.short"),
        ColumnDef("wide", "string", size=6, multibyte=True, source="body.wide"),
        ColumnDef("note", "text", source="body.note"),
        ColumnDef("score", "float", source="body.score"),
        ColumnDef("flag", "boolean", source="body.flag"),
        ColumnDef("at", "datetime", source="body.at"),
        ColumnDef("who", "string", size=255, source="body.who"),
        ColumnDef("who_canvas_id", "bigint", source="body.who", urn_id=True),
    ),
)
