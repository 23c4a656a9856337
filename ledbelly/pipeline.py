"""Wiring the stages together: settings in, a ready processor and sink out.

Both ``ingest`` and the daemon build their pipeline here, so they behave the same.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import URL, Engine

if TYPE_CHECKING:
    from ledbelly.db.evolve import Evolver
    from ledbelly.extensions.base import ExtensionHost
    from ledbelly.extensions.config import ExtensionSettings
    from ledbelly.outcome import Outcome

from ledbelly.db.engine import open_engine
from ledbelly.db.live import LiveTables
from ledbelly.db.sink import Sink, WriteReport
from ledbelly.ops.logs import EventLogs
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
    durable: bool = True  # False for ingest: see open_engine
    schema_evolution: str = "off"
    extensions: tuple[ExtensionSettings, ...] = ()  # enabled by name (cfg/ledbelly.yml too)


class Pipeline:
    """A processor and a sink over one engine, with the log files they share."""

    def __init__(
        self,
        settings: PipelineSettings,
        engine: Engine | None = None,
        logs: EventLogs | None = None,
        catalog: Catalog | None = None,
    ) -> None:
        self.settings = settings
        overlay = settings.overlay_dir or Path("schemas.local")
        self.catalog = catalog or Catalog.load(settings.schema_dir, overlay)
        self.engine = engine or open_engine(settings.url, settings.pool_size, settings.durable)
        self.logs = logs or EventLogs(settings.log_dir)
        self.tables = LiveTables(self.engine, self.catalog, settings.create_missing)
        self.sink = Sink(self.tables, self.logs)
        self.evolver = self._evolver(overlay) if settings.schema_evolution != "off" else None
        self.extensions: ExtensionHost | None = None  # started by prepare()
        self.processor = Processor(
            self.catalog,
            self.tables.dialect,
            self.logs,
            self.tables.columns,
            ProcessorOptions(time_zone=settings.time_zone),
            evolver=self.evolver,
        )

    def _evolver(self, overlay: Path) -> Evolver:
        from ledbelly.db.evolve import Evolver

        def changed(table: TableDef) -> None:
            self.tables.forget(table.name)
            self.processor.reset_plans()

        return Evolver(
            self.engine,
            self.catalog,
            overlay,
            self.logs,
            self.settings.schema_evolution,
            on_change=changed,
        )

    def replay_created(self) -> int:
        """Stored unknown events of types that evolution just gave a table: into it."""
        from ledbelly.db.replay import ReplayFilter, parked, replay
        from ledbelly.outcome import Kind

        replayed = 0
        while self.processor.created_tables:
            table = self.processor.created_tables.pop()
            waiting = parked(self.engine, self, Kind.UNKNOWN, ReplayFilter(table=table.name))
            replayed += sum(replay(self, waiting).moved.values())
        return replayed

    def prepare(self) -> list[str]:
        """Ready the database (see ``LiveTables.prepare``) and start the extensions;
        returns the event tables the database lacks."""
        missing = self.tables.prepare()
        self.start_extensions()
        return missing

    def start_extensions(self) -> None:
        """Start the extensions (``live_stream`` unless switched off, then those named in
        the settings) in the process that will write; once."""
        if self.extensions is not None:
            return
        from ledbelly.extensions.base import ExtensionContext, ExtensionHost
        from ledbelly.extensions.config import ExtensionSettings

        wanted = list(self.settings.extensions)
        if self.settings.live_stream and all(s.name != "live_stream" for s in wanted):
            wanted.insert(0, ExtensionSettings("live_stream"))
        context = ExtensionContext(
            url=self.settings.url,
            catalog=self.catalog,
            log_dir=self.settings.log_dir,
            create_missing=self.settings.create_missing,
        )
        host = ExtensionHost.load(wanted, context)
        host.start()
        self.extensions = host
        self.processor.event_rows = host.event_rows if host.adds_event_rows else None

    def before_insert(self, outcomes: list[Outcome]) -> None:
        """The extensions' rows for a batch: once per batch, before its first write."""
        if self.extensions:
            self.extensions.before_insert(outcomes)

    def after_commit(self, report: WriteReport) -> None:
        """Hand a committed batch to the extensions' own threads; never blocks."""
        if self.extensions:
            self.extensions.after_commit(report.committed)

    def close(self) -> None:
        if self.extensions is not None:
            self.extensions.stop()  # drains what was committed, then joins its threads
        self.logs.close()
        self.engine.dispose()
