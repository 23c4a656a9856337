"""The daemon over the in-memory source: delete-after-commit, backpressure, shutdown."""

from __future__ import annotations

import time
from typing import Any

import pytest

from conftest import canvas_event, sqs_message
from helpers import SlowSink, scalar, wait_for
from ledbelly.daemon.worker import Binding, Daemon, WorkerOptions
from ledbelly.message import Message
from ledbelly.sources.memory import MemorySource


def _messages(n: int, prefix: str = "m") -> list[Message]:
    return [
        sqs_message(
            f"{prefix}-{i}",
            "asset_accessed",
            canvas_event(asset_id=str(2107 * 10**13 + i), asset_name=f"p{i}"),
        )
        for i in range(n)
    ]


def test_daemon_commits_then_acks_everything(db_url: str, make_pipeline: Any) -> None:
    pipeline = make_pipeline(db_url)
    source = MemorySource(_messages(300))
    daemon = Daemon(
        pipeline,
        [Binding(source, concurrency=2, wait_seconds=0.2)],
        WorkerOptions(batch_size=50, max_batch_wait=0.1),
    )
    daemon.start()
    assert daemon.wait_until_consumed(300, 30)
    daemon.stop()
    assert daemon.wait()
    assert source.depth == 0 and source.in_flight == 0
    assert scalar(db_url, "SELECT COUNT(*) FROM live_asset_accessed") == 300
    assert scalar(db_url, "SELECT COUNT(*) FROM ledbelly_messages") == 300


def test_backpressure_bounds_what_is_held(sqlite_url: str, make_pipeline: Any) -> None:
    pipeline = make_pipeline(sqlite_url)
    pipeline.sink = SlowSink(pipeline.sink, 0.05)
    source = MemorySource(_messages(400))
    daemon = Daemon(
        pipeline,
        [Binding(source, concurrency=3, wait_seconds=0.1)],
        WorkerOptions(batch_size=20, max_batch_wait=0.01, max_in_flight=50),
    )
    daemon.start()
    peak = 0
    while source.acked < 400:
        peak = max(peak, source.in_flight)
        time.sleep(0.005)
    daemon.stop()
    daemon.wait()
    assert 0 < peak <= 50


def test_stop_releases_what_did_not_commit(sqlite_url: str, make_pipeline: Any) -> None:
    pipeline = make_pipeline(sqlite_url)
    pipeline.sink = SlowSink(pipeline.sink, 0.3)
    source = MemorySource(_messages(500))
    daemon = Daemon(
        pipeline,
        [Binding(source, concurrency=2, wait_seconds=0.1)],
        WorkerOptions(batch_size=25, max_batch_wait=0.01, max_in_flight=200, shutdown_timeout=5),
    )
    daemon.start()
    assert daemon.wait_until_consumed(25, 30)
    started = time.monotonic()
    daemon.stop()
    daemon.wait()
    assert time.monotonic() - started < 6
    committed = scalar(sqlite_url, "SELECT COUNT(*) FROM ledbelly_messages")
    assert source.in_flight == 0
    assert source.acked == committed
    assert source.depth == 500 - committed  # everything else is back in the queue


class _FlakySink(SlowSink):
    """The database goes away for a while: every write raises a transient error."""

    def __init__(self, sink: Any, down_for: float) -> None:
        super().__init__(sink, 0)
        self.until = time.monotonic() + down_for
        self.failures = 0

    def write(self, outcomes: Any, *args: Any, **kwargs: Any) -> Any:
        from ledbelly.errors import DatabaseUnavailable

        if time.monotonic() < self.until:
            self.failures += 1
            raise DatabaseUnavailable("connection refused")
        return self._sink.write(outcomes, *args, **kwargs)


def test_database_outage_pauses_and_resumes(sqlite_url: str, make_pipeline: Any) -> None:
    pipeline = make_pipeline(sqlite_url)
    flaky = _FlakySink(pipeline.sink, down_for=2.0)
    pipeline.sink = flaky
    source = MemorySource(_messages(200))
    daemon = Daemon(
        pipeline,
        [Binding(source, concurrency=2, wait_seconds=0.1)],
        WorkerOptions(batch_size=50, max_batch_wait=0.05, max_in_flight=100),
    )
    daemon.start()
    wait_for(lambda: flaky.failures > 0)
    wait_for(lambda: daemon.healthy() == (False, "database unavailable"), timeout=5)
    assert source.acked == 0
    assert daemon.wait_until_consumed(200, 30)
    assert daemon.healthy()[0]
    daemon.stop()
    daemon.wait()
    assert scalar(sqlite_url, "SELECT COUNT(*) FROM live_asset_accessed") == 200


def test_poison_messages_with_redrive_are_left_for_the_queue(
    sqlite_url: str, make_pipeline: Any
) -> None:
    pipeline = make_pipeline(sqlite_url)
    bad = Message("poison", "{not json", {"event_name": "asset_accessed"})
    source = MemorySource([*_messages(10), bad])
    daemon = Daemon(
        pipeline,
        [Binding(source, concurrency=1, wait_seconds=0.1)],
        WorkerOptions(batch_size=20, max_batch_wait=0.05, dead_letter_policy="redrive"),
    )
    daemon.start()
    assert daemon.wait_until_consumed(10, 30)
    daemon.stop()
    daemon.wait()
    assert scalar(sqlite_url, "SELECT COUNT(*) FROM ledbelly_dead_letters") == 0
    assert source.depth == 1  # released for the SQS redrive policy to move it
    assert "poison" in (pipeline.settings.log_dir / "sql-recovery.jsonl").read_text()


