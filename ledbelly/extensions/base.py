"""The extension interface: hooks around each batch, loaded by name from entry points.

An extension is a class registered under the ``ledbelly.extensions`` entry-point group
and enabled by name in the configuration. The host calls four hooks:

- ``start(context)`` once, before the first batch. A ``ConfigError`` here (a missing
  file, a bad option) stops ledbelly from starting, as any configuration error does.
  Any other exception is logged and counted, and the extension stays off.
- ``before_insert(outcomes)`` in the writer, inside the batch, before the transaction.
  It may append ``(table, row)`` pairs to ``outcome.rows`` for its own tables (schemas
  in ``schemas/custom/``); they commit with the batch. It runs on the ingest path, so it
  must be quick; with several writers it is called from several threads at once. If it
  raises, the rows it appended are taken back out.
- ``after_commit(committed)`` with the outcomes of a committed batch. The host hands it
  to the extension's own thread through a bounded queue, so it never delays the SQS
  delete of those messages; when the queue is full the batch is dropped for that
  extension and counted.
- ``stop()`` once, after the queued batches have been handed over.

An extension that raises never stops the pipeline or loses a batch: each failure is
counted in ``ExtensionHost.failures`` and logged at most once per ``log_interval`` per
extension (the first with its traceback, later ones with the number suppressed).
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path
from typing import Any, Final

from sqlalchemy import URL, Engine, MetaData, Table, inspect

from ledbelly.db.engine import open_engine
from ledbelly.db.tables import build_table
from ledbelly.errors import ConfigError
from ledbelly.extensions.config import ExtensionSettings
from ledbelly.outcome import EventRows, Outcome
from ledbelly.schema.model import Catalog

ENTRY_POINT_GROUP: Final = "ledbelly.extensions"
log = logging.getLogger("ledbelly.extensions")


class Extension:
    """Base class of every extension; each hook does nothing unless overridden.

    ``name`` is the name the extension was enabled under; the host sets it.
    """

    name: str = "extension"

    def start(self, context: ExtensionContext) -> None:
        """Open what the extension needs; raise ``ConfigError`` for a configuration fault."""

    def event_rows(self, event: EventRows) -> None:
        """Add rows for each event as it is built (``event.add_row(table)``): in the
        processing thread, so keep it to a few microseconds. ``live_stream`` is one."""

    def before_insert(self, outcomes: list[Outcome]) -> None:
        """Add rows for the extension's own tables to ``outcome.rows``; never remove any."""

    def after_commit(self, committed: Sequence[Outcome]) -> None:
        """React to committed outcomes; runs in the extension's own thread."""

    def stop(self) -> None:
        """Release what ``start`` opened."""


@dataclass(frozen=True)
class ExtensionContext:
    """What an extension gets at start: the database, the schemas, the logs, its options."""

    url: URL
    catalog: Catalog
    log_dir: Path = Path("log")
    create_missing: bool | None = None  # None: create missing tables on SQLite only
    name: str = ""
    options: Mapping[str, Any] = field(default_factory=dict)
    engine_factory: Callable[[], Engine] | None = None

    def open_engine(self) -> Engine:
        """An engine of the extension's own (one connection), apart from the writer's pool."""
        if self.engine_factory is not None:
            return self.engine_factory()
        return open_engine(self.url, pool_size=1)

    def table(self, name: str, engine: Engine) -> Table:
        """The SQLAlchemy table for a catalog table, named as the database has it.

        When the database lacks it, it is created where ledbelly creates missing tables
        (``--create-missing``, or SQLite); elsewhere that is a ``ConfigError``.
        """
        if name not in self.catalog.tables:
            raise ConfigError(
                f"extension {self.name}: no schema for table {name} (it belongs in schemas/custom/)"
            )
        definition = self.catalog.tables[name]
        if engine.dialect.name == "oracle":
            from ledbelly.db.ddl import DdlOptions, event_table

            table = event_table(definition, MetaData(), DdlOptions.for_engine(engine))
        else:
            table = build_table(definition, MetaData())
        create = (
            (engine.dialect.name == "sqlite")
            if self.create_missing is None
            else self.create_missing
        )
        with engine.connect() as conn:
            if not inspect(conn).has_table(table.name):
                if not create:
                    raise ConfigError(
                        f"extension {self.name}: table {name} is missing; run with "
                        "--create-missing or apply 'ledbelly create-tables' first"
                    )
                table.create(conn, checkfirst=True)
                conn.commit()
        return table

    def for_extension(self, settings: ExtensionSettings) -> ExtensionContext:
        return replace(self, name=settings.name, options=dict(settings.options))


def available_extensions() -> dict[str, EntryPoint]:
    """The installed extensions by name (the first distribution wins a name)."""
    found: dict[str, EntryPoint] = {}
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        found.setdefault(ep.name, ep)
    return found


