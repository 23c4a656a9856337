"""Helpers the tests share: reading a database, waiting on a condition, running ingest."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable

from sqlalchemy import text

from conftest import engine_for
from ledbelly.ingest.consume import ingest
from ledbelly.message import Message
from ledbelly.ops.stats import Stats
from ledbelly.pipeline import Pipeline
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
