"""Wiring the stages together: settings in, a ready processor and sink out.

Both ``ingest`` and the daemon build their pipeline here, so they behave the same.
"""

from __future__ import annotations

import queue
import random
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import URL, Engine

if TYPE_CHECKING:
    from ledbelly.db.evolve import Evolver

from ledbelly.db.engine import open_engine
from ledbelly.db.sink import Sink, WriteReport
from ledbelly.errors import TransientError
from ledbelly.message import Message
from ledbelly.ops.logs import EventLogs
from ledbelly.outcome import Kind, Outcome
from ledbelly.schema.model import Catalog, TableDef
from ledbelly.transform.processor import Processor, ProcessorOptions


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
    batch_size: int = 2000  # messages per ingest transaction: fewer, larger COPYs
    pool_size: int = 5
    schema_evolution: str = "off"


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

    def merge(self, other: Stats) -> None:
        """Add another worker's counts to these."""
        self.messages += other.messages
        self.rows.update(other.rows)
        self.tables.update(other.tables)
        self.unknown += other.unknown
        self.dead_letters += other.dead_letters
        self.duplicates += other.duplicates
        self.truncations += other.truncations
        self.undefined += other.undefined

    def add(self, report: WriteReport) -> None:
        for o in report.committed:
            self.messages += 1
            if o.kind == Kind.INSERTED:
                self.rows[o.format or "?"] += 1
                for name, _ in o.rows:
                    self.tables[name] += 1
            elif o.kind == Kind.UNKNOWN:
                self.unknown += 1
            elif o.kind == Kind.DEAD_LETTER:
                self.dead_letters += 1
            self.truncations += o.truncations
            self.undefined += o.undefined
        self.messages += len(report.duplicates)
        self.duplicates += len(report.duplicates)


class Pipeline:
    """A processor and a sink over one engine, with the log files they share."""

    def __init__(self, settings: PipelineSettings, engine: Engine | None = None,
                 logs: EventLogs | None = None, catalog: Catalog | None = None) -> None:
        self.settings = settings
        overlay = settings.overlay_dir or Path("schemas.local")
        self.catalog = catalog or Catalog.load(settings.schema_dir, overlay)
        self.engine = engine or open_engine(settings.url, settings.pool_size)
        self.logs = logs or EventLogs(settings.log_dir)
        self.sink = Sink(self.engine, self.catalog, self.logs, settings.create_missing)
        self.evolver = self._evolver(overlay) if settings.schema_evolution != "off" else None
        self.processor = Processor(
            self.catalog, self.sink.dialect, self.logs, self.sink.live_columns,
            ProcessorOptions(live_stream=settings.live_stream, time_zone=settings.time_zone),
            evolver=self.evolver)

    def _evolver(self, overlay: Path) -> Evolver:
        from ledbelly.db.evolve import Evolver

        def changed(table: TableDef) -> None:
            self.sink.forget(table.name)
            self.processor.reset_plans()

        return Evolver(self.engine, self.catalog, overlay, self.logs,
                       self.settings.schema_evolution, on_change=changed)

    def replay_created(self) -> int:
        """Stored unknown events of types that evolution just gave a table: into it."""
        from ledbelly.db.evolve import replay_unknown

        replayed = 0
        while self.processor.created_tables:
            table = self.processor.created_tables.pop()
            replayed += replay_unknown(self.sink, self.processor, table)
        return replayed

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
           progress: Callable[[int], None] | None = None, retries: int = 4,
           overlap: bool = True) -> Stats:
    """Process and commit ``messages`` in batches; every message ends accounted for.

    With ``overlap`` parsing runs in this thread while the previous batch is written in
    another, so the database's time and Python's overlap (the driver releases the GIL
    while it waits). Without it each batch is written before the next is parsed: right
    when other processes keep the CPUs busy meanwhile, as ingest's workers do, since two
    threads that share one interpreter lock cost more CPU than one.
    """
    stats = stats or Stats()
    size = pipeline.settings.batch_size
    writer_type = _BatchWriter if overlap else _InlineWriter
    with writer_type(pipeline.sink, stats, progress, retries) as writer:
        batch: list[Outcome] = []
        for msg in messages:
            batch.append(pipeline.processor.process(msg))
            if len(batch) >= size:
                writer.put(batch)
                batch = []
        if batch:
            writer.put(batch)
    if pipeline.processor.created_tables:
        pipeline.replay_created()
    return stats


class _InlineWriter:
    """Commits each batch in the caller's thread, as soon as it is put."""

    def __init__(self, sink: Sink, stats: Stats, progress: Callable[[int], None] | None,
                 retries: int) -> None:
        self._sink, self._stats, self._progress, self._retries = sink, stats, progress, retries

    def __enter__(self) -> _InlineWriter:
        return self

    def put(self, batch: list[Outcome]) -> None:
        self._commit(batch)

    def _commit(self, batch: list[Outcome]) -> None:
        self._stats.add(write_with_retry(self._sink, batch, self._retries))
        if self._progress:
            self._progress(len(batch))

    def __exit__(self, *exc: object) -> None:
        pass


class _BatchWriter(_InlineWriter):
    """One background thread committing batches in order; its errors surface in ``put``."""

    def __init__(self, sink: Sink, stats: Stats, progress: Callable[[int], None] | None,
                 retries: int) -> None:
        super().__init__(sink, stats, progress, retries)
        self._queue: queue.Queue[list[Outcome] | None] = queue.Queue(maxsize=2)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="ledbelly-ingest-writer",
                                        daemon=True)

    def __enter__(self) -> _BatchWriter:
        self._thread.start()
        return self

    def put(self, batch: list[Outcome]) -> None:
        self._raise_if_failed()
        while True:
            try:
                self._queue.put(batch, timeout=0.5)
                return
            except queue.Full:
                self._raise_if_failed()

    def _run(self) -> None:
        while (batch := self._queue.get()) is not None:
            if self._error is not None:
                continue
            try:
                self._commit(batch)
            except BaseException as exc:  # handed to the caller's thread
                self._error = exc

    def _raise_if_failed(self) -> None:
        if self._error is not None:
            raise self._error

    def __exit__(self, *exc: object) -> None:
        self._queue.put(None)
        self._thread.join()
        self._raise_if_failed()
