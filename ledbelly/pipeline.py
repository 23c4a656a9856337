"""Wiring the stages together: settings in, a ready processor and sink out.

Both ``ingest`` and the daemon build their pipeline here, so they behave the same.
"""

from __future__ import annotations

import random
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import URL, Engine

from ledbelly.db import open_engine
from ledbelly.errors import TransientError
from ledbelly.logs import EventLogs
from ledbelly.message import Message
from ledbelly.processor import DEAD_LETTER, INSERTED, UNKNOWN, Outcome, Processor, ProcessorOptions
from ledbelly.schema import Catalog
from ledbelly.sink import Sink, WriteReport


@dataclass(frozen=True)
class PipelineSettings:
    """Everything the parse-and-write stages need, loaded once."""

    url: URL
    log_dir: Path = Path("log")
    schema_dir: Path | None = None
    overlay_dir: Path | None = None
    create_missing: bool | None = None
    live_stream: bool = True
    time_zone: str | None = None
    batch_size: int = 500
    pool_size: int = 5


@dataclass
class Stats:
    """Counts for the summary line and the metrics endpoint."""

    messages: int = 0
    rows: Counter[str] = field(default_factory=Counter)
    tables: Counter[str] = field(default_factory=Counter)
    unknown: int = 0
    dead_letters: int = 0
    duplicates: int = 0
    truncations: int = 0
    undefined: int = 0

    def add(self, report: WriteReport) -> None:
        for o in report.committed:
            self.messages += 1
            if o.kind == INSERTED:
                self.rows[o.format or "?"] += 1
                for name, _ in o.rows:
                    self.tables[name] += 1
            elif o.kind == UNKNOWN:
                self.unknown += 1
            elif o.kind == DEAD_LETTER:
                self.dead_letters += 1
            self.truncations += o.truncations
            self.undefined += o.undefined
        self.messages += len(report.duplicates)
        self.duplicates += len(report.duplicates)


class Pipeline:
    """A processor and a sink over one engine, with the log files they share."""

    def __init__(self, settings: PipelineSettings, engine: Engine | None = None) -> None:
        self.settings = settings
        self.catalog = Catalog.load(settings.schema_dir, settings.overlay_dir)
        self.engine = engine or open_engine(settings.url, settings.pool_size)
        self.logs = EventLogs(settings.log_dir)
        self.sink = Sink(self.engine, self.catalog, self.logs, settings.create_missing)
        self.processor = Processor(
            self.catalog, self.sink.dialect, self.logs, self.sink.live_columns,
            ProcessorOptions(live_stream=settings.live_stream, time_zone=settings.time_zone))

    def prepare(self) -> list[str]:
        return self.sink.prepare()

    def close(self) -> None:
        self.logs.close()
        self.engine.dispose()


def backoff(attempt: int, base: float = 0.5, cap: float = 30.0) -> float:
    """Exponential backoff with full jitter, so many workers do not retry in step."""
    return random.uniform(0, min(cap, base * 2 ** attempt))


def write_with_retry(sink: Sink, outcomes: list[Outcome], attempts: int,
                     sleep: Callable[[float], None] = time.sleep,
                     on_retry: Callable[[TransientError, int], None] | None = None
                     ) -> WriteReport:
    """Write, retrying transient faults; after ``attempts`` the last fault is raised."""
    for attempt in range(attempts):
        try:
            return sink.write(outcomes)
        except TransientError as exc:
            if attempt + 1 >= attempts:
                raise
            if on_retry:
                on_retry(exc, attempt)
            sleep(backoff(attempt))
    raise AssertionError("unreachable")


def ingest(pipeline: Pipeline, messages: Iterable[Message], stats: Stats | None = None,
           progress: Callable[[int], None] | None = None, retries: int = 4) -> Stats:
    """Process and commit ``messages`` in batches; every message ends accounted for."""
    stats = stats or Stats()
    batch: list[Outcome] = []
    size = pipeline.settings.batch_size
    for msg in messages:
        batch.append(pipeline.processor.process(msg))
        if len(batch) >= size:
            stats.add(write_with_retry(pipeline.sink, batch, retries))
            if progress:
                progress(len(batch))
            batch = []
    if batch:
        stats.add(write_with_retry(pipeline.sink, batch, retries))
        if progress:
            progress(len(batch))
    return stats
