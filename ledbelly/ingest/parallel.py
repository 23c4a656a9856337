"""``ledbelly ingest`` of files, in one process or several.

One CPython process turns about 10,000 events a second into rows, less than PostgreSQL
or MariaDB can take: for a backfill the interpreter is the limit. So large JSON lines
inputs are cut into byte ranges and each worker process runs its own pipeline over its
share. The ledger keeps this exact: a message that appears in two shares is claimed by
one transaction and skipped by the other, as a redelivered SQS message is. Log lines
travel to this process, the only one that writes (and rotates) the log files.
"""

from __future__ import annotations

import itertools
import json
import multiprocessing
import os
import pickle
import queue
import signal
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from ledbelly.errors import LedbellyError
from ledbelly.ingest.consume import ingest
from ledbelly.message import Message
from ledbelly.ops.logs import UNDEFINED, EventLogs
from ledbelly.ops.stats import Stats
from ledbelly.ops.tuning import tune_gc
from ledbelly.pipeline import Pipeline, PipelineSettings
from ledbelly.schema.model import Catalog
from ledbelly.sources.files import IterSource, is_line_file, read_path, read_range

# Below this many bytes of JSON lines (about 500 events) a second process costs more
# than it saves.
MIN_SHARE_BYTES = 1 << 20
MAX_AUTO_WORKERS = 8


@dataclass(frozen=True)
class Share:
    """Part of the input for one worker: a byte range of a JSON lines file, or a whole input."""

    path: str
    start: int = 0
    end: int | None = None  # None: the whole input, read by ``read_path``

    @property
    def size(self) -> int:
        if self.end is not None:
            return self.end - self.start
        return 0 if self.path == "-" else os.path.getsize(self.path)

    def messages(self) -> Iterator[Message]:
        if self.end is None:
            return read_path(self.path)
        return read_range(self.path, self.start, self.end)


@dataclass(frozen=True)
class WorkerChoice:
    count: int
    note: str | None = None  # why fewer workers than asked for


