"""Processes started together on an empty database all come up, and make each table once.

Two ``ledbelly run`` behind one balancer (or sharing a port) start at the same moment
on a first install: their CREATE TABLEs meet. Here four pipelines prepare one fresh
database at once, from threads released together.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from sqlalchemy import inspect, text

from conftest import SCHEMAS, engine_for
from ledbelly.db.engine import normalize_url
from ledbelly.pipeline import Pipeline, PipelineSettings

STARTERS = 4


def test_pipelines_preparing_one_empty_database_at_once_all_succeed(
    server_db_url: str, tmp_path: Path
) -> None:
    start = threading.Barrier(STARTERS)
    pipelines: list[Pipeline] = []

    def prepare(i: int) -> int:
        pipeline = _pipeline(server_db_url, tmp_path / f"log{i}")
        pipelines.append(pipeline)
        start.wait()
        pipeline.prepare()
        return len(pipeline.catalog)

    try:
        with ThreadPoolExecutor(max_workers=STARTERS) as pool:
            sizes = list(pool.map(prepare, range(STARTERS)))  # re-raises a failed start
    finally:
        for p in pipelines:
            p.close()
    engine = engine_for(server_db_url)
    try:
        with engine.connect() as conn:
            tables = set(inspect(conn).get_table_names())
    finally:
        engine.dispose()
    assert {"ledbelly_messages", "ledbelly_dead_letters", "live_asset_accessed"} <= tables
    assert len(tables) >= sizes[0]


def test_pipelines_upgrading_one_older_database_at_once_all_succeed(
    server_db_url: str, tmp_path: Path
) -> None:
    """An older ledbelly's tables lack replay's ``attempts``: processes started together
    on it add the column once between them (under the same lock), and all come up."""
    first = _pipeline(server_db_url, tmp_path / "log-first")
    first.prepare()
    first.close()
    engine = engine_for(server_db_url)
    try:
        with engine.begin() as conn:
            for table in ("ledbelly_dead_letters", "ledbelly_unknown_events"):
                conn.execute(text(f"ALTER TABLE {table} DROP COLUMN attempts"))
        start = threading.Barrier(STARTERS)
        pipelines = [_pipeline(server_db_url, tmp_path / f"log{i}") for i in range(STARTERS)]

        def prepare(pipeline: Pipeline) -> None:
            start.wait()
            pipeline.prepare()

        try:
            with ThreadPoolExecutor(max_workers=STARTERS) as pool:
                list(pool.map(prepare, pipelines))  # re-raises a failed start
        finally:
            for p in pipelines:
                p.close()
        with engine.connect() as conn:
            for table in ("ledbelly_dead_letters", "ledbelly_unknown_events"):
                names = {c["name"] for c in inspect(conn).get_columns(table)}
                assert "attempts" in names, table
    finally:
        engine.dispose()


def _pipeline(url: str, log_dir: Path) -> Pipeline:
    return Pipeline(
        PipelineSettings(
            url=normalize_url(url), log_dir=log_dir, schema_dir=SCHEMAS, create_missing=True
        )
    )
