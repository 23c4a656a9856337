"""Processes started together on an empty database all come up, and make each table once.

Two ``ledbelly run`` behind one balancer (or sharing a port) start at the same moment
on a first install: their CREATE TABLEs meet. Here four pipelines prepare one fresh
database at once, from threads released together.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from sqlalchemy import inspect

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
        settings = PipelineSettings(
            url=normalize_url(server_db_url),
            log_dir=tmp_path / f"log{i}",
            schema_dir=SCHEMAS,
            create_missing=True,
        )
        pipeline = Pipeline(settings)
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