# ledbelly's own extensions, found even where the package's entry points are not installed
# (run from a source tree).
_BUILT_IN = {
    name: EntryPoint(name, value, ENTRY_POINT_GROUP)
    for name, value in (
        ("live_stream", "ledbelly.extensions.live_stream:LiveStream"),
        ("geoip", "ledbelly.extensions.geoip:GeoIp"),
        ("maxmind", "ledbelly.extensions.geoip:GeoIp"),
    )
}


def load_extension(name: str) -> Extension:
    """A new instance of the extension registered under ``name``."""
    known = available_extensions()
    ep = known.get(name) or _BUILT_IN.get(name)
    if ep is None:
        names = ", ".join(sorted(known)) or "none installed"
        raise ConfigError(f"unknown extension {name!r}; available: {names}")
    try:
        factory = ep.load()
        instance = factory()
    except ConfigError:
        raise
    except Exception as exc:  # an import error names the missing package
        raise ConfigError(
            f"extension {name!r} ({ep.value}) cannot be loaded: {type(exc).__name__}: {exc}"
        ) from exc
    if not isinstance(instance, Extension):
        raise ConfigError(f"extension {name!r} ({ep.value}) is not a ledbelly.extensions.Extension")
    instance.name = name
    return instance


class _Throttle:
    """Failures of one extension: logged at most once per interval, all counted."""

    def __init__(self) -> None:
        self.last: float | None = None
        self.suppressed = 0


_STOP: Final = object()