def available_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def choose_workers(
    settings: PipelineSettings, paths: Sequence[str], requested: int | None
) -> WorkerChoice:
    """How many processes to ingest ``paths`` with; ``requested`` None means automatic."""
    single = _needs_one_process(settings, paths)
    if single:
        note = f"--workers {requested} ignored: {single}" if requested and requested > 1 else None
        return WorkerChoice(1, note)
    if requested is not None:
        return WorkerChoice(max(1, requested))
    line_bytes = sum(os.path.getsize(p) for p in paths if is_line_file(p))
    by_size = max(1, line_bytes // MIN_SHARE_BYTES)
    return WorkerChoice(int(min(available_cpus(), by_size, MAX_AUTO_WORKERS)))


def _needs_one_process(settings: PipelineSettings, paths: Sequence[str]) -> str | None:
    if settings.url.get_backend_name() == "sqlite":
        return "SQLite takes one writer at a time"
    if settings.schema_evolution != "off":
        return "schema evolution changes tables from one process only"
    if "-" in paths:
        return "standard input is read by one process"
    return None


def plan_shares(paths: Sequence[str], workers: int) -> list[list[Share]]:
    """The inputs divided among at most ``workers`` processes, about equal in bytes."""
    whole = [Share(p) for p in paths if not is_line_file(p)]
    lines = [p for p in paths if is_line_file(p)]
    total = sum(os.path.getsize(p) for p in lines) + sum(s.size for s in whole)
    target = max(MIN_SHARE_BYTES, -(-total // max(1, workers)))
    shares = list(whole)
    for path in lines:
        size = os.path.getsize(path)
        pieces = max(1, round(size / target))
        cuts = [size * i // pieces for i in range(pieces + 1)]
        shares.extend(Share(path, a, b) for a, b in itertools.pairwise(cuts))
    loads = [0] * workers
    plan: list[list[Share]] = [[] for _ in range(workers)]
    for share in sorted(shares, key=lambda s: -s.size):
        least = loads.index(min(loads))
        plan[least].append(share)
        loads[least] += share.size
    return [p for p in plan if p]


def ingest_paths(
    settings: PipelineSettings,
    paths: Sequence[str],
    workers: int = 1,
    progress: Callable[[int], None] | None = None,
    on_missing: Callable[[list[str]], None] | None = None,
) -> Stats:
    """Ingest files (or ``-``) with ``workers`` processes; every message ends accounted for.

    ``on_missing`` hears which event tables the database lacks before any is read.
    """
    pipeline = Pipeline(settings)
    try:
        missing = pipeline.prepare()
        if on_missing and missing:
            on_missing(missing)
        plan = plan_shares(paths, workers) if workers > 1 else []
        tune_gc()  # forked workers inherit it
        if len(plan) <= 1:
            messages = itertools.chain.from_iterable(read_path(p) for p in paths)
            pipeline.start_extensions()
            return ingest(pipeline, IterSource(messages), progress=progress)
        # prepare() created the tables here (if allowed), so workers never race to DDL.
        known = pipeline.tables.known_columns()
    finally:
        pipeline.close()
    return _run_workers(settings, plan, progress, _WorkerStart(pipeline.catalog, known))


@dataclass(frozen=True)
class _WorkerStart:
    """What workers inherit from the parent's preparation, so they need not repeat it."""

    catalog: Catalog
    known_columns: dict[str, frozenset[str] | None]


def _run_workers(
    settings: PipelineSettings,
    plan: list[list[Share]],
    progress: Callable[[int], None] | None,
    start: _WorkerStart,
) -> Stats:
    context = _context()
    inbox: Any = context.Queue()
    workers = [
        context.Process(
            target=_worker,
            args=(settings, shares, inbox, start),
            name=f"ledbelly-ingest-{i}",
            daemon=True,
        )
        for i, shares in enumerate(plan)
    ]
    for w in workers:
        w.start()
    previous = _stop_on_sigterm()
    logs = EventLogs(settings.log_dir)
    undefined = _UndefinedOnce()
    total = Stats()
    errors: list[BaseException] = []
    finished = 0
    completed = False
    try:
        while finished < len(workers):
            try:
                kind, value = inbox.get(timeout=0.5)
            except queue.Empty:
                dead = [w for w in workers if w.exitcode not in (None, 0)]
                if dead and inbox.empty():
                    errors.append(
                        LedbellyError(
                            f"ingest worker {dead[0].name} died (exit code {dead[0].exitcode})"
                        )
                    )
                    break
                continue
            if kind == "log":
                if undefined.first(value):
                    logs.write_forwarded(value)
            elif kind == "progress":
                if progress:
                    progress(value)
            else:
                finished += 1
                if kind == "done":
                    total.merge(value)
                else:
                    errors.append(value)
        completed = True
    finally:  # on an error or an interrupt (Ctrl-C) here, no worker is left running
        for w in workers:
            if (errors or not completed) and w.is_alive():
                w.terminate()  # its open transaction rolls back; a re-run picks up the rest
            w.join()
        logs.close()
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    if errors:
        raise errors[0]
    total.undefined -= undefined.repeats
    return total


class _UndefinedOnce:
    """Each worker reports a field it has no column for once; together, once in all."""

    def __init__(self) -> None:
        self._seen: set[tuple[Any, Any]] = set()
        self.repeats = 0

    def first(self, line: tuple[str, str]) -> bool:
        name, text = line
        if name != UNDEFINED:
            return True
        try:
            entry = json.loads(text)
            key = (entry.get("table"), entry.get("field"))
        except (ValueError, AttributeError):
            return True
        if key in self._seen:
            self.repeats += 1
            return False
        self._seen.add(key)
        return True


class IngestStopped(LedbellyError):
    """SIGTERM arrived while workers were ingesting; they were stopped, nothing is partial."""


def _stop_on_sigterm() -> Any:
    """Make SIGTERM raise here, so the workers are stopped with this process."""
    if threading.current_thread() is not threading.main_thread():
        return None

    def stop(signum: int, frame: Any) -> None:
        raise IngestStopped(
            "stopped by SIGTERM; run the same command again to finish: what committed is skipped"
        )

    return signal.signal(signal.SIGTERM, stop)


def _context() -> Any:
    """Fork where there is fork: workers inherit the loaded code and start in milliseconds."""
    methods = multiprocessing.get_all_start_methods()
    return multiprocessing.get_context("fork" if "fork" in methods else "spawn")


def _worker(
    settings: PipelineSettings, shares: list[Share], outbox: Any, start: _WorkerStart
) -> None:
    """One worker process: its own engine and pipeline over its shares."""

    def send(kind: str, value: Any) -> None:
        outbox.put((kind, value))

    pipeline: Pipeline | None = None
    try:
        logs = EventLogs(settings.log_dir, forward=lambda line: send("log", line))
        pipeline = Pipeline(settings, logs=logs, catalog=start.catalog)
        pipeline.tables.adopt_columns(start.known_columns)
        pipeline.start_extensions()
        messages = itertools.chain.from_iterable(s.messages() for s in shares)
        stats = ingest(
            pipeline, IterSource(messages), progress=lambda n: send("progress", n), overlap=False
        )  # the other workers use the CPU while this one waits
        send("done", stats)
    except BaseException as exc:  # reported to the parent, which raises it
        send("failed", _portable(exc))
    finally:
        if pipeline is not None:
            pipeline.close()


def _portable(exc: BaseException) -> BaseException:
    """The exception itself if it survives pickling, else a ``LedbellyError`` saying what it was."""
    try:
        pickle.loads(pickle.dumps(exc))
        return exc
    except Exception:
        return LedbellyError(f"{type(exc).__name__}: {exc}")
