"""The long-running consumer: pollers feed writers; nothing is deleted before it commits.

Threads and what they own:
- pollers (a ``ThreadPoolExecutor``): long-poll their queue while there is room in
  memory (``max_in_flight`` messages, ``max_in_flight_bytes`` of bodies) and the database
  is up; hand messages to the work queue.
- writers: take batches off the work queue, process them, commit them with their ledger
  entries, then delete (ack) exactly the committed messages.
- housekeeping: extends the visibility of messages held long (a failed extension is
  retried, logged once and counted), feeds the watchdog, the metrics gauges and the
  status line.

Every wait is bounded, so each thread notices the stop flag within a second or one long
poll. Shutdown is ordered and bounded by ``shutdown_timeout``: stop receiving, finish and
commit what is in hand, delete what committed, release the rest (visibility 0).

A message the database will not take even as a dead letter goes back to its queue alone,
offered again later each time (``HOLD_BACK_FIRST`` seconds, doubling up to
``HOLD_BACK_MAX``); the rest of its batch commits, and it is logged once, with its raw
message in ``sql-recovery.jsonl``.
"""

from __future__ import annotations

import logging
import queue
import sys
import threading
import time
from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as futures_wait
from dataclasses import dataclass

from ledbelly.config import WorkerOptions
from ledbelly.db.sink import Unstorable, WriteReport
from ledbelly.errors import OperatorError, SourceUnavailable, TransientError
from ledbelly.message import Message
from ledbelly.ops.metrics import Metrics
from ledbelly.ops.notify import Notifier
from ledbelly.ops.stats import Stats
from ledbelly.ops.status import StatusLine, format_line
from ledbelly.outcome import Kind, Outcome
from ledbelly.pipeline import Pipeline
from ledbelly.retry import backoff, retry_transient
from ledbelly.sources import Source

log = logging.getLogger("ledbelly.daemon")

__all__ = ["Binding", "Daemon", "WorkerOptions"]

HOLD_BACK_FIRST = 30  # seconds before an unstorable message is offered again, at first
HOLD_BACK_MAX = 900  # and at most
_HOLD_BACK_REMEMBERED = 10_000  # message ids whose hold-backs are counted


@dataclass(frozen=True)
class Binding:
    """A source and how to poll it."""

    source: Source
    concurrency: int = 1
    wait_seconds: float = 20
    visibility_timeout: int | None = None  # None: the source has no visibility to extend


@dataclass
class _Held:
    visibility_timeout: int | None  # None: its source has no visibility to extend
    visible_at: float  # when the source would hand it out again
    size: int = 0  # bytes its body takes in memory
    extend_failures: int = 0  # failed extensions in a row
    retry_at: float = 0.0  # no extension before this (after a failed one)


class _GiveUp(Exception):
    """The shutdown deadline came while the database was still away."""


