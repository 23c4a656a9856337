"""``ingest``'s consumer: a source read in batches, each committed before the next is acked.

It reads through the same ``Source`` interface as the daemon and retries with the same
helper; what differs is the end: the input runs dry, and an error stops it (the daemon
waits errors out).
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable

from ledbelly.db.sink import Prepared
from ledbelly.errors import OperatorError, TransientError
from ledbelly.ops.stats import Stats
from ledbelly.outcome import Outcome
from ledbelly.pipeline import Pipeline
from ledbelly.retry import retry_transient
from ledbelly.sources import Source


def ingest(
    pipeline: Pipeline,
    source: Source,
    stats: Stats | None = None,
    progress: Callable[[int], None] | None = None,
    retries: int = 4,
    overlap: bool = True,
) -> Stats:
    """Consume ``source`` in batches until it runs dry; every message ends accounted for.

    With ``overlap`` parsing runs in this thread while the previous batch is written in
    another, so the database's time and Python's overlap (the driver releases the GIL
    while it waits). Without it each batch is written before the next is parsed: right
    when other processes keep the CPUs busy meanwhile, as ingest's workers do, since two
    threads that share one interpreter lock cost more CPU than one.
    """
    stats = stats or Stats()
    size = pipeline.settings.batch_size
    writer_type = _BatchWriter if overlap else _InlineWriter
    process, prepare = pipeline.processor.process, pipeline.sink.prepare
    with writer_type(pipeline, source, stats, progress, retries) as writer:
        while messages := source.receive(size, 0):
            batch = [process(m) for m in messages]
            writer.put(batch, prepare(batch))
    if pipeline.processor.created_tables:
        pipeline.replay_created()
    return stats


class _InlineWriter:
    """Commits each batch in the caller's thread, as soon as it is put."""

    def __init__(
        self,
        pipeline: Pipeline,
        source: Source,
        stats: Stats,
        progress: Callable[[int], None] | None,
        retries: int,
    ) -> None:
        self._pipeline, self._source, self._stats = pipeline, source, stats
        self._progress, self._retries = progress, retries

    def __enter__(self) -> _InlineWriter:
        return self

    def put(self, batch: list[Outcome], prepared: Prepared) -> None:
        self._commit(batch, prepared)

    def _commit(self, batch: list[Outcome], prepared: Prepared) -> None:
        self._pipeline.before_insert(batch)
        report = retry_transient(
            lambda: self._pipeline.sink.write(batch, prepared=prepared),
            attempts=self._retries,
            on_retry=_stop_for_an_operator,
        )
        self._source.ack(report.messages)
        self._pipeline.after_commit(report)
        self._stats.add(report)
        if self._progress:
            self._progress(len(batch))

    def __exit__(self, *exc: object) -> None:
        pass


class _BatchWriter(_InlineWriter):
    """One background thread committing batches in order; its errors surface in ``put``."""

    def __init__(
        self,
        pipeline: Pipeline,
        source: Source,
        stats: Stats,
        progress: Callable[[int], None] | None,
        retries: int,
    ) -> None:
        super().__init__(pipeline, source, stats, progress, retries)
        self._queue: queue.Queue[tuple[list[Outcome], Prepared] | None] = queue.Queue(maxsize=2)
        self._error: BaseException | None = None
        self._thread = threading.Thread(
            target=self._run, name="ledbelly-ingest-writer", daemon=True
        )

    def __enter__(self) -> _BatchWriter:
        self._thread.start()
        return self

    def put(self, batch: list[Outcome], prepared: Prepared) -> None:
        self._raise_if_failed()
        while True:
            try:
                self._queue.put((batch, prepared), timeout=0.5)
                return
            except queue.Full:
                self._raise_if_failed()

    def _run(self) -> None:
        while (item := self._queue.get()) is not None:
            if self._error is not None:
                continue
            try:
                self._commit(*item)
            except BaseException as exc:  # handed to the caller's thread
                self._error = exc

    def _raise_if_failed(self) -> None:
        if self._error is not None:
            raise self._error

    def __exit__(self, *exc: object) -> None:
        self._queue.put(None)
        self._thread.join()
        self._raise_if_failed()


def _stop_for_an_operator(exc: TransientError, _attempt: int) -> None:
    """A refusal an operator must fix does not pass with waiting: stop ``ingest`` now."""
    if isinstance(exc, OperatorError):
        raise exc