class ExtensionHost:
    """Runs the enabled extensions' hooks, each failure isolated, logged and counted."""

    def __init__(
        self,
        extensions: Iterable[tuple[Extension, ExtensionContext]],
        *,
        log_interval: float = 60.0,
        queue_size: int = 64,
        drain_timeout: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._extensions = list(extensions)
        self.log_interval = log_interval
        self.queue_size = queue_size
        self.drain_timeout = drain_timeout
        self._clock = clock
        self._lock = threading.Lock()
        self._throttles: dict[str, _Throttle] = {}
        self._active: list[Extension] = []
        self._before: list[Extension] = []
        self._event_rows: list[Extension] = []
        self._workers: dict[str, _Worker] = {}
        self._started = False
        self.failures: Counter[str] = Counter()  # hook exceptions per extension
        self.dropped: Counter[str] = Counter()  # batches not handed to after_commit (full)

    @classmethod
    def load(
        cls, settings: Iterable[ExtensionSettings], context: ExtensionContext, **options: Any
    ) -> ExtensionHost:
        """The extensions named in ``settings``, each with its own options in ``context``."""
        pairs = [(load_extension(s.name), context.for_extension(s)) for s in settings]
        return cls(pairs, **options)

    @property
    def names(self) -> list[str]:
        return [ext.name for ext, _ in self._extensions]

    @property
    def active(self) -> list[str]:
        """The extensions that started and take part."""
        return [ext.name for ext in self._active]

    def __bool__(self) -> bool:
        return bool(self._extensions)

    def get(self, name: str) -> Extension | None:
        """The extension enabled under ``name``."""
        return next((ext for ext, _ in self._extensions if ext.name == name), None)

    def snapshot(self) -> dict[str, dict[str, int]]:
        """Counts per extension for the metrics: ``failures``, ``dropped``, and whatever
        integer counts the extension keeps in a ``stats`` mapping (geoip's lookups)."""
        out: dict[str, dict[str, int]] = {}
        with self._lock:
            for ext, _ in self._extensions:
                counts = {"failures": self.failures[ext.name], "dropped": self.dropped[ext.name]}
                stats = getattr(ext, "stats", None)
                if isinstance(stats, Mapping):
                    counts.update({str(k): v for k, v in stats.items() if isinstance(v, int)})
                out[ext.name] = counts
        return out

    # ----- lifecycle ----------------------------------------------------------------------

    def start(self) -> None:
        """Start every extension; a ``ConfigError`` stops the others again and is raised."""
        if self._started:
            return
        self._started = True
        for ext, ctx in self._extensions:
            try:
                ext.start(ctx)
            except ConfigError:
                self.stop()
                raise
            except Exception as exc:
                self._failed(ext.name, "start", exc)
                log.error("extension %s is off: it failed to start", ext.name)
                continue
            self._active.append(ext)
            if _overrides(ext, "event_rows"):
                self._event_rows.append(ext)
            if _overrides(ext, "before_insert"):
                self._before.append(ext)
            if _overrides(ext, "after_commit"):
                worker = _Worker(self, ext)
                worker.start()
                self._workers[ext.name] = worker
        if self._active:
            log.info("extensions on: %s", ", ".join(self.active))

    def stop(self) -> None:
        """Hand over the queued batches (up to ``drain_timeout``), then stop each extension."""
        workers, self._workers = list(self._workers.values()), {}
        deadline = time.monotonic() + self.drain_timeout
        for worker in workers:
            worker.close(max(0.0, deadline - time.monotonic()))
        busy: set[str] = set()
        for worker in workers:
            worker.join(max(0.0, deadline - time.monotonic()))
            if worker.is_alive():
                busy.add(worker.extension.name)
                log.warning(
                    "extension %s did not finish its queued batches within %.0f s; left running",
                    worker.extension.name,
                    self.drain_timeout,
                )
        active, self._active, self._before = self._active, [], []
        self._event_rows = []
        for ext in reversed(active):
            if ext.name in busy:
                continue  # its thread still uses what stop() would close
            try:
                ext.stop()
            except Exception as exc:
                self._failed(ext.name, "stop", exc)

    def drain(self, timeout: float | None = None) -> bool:
        """Wait until every batch queued so far was handed to ``after_commit``; False if
        ``timeout`` (seconds) ran out first."""
        deadline = time.monotonic() + (self.drain_timeout if timeout is None else timeout)
        return all(w.idle(deadline) for w in list(self._workers.values()))

    # ----- hooks --------------------------------------------------------------------------

    @property
    def adds_event_rows(self) -> bool:
        return bool(self._event_rows)

    def event_rows(self, event: EventRows) -> None:
        """Each extension adds rows to one event; a failing one has its rows taken out."""
        for ext in self._event_rows:
            mark = event.mark()
            try:
                ext.event_rows(event)
            except Exception as exc:
                event.undo(mark)
                self._failed(ext.name, "event_rows", exc)

    def before_insert(self, outcomes: list[Outcome]) -> None:
        """Each extension adds its rows; a failing one has its rows taken back out."""
        for ext in self._before:
            sizes = [len(o.rows) for o in outcomes]
            try:
                ext.before_insert(outcomes)
            except Exception as exc:
                for o, n in zip(outcomes, sizes, strict=True):
                    del o.rows[n:]
                self._failed(ext.name, "before_insert", exc)

    def after_commit(self, committed: Sequence[Outcome]) -> None:
        """Queue a committed batch for each extension; never blocks."""
        if not self._workers or not committed:
            return
        batch = tuple(committed)
        for worker in self._workers.values():
            if not worker.offer(batch):
                self._dropped(worker.extension.name)

    # ----- failures -----------------------------------------------------------------------

    def _failed(self, name: str, hook: str, exc: BaseException) -> None:
        with self._lock:
            self.failures[name] += 1
            throttle = self._throttles.setdefault(name, _Throttle())
            now = self._clock()
            if throttle.last is not None and now - throttle.last < self.log_interval:
                throttle.suppressed += 1
                return
            suppressed, throttle.suppressed, throttle.last = throttle.suppressed, 0, now
        more = f" ({suppressed} more failures since the last report)" if suppressed else ""
        log.error(
            "extension %s failed in %s: %s: %s%s",
            name,
            hook,
            type(exc).__name__,
            exc,
            more,
            exc_info=exc,
        )

    def _dropped(self, name: str) -> None:
        with self._lock:
            self.dropped[name] += 1
            throttle = self._throttles.setdefault(f"{name}/dropped", _Throttle())
            now = self._clock()
            if throttle.last is not None and now - throttle.last < self.log_interval:
                return
            throttle.last = now
        log.warning(
            "extension %s is behind: a committed batch was not queued for it (%d so far)",
            name,
            self.dropped[name],
        )


def _overrides(ext: Extension, hook: str) -> bool:
    return getattr(type(ext), hook) is not getattr(Extension, hook)


class _Worker(threading.Thread):
    """One extension's ``after_commit`` thread and its bounded queue."""

    def __init__(self, host: ExtensionHost, extension: Extension) -> None:
        super().__init__(name=f"ledbelly-ext-{extension.name}", daemon=True)
        self.host = host
        self.extension = extension
        self.queue: queue.Queue[object] = queue.Queue(maxsize=host.queue_size)

    def offer(self, batch: tuple[Outcome, ...]) -> bool:
        try:
            self.queue.put_nowait(batch)
        except queue.Full:
            return False
        return True

    def close(self, timeout: float) -> None:
        with contextlib.suppress(queue.Full):  # still busy: the join gives up and says so
            self.queue.put(_STOP, timeout=timeout)

    def idle(self, deadline: float) -> bool:
        """Wait until every queued batch was handled, or ``deadline`` (monotonic) passed."""
        with self.queue.all_tasks_done:
            while self.queue.unfinished_tasks:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self.queue.all_tasks_done.wait(left)
        return True

    def run(self) -> None:
        while True:
            batch = self.queue.get()
            try:
                if batch is _STOP:
                    return
                assert isinstance(batch, tuple)
                self.extension.after_commit(batch)
            except Exception as exc:
                self.host._failed(self.extension.name, "after_commit", exc)
            finally:
                self.queue.task_done()