class Daemon:
    """Consumes ``bindings`` into ``pipeline`` until ``stop()``."""

    def __init__(
        self,
        pipeline: Pipeline,
        bindings: Sequence[Binding],
        options: WorkerOptions | None = None,
        metrics: Metrics | None = None,
        notifier: Notifier | None = None,
        status: StatusLine | None = None,
    ) -> None:
        self.pipeline = pipeline
        self.bindings = list(bindings)
        self.options = options or WorkerOptions()
        self.writer_count = self.options.writer_count(pipeline.tables.dialect)
        self.metrics = metrics or Metrics()
        self.notifier = notifier or Notifier(None)
        self.status = status
        self.stats = Stats()
        self._stats_lock = threading.Condition()  # notified as each batch is acknowledged
        self._work: queue.Queue[Message] = queue.Queue()
        self._held: dict[Message, _Held] = {}
        self._held_bytes = 0
        self._held_lock = threading.Condition()
        self._held_back: OrderedDict[str, int] = OrderedDict()  # id -> times held back
        self._extend_failing: set[Source] = set()  # sources whose extensions fail now
        self._stop = threading.Event()
        self._deadline_passed = threading.Event()  # set by the shutdown once time is up
        self._db_up = threading.Event()
        self._db_up.set()
        self._db_down_since: float | None = None
        self._db_down_reason = "database unavailable"
        self._deadline = float("inf")
        self._pollers: ThreadPoolExecutor | None = None
        self._poller_futures: list[Future[None]] = []
        self._writers: list[threading.Thread] = []
        self._keeper: threading.Thread | None = None
        self._started = threading.Event()

    # ----- life cycle ---------------------------------------------------------------------

    def start(self) -> None:
        total = sum(b.concurrency for b in self.bindings)
        self._pollers = ThreadPoolExecutor(
            max_workers=max(1, total), thread_name_prefix="ledbelly-poller"
        )
        self._poller_futures = [
            self._pollers.submit(self._poll_loop, b)
            for b in self.bindings
            for _ in range(b.concurrency)
        ]
        self._writers = [
            threading.Thread(target=self._write_loop, name=f"ledbelly-writer-{i}", daemon=True)
            for i in range(self.writer_count)
        ]
        self._keeper = threading.Thread(
            target=self._housekeeping, name="ledbelly-housekeeping", daemon=True
        )
        for t in self._threads:
            t.start()
        self.metrics.set_consuming(True)
        self.notifier.ready()
        self._started.set()
        log.info(
            "consuming %s with %d pollers, %d writer(s), batches of %d",
            ", ".join(b.source.name for b in self.bindings),
            total,
            self.writer_count,
            self.options.batch_size,
        )

    def stop(self) -> None:
        """Ask for an orderly stop; safe to call from a signal handler."""
        if not self._stop.is_set():
            self._deadline = time.monotonic() + self.options.shutdown_timeout
            self._stop.set()

    @property
    def _threads(self) -> list[threading.Thread]:
        return [*self._writers, *([self._keeper] if self._keeper else [])]

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def wait(self) -> bool:
        """Block until stopped and shut down; True if every poller returned in time."""
        while not self._stop.wait(0.5):
            pass
        return self._shutdown()

    def wait_until_consumed(self, count: int, timeout: float) -> bool:
        """Block until ``count`` messages are committed and acknowledged; False on timeout."""
        with self._stats_lock:
            return self._stats_lock.wait_for(lambda: self.stats.messages >= count, timeout)

    def run(self) -> bool:
        self.start()
        return self.wait()

    def _shutdown(self) -> bool:
        self.notifier.stopping()
        self.metrics.set_consuming(False)
        log.info(
            "stopping: finishing the batches in hand (at most %.0f s)",
            self.options.shutdown_timeout,
        )
        for t in self._threads:
            t.join(timeout=max(0.0, self._deadline - time.monotonic()))
        self._deadline_passed.set()
        assert self._pollers is not None
        self._pollers.shutdown(wait=False, cancel_futures=True)
        self._release_everything()
        pollers_done = self._wait_pollers()
        self._release_everything()
        for b in self.bindings:
            b.source.close()
        if self.status:
            self.status.close()
        log.info(
            "stopped: %d messages, %d dead letters, %d duplicates skipped",
            self.stats.messages,
            self.stats.dead_letters,
            self.stats.duplicates,
        )
        return pollers_done

    def _wait_pollers(self) -> bool:
        _, running = futures_wait(
            self._poller_futures, timeout=max(0.0, self._deadline - time.monotonic())
        )
        return not running

    def _pause(self, seconds: float) -> None:
        """Wait, waking as soon as a stop is asked for; once stopping, until the deadline."""
        if not self._stop.wait(seconds):
            return
        left = self._deadline - 1 - time.monotonic()
        self._deadline_passed.wait(max(0.0, min(seconds, left)))

    # ----- polling ------------------------------------------------------------------------

    def _poll_loop(self, binding: Binding) -> None:
        failures = 0
        while not self._stop.is_set():
            try:
                if not self._wait_for_room() or not self._db_up.wait(1.0):
                    continue
                messages = binding.source.receive(10, binding.wait_seconds)
                if failures:
                    log.info("%s reachable again", binding.source.name)
                failures = 0
                if not messages:
                    if self.options.delay:
                        self._stop.wait(self.options.delay)
                    continue
                for m in messages:
                    m.source = binding.source
                if self._stop.is_set():
                    binding.source.release(messages)
                    break
                self._hold(messages, binding.visibility_timeout)
            except SourceUnavailable as exc:
                failures += 1
                self.metrics.record_retry("sqs")
                if failures == 1:
                    log.warning(
                        "%s unavailable, retrying with backoff: %s", binding.source.name, exc
                    )
                self._stop.wait(backoff(failures, base=1.0, cap=60))
            except Exception:
                failures += 1
                log.exception("poller for %s failed; restarting it", binding.source.name)
                self._stop.wait(backoff(failures, base=1.0, cap=60))

    def _wait_for_room(self) -> bool:
        with self._held_lock:
            if self._room():
                return True
            self._held_lock.wait(timeout=1.0)
            return self._room()

    def _room(self) -> bool:
        """Room for one more receive (call holding the lock): ten more messages fit, and
        the bodies held are under the byte bound (SQS messages may be 1 MiB each)."""
        return (
            len(self._held) + 10 <= self.options.max_in_flight
            and self._held_bytes < self.options.max_in_flight_bytes
        )

    def _hold(self, messages: list[Message], visibility_timeout: int | None) -> None:
        visible_at = time.monotonic() + (visibility_timeout or 0)
        with self._held_lock:
            for m in messages:
                size = sys.getsizeof(m.body)
                self._held[m] = _Held(visibility_timeout, visible_at, size)
                self._held_bytes += size
        for m in messages:
            self._work.put(m)

    def _unhold(self, messages: Sequence[Message]) -> None:
        with self._held_lock:
            for m in messages:
                if (h := self._held.pop(m, None)) is not None:
                    self._held_bytes -= h.size
            self._held_lock.notify_all()

    @property
    def held_bytes(self) -> int:
        """Bytes of message bodies held in memory now."""
        with self._held_lock:
            return self._held_bytes

    # ----- writing ------------------------------------------------------------------------

    def _write_loop(self) -> None:
        while True:
            batch = self._collect()
            if batch:
                self._write_batch(batch)
            elif self._stop.is_set() and self._work.empty():
                return
            if self._stop.is_set() and time.monotonic() > self._deadline:
                return

    def _write_batch(self, batch: list[Message]) -> None:
        """Commit, then acknowledge; work after the acknowledgement never releases."""
        try:
            report = self._commit(batch)
        except _GiveUp:
            self._release(batch)
            return
        except Exception:
            log.exception("writer failed on a batch of %d; releasing it", len(batch))
            self._release(batch)
            return
        self._acknowledge(report, batch)
        if report.unstored:
            self._hold_back(report.unstored)
        try:
            self._replay_created()
        except Exception:  # its messages are committed and deleted: nothing to release
            log.exception(
                "replaying stored unknown events into new tables failed; "
                "'ledbelly replay --unknown-events' moves them later"
            )

    def _collect(self) -> list[Message]:
        try:
            first = self._work.get(timeout=0.5)
        except queue.Empty:
            return []
        batch = [first]
        until = time.monotonic() + self.options.max_batch_wait
        while len(batch) < self.options.batch_size:
            try:
                batch.append(self._work.get_nowait())
                continue
            except queue.Empty:
                pass
            left = until - time.monotonic()
            if left <= 0 or self._stop.is_set():
                break
            try:
                linger = min(left, self.options.batch_linger)
                batch.append(self._work.get(timeout=linger))
            except queue.Empty:
                break  # traffic paused: commit now rather than hold what we have
        return batch

    def _commit(self, batch: list[Message]) -> WriteReport:
        """Process and write, waiting out database outages; ``_GiveUp`` at the deadline."""
        outcomes: list[Outcome] | None = None

        def attempt() -> WriteReport:
            nonlocal outcomes
            if outcomes is None:
                outcomes = self._redrive([self.pipeline.processor.process(m) for m in batch])
                self.pipeline.before_insert(outcomes)
            started = time.monotonic()
            try:
                report = self.pipeline.sink.write(outcomes)
            except Unstorable as exc:  # the rest committed; those few are held back
                report = exc.report
            self.metrics.observe_batch(len(outcomes), time.monotonic() - started)
            self._database_state(True)
            return report

        def on_retry(exc: TransientError, _attempt: int) -> None:
            nonlocal outcomes
            self.metrics.record_retry("operator" if isinstance(exc, OperatorError) else "database")
            self._database_state(False, exc)
            if isinstance(exc, OperatorError):  # a table or column may have changed for good
                self.pipeline.tables.forget()
                self.pipeline.processor.reset_plans()
                outcomes = None
            if self._stop.is_set() and time.monotonic() >= self._deadline - 1:
                raise _GiveUp from exc

        return retry_transient(attempt, base=0.5, cap=15, pause=self._pause, on_retry=on_retry)

    def _replay_created(self) -> None:
        if self.pipeline.processor.created_tables:
            replayed = self.pipeline.replay_created()
            log.info("replayed %d stored unknown events into new tables", replayed)

    def _redrive(self, outcomes: list[Outcome]) -> list[Outcome]:
        """With ``dead_letter_policy: redrive``, poison messages are left for SQS's DLQ."""
        if self.options.dead_letter_policy != "redrive":
            return outcomes
        keep = [o for o in outcomes if o.kind != Kind.DEAD_LETTER]
        poison = [o for o in outcomes if o.kind == Kind.DEAD_LETTER]
        for o in poison:
            self.pipeline.sink.log_dead_letter(o)
        if poison:
            self._release([o.message for o in poison])
        return keep

    def _acknowledge(self, report: WriteReport, batch: list[Message]) -> None:
        for source, messages in _by_source(report.messages):
            source.ack(messages)
        if self._held_back:
            with self._held_lock:
                for m in report.messages:  # stored at last
                    self._held_back.pop(m.message_id, None)
        self.pipeline.after_commit(report)
        self._unhold(report.messages)
        with self._stats_lock:  # several writers may finish batches at once
            self.stats.add(report)
            self._stats_lock.notify_all()
        now = time.time()
        for o in report.committed:
            self.metrics.record_message(o.table, o.kind.value)
        for _ in report.duplicates:
            self.metrics.record_message(None, "duplicate")
        ages = [now - m.sent_at for m in batch if m.sent_at]
        if ages:
            self.metrics.observe_message_age(max(ages))

    def _hold_back(self, unstored: list[Outcome]) -> None:
        """Messages not even a dead letter holds: each goes back to its queue alone, to
        be offered again later each time; logged once, with its raw message for replay."""
        for o in unstored:
            with self._held_lock:
                times = self._held_back.pop(o.message.message_id, 0) + 1
                self._held_back[o.message.message_id] = times
                while len(self._held_back) > _HOLD_BACK_REMEMBERED:
                    self._held_back.popitem(last=False)
            delay = min(HOLD_BACK_MAX, HOLD_BACK_FIRST * 2 ** min(times - 1, 16))
            if times == 1:
                log.error(
                    "message %s (%s) cannot be stored, not even as a dead letter: %s; the rest "
                    "of its batch committed. It goes back to its queue, offered again in %d s, "
                    "then less often; its raw message is in sql-recovery.jsonl",
                    *(o.message.message_id, o.event_name or "?", o.error, delay),
                )
                self.pipeline.sink.log_dead_letter(o)
            self.metrics.record_retry("unstorable")
            self._release([o.message], delay)

    def _release(self, messages: Sequence[Message], delay: int = 0) -> None:
        for source, mine in _by_source(messages):
            try:
                source.release(mine, delay)
            except Exception:
                log.exception(
                    "could not release %d messages; they return after their visibility timeout",
                    len(mine),
                )
        self._unhold(messages)

    def _release_everything(self) -> None:
        with self._held_lock:
            left = list(self._held)
        while True:
            try:
                self._work.get_nowait()
            except queue.Empty:
                break
        if left:
            log.info("releasing %d uncommitted messages (visibility 0)", len(left))
            self._release(left)

    def _database_state(self, up: bool, exc: Exception | None = None) -> None:
        if up and not self._db_up.is_set():
            down_for = time.monotonic() - (self._db_down_since or time.monotonic())
            log.warning("database is back after %.0f s; resuming", down_for)
            self._db_down_since = None
            self._db_up.set()
            self.metrics.set_database_up(True)
        elif not up and self._db_up.is_set():
            if isinstance(exc, OperatorError):
                log.warning(
                    "database refuses writes (%s); pausing pollers until an operator "
                    "fixes it (grant, alter-tables); nothing is dead-lettered",
                    exc,
                )
            else:
                log.warning(
                    "database unavailable (%s); pausing pollers and retrying with backoff", exc
                )
            self._db_down_reason = (
                "database refuses writes"
                if isinstance(exc, OperatorError)
                else "database unavailable"
            )
            self._db_down_since = time.monotonic()
            self._db_up.clear()
            self.metrics.set_database_up(False)

    # ----- housekeeping -------------------------------------------------------------------

    def _housekeeping(self) -> None:
        interval = self.options.housekeeping_interval
        watchdog = self.notifier.watchdog_interval()
        last_ping = 0.0
        while not self._writers_finished():
            try:
                self._extend_visibility()
                with self._held_lock:
                    self.metrics.set_backlog(len(self._held))
                now = time.monotonic()
                if watchdog and now - last_ping >= watchdog and self.alive():
                    self.notifier.watchdog()
                    last_ping = now
                snapshot = self.metrics.snapshot()
                if self.status:
                    self.status.update(snapshot)
                if watchdog and now - last_ping < interval:  # just pinged: say how it goes
                    self.notifier.status(format_line(snapshot, None))
            except Exception:
                log.exception("housekeeping failed; going on")
            self._deadline_passed.wait(interval)  # runs on through the shutdown

    def _writers_finished(self) -> bool:
        return bool(self._writers) and not any(t.is_alive() for t in self._writers)

    def _extend_visibility(self) -> None:
        now = time.monotonic()
        due: dict[Source, list[tuple[Message, _Held]]] = {}
        with self._held_lock:
            for m, h in self._held.items():
                vt = h.visibility_timeout
                if (
                    vt
                    and m.source is not None
                    and now >= h.retry_at
                    and h.visible_at - now < max(min(5.0, vt * 0.5), vt * 0.4)
                ):
                    due.setdefault(m.source, []).append((m, h))
        for source, held in due.items():
            vt = held[0][1].visibility_timeout or 0
            try:
                failed: Mapping[Message, str] = source.extend([m for m, _ in held], vt) or {}
            except Exception as exc:  # the whole call: every message failed
                failed = dict.fromkeys((m for m, _ in held), f"{type(exc).__name__}: {exc}")
            self._extended(source, held, failed, now, vt)

    def _extended(
        self,
        source: Source,
        held: list[tuple[Message, _Held]],
        failed: Mapping[Message, str],
        now: float,
        vt: int,
    ) -> None:
        """Moves ``visible_at`` on only for what was extended. A failed extension is tried
        again, sooner than the visibility runs out; each is counted, the first logged."""
        still: list[Message] = []
        with self._held_lock:
            for m, h in held:
                if m not in failed:
                    h.visible_at, h.extend_failures = now + vt, 0
                elif m in self._held:  # else committed meanwhile: nothing to keep hidden
                    h.extend_failures += 1
                    h.retry_at = now + min(2.0 ** (h.extend_failures - 1), max(1.0, vt / 8))
                    still.append(m)
        for _ in still:
            self.metrics.record_retry("visibility")
        if still and source not in self._extend_failing:
            self._extend_failing.add(source)
            log.warning(
                "could not extend the visibility of %d messages from %s (%s); retrying. "
                "Meanwhile another consumer may get them (the ledger skips the copy); "
                'failures are counted in ledbelly_retries_total{kind="visibility"}',
                *(len(still), source.name, failed[still[0]]),
            )
        elif not still and source in self._extend_failing:
            self._extend_failing.discard(source)
            log.info("extending visibility on %s works again", source.name)

    def alive(self) -> bool:
        """For the systemd watchdog: the threads work. A database outage is not a reason
        to be restarted: the daemon waits it out by itself."""
        return self._started.is_set() and all(t.is_alive() for t in self._threads)

    def healthy(self) -> tuple[bool, str]:
        """For ``/healthz`` and the watchdog: consuming, writers alive, database reachable."""
        if not self._started.is_set():
            return False, "starting"
        if self._stop.is_set():
            return False, "stopping"
        if any(not t.is_alive() for t in self._threads):
            return False, "a writer thread died"
        if not self._db_up.is_set():
            return False, self._db_down_reason
        return True, "ok"


def _by_source(messages: Iterable[Message]) -> list[tuple[Source, list[Message]]]:
    """Messages grouped by the source they came from, for that source's batch calls."""
    grouped: dict[Source, list[Message]] = {}
    for m in messages:
        assert m.source is not None, "a daemon's message always knows its source"
        grouped.setdefault(m.source, []).append(m)
    return list(grouped.items())