def test_a_poller_survives_unexpected_errors(
    sqlite_url: str, make_pipeline: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    pipeline = make_pipeline(sqlite_url)
    source = _FailsOnce(_messages(20))
    calls = source.calls
    daemon = Daemon(
        pipeline,
        [Binding(source, concurrency=1, wait_seconds=0.1)],
        WorkerOptions(batch_size=10, max_batch_wait=0.05),
    )
    monkeypatch.setattr("ledbelly.daemon.worker.backoff", lambda *a, **k: 0.01)
    try:
        daemon.start()
        assert daemon.wait_until_consumed(20, 30)
        assert daemon.healthy() == (True, "ok")  # the poller came back; nothing else died
    finally:
        daemon.stop()
        daemon.wait()
    assert calls["n"] >= 2 and source.acked == 20


class _FailsOnce(MemorySource):
    """Its first receive raises, as a bug in a source would."""

    def __init__(self, messages: list[Message]) -> None:
        super().__init__(messages)
        self.calls = {"n": 0}

    def receive(self, max_messages: int, wait_seconds: float) -> list[Message]:
        self.calls["n"] += 1
        if self.calls["n"] == 1:
            raise RuntimeError("boom")
        return super().receive(max_messages, wait_seconds)


class _RecordingSource(MemorySource):
    def __init__(self, messages: list[Message]) -> None:
        super().__init__(messages)
        self.extended: list[tuple[str, int]] = []

    def extend(self, messages: Any, seconds: int) -> None:
        self.extended.extend((m.message_id, seconds) for m in messages)


def test_slow_batches_have_their_visibility_extended(sqlite_url: str, make_pipeline: Any) -> None:
    pipeline = make_pipeline(sqlite_url)
    pipeline.sink = SlowSink(pipeline.sink, 3.0)
    source = _RecordingSource(_messages(5))
    daemon = Daemon(
        pipeline,
        [Binding(source, 1, 0.1, visibility_timeout=2)],
        WorkerOptions(batch_size=10, max_batch_wait=0.05, housekeeping_interval=0.2),
    )
    daemon.start()
    assert daemon.wait_until_consumed(5, 30)
    daemon.stop()
    daemon.wait()
    assert {mid for mid, _ in source.extended} == {f"m-{i}" for i in range(5)}
    assert all(seconds == 2 for _, seconds in source.extended)


def test_memory_source_fed_lazily_behaves_like_a_queue() -> None:
    made: list[int] = []

    def feed() -> Any:
        for i in range(25):
            made.append(i)
            yield _messages(1, prefix=f"lazy{i}")[0]

    source = MemorySource(feed=feed())
    first = source.receive(10, 0)
    assert len(first) == 10 and len(made) == 10  # nothing made before it was asked for
    source.release(first[5:])
    again = source.receive(10, 0)
    assert [m.message_id for m in again[:5]] == [m.message_id for m in first[5:]]
    source.ack(first[:5] + again)
    rest = source.receive(100, 0)
    assert len(rest) == 10 and source.receive(10, 0) == []
    source.ack(rest)
    assert source.acked == 25 and source.in_flight == 0


def test_two_writers_commit_everything_once(db_url: str, make_pipeline: Any) -> None:
    pipeline = make_pipeline(db_url)
    first = _messages(200)
    again = [
        Message(m.message_id, m.body, dict(m.attributes), handle=f"second-{i}")
        for i, m in enumerate(first[:50])
    ]  # redelivered copies, new receipt handles
    source = MemorySource([*first, *again])
    daemon = Daemon(
        pipeline,
        [Binding(source, concurrency=2, wait_seconds=0.1)],
        WorkerOptions(batch_size=20, max_batch_wait=0.05, writers=2),
    )
    daemon.start()
    assert daemon.wait_until_consumed(250, 30)
    daemon.stop()
    daemon.wait()
    assert daemon.stats.duplicates == 50
    assert scalar(db_url, "SELECT COUNT(*) FROM live_asset_accessed") == 200
    assert scalar(db_url, "SELECT COUNT(*) FROM ledbelly_messages") == 200


class _CountsReleases(MemorySource):
    def __init__(self, messages: list[Message]) -> None:
        super().__init__(messages)
        self.released: list[str] = []

    def release(self, messages: Any, delay: int = 0) -> None:
        self.released.extend(m.message_id for m in messages)
        super().release(messages, delay)


def test_a_failure_after_the_ack_releases_nothing(
    sqlite_url: str, make_pipeline: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Replaying unknown events into a new table runs after the ack: its failure must not
    hand back messages SQS has already deleted."""
    pipeline = make_pipeline(sqlite_url)
    pipeline.processor.created_tables.append(pipeline.catalog.tables["live_asset_accessed"])

    def broken_replay() -> int:
        raise RuntimeError("replay failed")

    monkeypatch.setattr(pipeline, "replay_created", broken_replay)
    source = _CountsReleases(_messages(10))
    daemon = Daemon(pipeline, [Binding(source, concurrency=1, wait_seconds=0.1)],
                    WorkerOptions(batch_size=10, max_batch_wait=0.05))  # fmt: skip
    try:
        daemon.start()
        assert daemon.wait_until_consumed(10, 30)
        assert daemon.healthy() == (True, "ok")
    finally:
        daemon.stop()
        daemon.wait()
    assert source.acked == 10 and source.released == []
