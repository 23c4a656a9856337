"""Nothing lost at the edges: a message not even a dead letter holds, failed visibility
extensions, the byte bound on what the daemon holds, and pruning the tables that grow."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import text

from conftest import canvas_event, engine_for, sqs_message
from helpers import SlowSink, count, ingest_all, scalar, wait_for
from ledbelly.cli.main import main
from ledbelly.cli.options import EXIT_CONFIG
from ledbelly.config import QueueSettings
from ledbelly.daemon import worker
from ledbelly.daemon.worker import Binding, Daemon, WorkerOptions
from ledbelly.db.prune import prune
from ledbelly.message import Message
from ledbelly.sources.memory import MemorySource
from ledbelly.sources.sqs import SqsSource

POISON = "poison-1"


def _messages(n: int, prefix: str = "m", pad: int = 0) -> list[Message]:
    out = []
    for i in range(n):
        m = sqs_message(
            f"{prefix}-{i}",
            "asset_accessed",
            canvas_event(asset_id=str(2107 * 10**13 + i), asset_name=f"p{i}"),
        )
        m.body += " " * pad  # whitespace: the same event, a bigger message
        out.append(m)
    return out


# ----- a message the database will not take, not even as a dead letter ----------------------


def _refuse_poison(url: str) -> None:
    """The database refuses the poison's row and its dead letter, by content."""
    engine = engine_for(url)
    with engine.begin() as conn:
        if engine.dialect.name == "sqlite":
            conn.execute(
                text(
                    "CREATE TRIGGER refuse_row BEFORE INSERT ON live_asset_accessed "
                    "WHEN NEW.asset_name = 'poison' BEGIN SELECT RAISE(ABORT, 'no poison'); END"
                )
            )
            conn.execute(
                text(
                    "CREATE TRIGGER refuse_dead BEFORE INSERT ON ledbelly_dead_letters "
                    f"WHEN NEW.message_id = '{POISON}' BEGIN SELECT RAISE(ABORT, 'no'); END"
                )
            )
        else:
            conn.execute(
                text(
                    "ALTER TABLE live_asset_accessed ADD CONSTRAINT refuse_row "
                    "CHECK (asset_name IS NULL OR asset_name <> 'poison')"
                )
            )
            conn.execute(
                text(
                    "ALTER TABLE ledbelly_dead_letters ADD CONSTRAINT refuse_dead "
                    f"CHECK (message_id <> '{POISON}')"
                )
            )
    engine.dispose()


class _RecordsReleases(MemorySource):
    """Records each release's delay, then hands the message back at once (a test cannot
    wait out 30 s, then 60 s...)."""

    def __init__(self, messages: list[Message]) -> None:
        super().__init__(messages)
        self.releases: list[tuple[str, int]] = []

    def release(self, messages: Sequence[Message], delay: int = 0) -> None:
        self.releases.extend((m.message_id, delay) for m in messages)
        super().release(messages, 0)


def test_a_message_not_even_a_dead_letter_holds_goes_back_alone_later_each_time(
    db_url: str, make_pipeline: Any, caplog: pytest.LogCaptureFixture
) -> None:
    pipeline = make_pipeline(db_url)
    _refuse_poison(db_url)
    good = _messages(19)
    poison = sqs_message(POISON, "asset_accessed", canvas_event(asset_name="poison"))
    source = _RecordsReleases([*good[:10], poison, *good[10:]])
    daemon = Daemon(
        pipeline,
        [Binding(source, concurrency=1, wait_seconds=0.1)],
        WorkerOptions(batch_size=25, max_batch_wait=0.2),
    )
    caplog.set_level(logging.INFO, "ledbelly")
    daemon.start()
    try:
        assert daemon.wait_until_consumed(19, 60)
        wait_for(lambda: len(source.releases) >= 3, 60, "the poison to be held back 3 times")
    finally:
        daemon.stop()
        daemon.wait()
    held_back = [(mid, delay) for mid, delay in source.releases if delay]
    assert {mid for mid, _ in source.releases} == {POISON}  # its batch was not released
    assert [d for _, d in held_back[:3]] == [
        worker.HOLD_BACK_FIRST,
        2 * worker.HOLD_BACK_FIRST,
        4 * worker.HOLD_BACK_FIRST,
    ]
    assert source.acked == 19 and daemon.stats.messages == 19
    assert count(db_url, "ledbelly_messages") == 19
    assert count(db_url, "ledbelly_messages", f"WHERE message_id = '{POISON}'") == 0
    assert count(db_url, "ledbelly_dead_letters") == 0
    assert count(db_url, "live_asset_accessed") == 19
    said = [r.getMessage() for r in caplog.records if "cannot be stored" in r.getMessage()]
    assert len(said) == 1 and POISON in said[0], said
    assert POISON in (pipeline.settings.log_dir / "sql-recovery.jsonl").read_text()
    assert daemon.metrics.snapshot()["retries"]["unstorable"] == len(held_back)


def test_memory_source_release_with_a_delay() -> None:
    source = MemorySource(_messages(3))
    got = source.receive(10, 0)
    source.release(got[:1], 1)
    source.release(got[1:2])
    assert [m.message_id for m in source.receive(10, 0)] == ["m-1"]
    assert source.depth == 1
    started = time.monotonic()
    again = source.receive(10, 5)  # waits for the delayed one, no longer
    assert [m.message_id for m in again] == ["m-0"]
    assert 0.8 < time.monotonic() - started < 3


def _receive(source: SqsSource, n: int, timeout: float) -> list[Message]:
    got: list[Message] = []
    until = time.monotonic() + timeout
    while len(got) < n and time.monotonic() < until:
        got.extend(source.receive(n - len(got), 1))
    assert len(got) == n, f"received {len(got)} of {n}"
    return got


def test_sqs_release_with_a_delay_and_an_extension_that_fails(
    sqs_queue: tuple[Any, str],
) -> None:
    client, url = sqs_queue
    client.send_message_batch(
        QueueUrl=url,
        Entries=[{"Id": str(n), "MessageBody": json.dumps({"n": n})} for n in range(2)],
    )
    source = SqsSource(client, QueueSettings(url, 1, 1, 60))
    try:
        got = _receive(source, 2, 10)
        first, second = got
        assert source.ack([second]) == []
        failed = source.extend([first, second], 60)  # second: deleted, its handle is stale
        assert list(failed) == [second] and "ReceiptHandleIsInvalid" in failed[second]
        source.release([first], 2)
        assert source.receive(10, 0) == []  # hidden for 2 s, not visible at once
        started = time.monotonic()
        back = _receive(source, 1, 15)
        assert time.monotonic() - started > 0.5
        assert back[0].message_id == first.message_id
    finally:
        source.close()


# ----- visibility extensions that fail --------------------------------------------------------


class _ExtendFails(MemorySource):
    """Extending ``m-0`` fails twice, then works; every other extension works."""

    def __init__(self, messages: list[Message]) -> None:
        super().__init__(messages)
        self.calls: list[tuple[str, float, bool]] = []  # (message id, when, extended)
        self._lock = threading.Lock()

    def extend(self, messages: Sequence[Message], seconds: int) -> Mapping[Message, str]:
        failed = {}
        with self._lock:
            for m in messages:
                fails = m.message_id == "m-0" and sum(c[0] == "m-0" for c in self.calls) < 2
                self.calls.append((m.message_id, time.monotonic(), not fails))
                if fails:
                    failed[m] = "ReceiptHandleIsInvalid: stale"
        return failed


def test_failed_extensions_are_retried_logged_once_and_counted(
    sqlite_url: str, make_pipeline: Any, caplog: pytest.LogCaptureFixture
) -> None:
    pipeline = make_pipeline(sqlite_url)
    pipeline.sink = SlowSink(pipeline.sink, 8.0)
    source = _ExtendFails(_messages(3))
    daemon = Daemon(
        pipeline,
        [Binding(source, 1, 0.1, visibility_timeout=10)],
        WorkerOptions(batch_size=10, max_batch_wait=0.3, housekeeping_interval=0.1),
    )
    caplog.set_level(logging.INFO, "ledbelly")
    daemon.start()
    try:
        assert daemon.wait_until_consumed(3, 30)
    finally:
        daemon.stop()
        daemon.wait()
    mine = [(when, ok) for mid, when, ok in source.calls if mid == "m-0"]
    assert [ok for _, ok in mine[:3]] == [False, False, True]
    # Due 5 s into a 10 s visibility; after a failure it is tried again within about a
    # second, not when an extension that worked would next be due (5 s later).
    assert mine[2][0] - mine[0][0] < 4
    others = [ok for mid, _, ok in source.calls if mid != "m-0"]
    assert others and all(others)
    assert daemon.metrics.snapshot()["retries"]["visibility"] == 2
    logged = [r.getMessage() for r in caplog.records]
    assert sum("could not extend the visibility" in line for line in logged) == 1
    assert sum("works again" in line for line in logged) == 1


# ----- the byte bound -------------------------------------------------------------------------


def test_pollers_wait_while_the_bodies_held_exceed_the_byte_bound(
    sqlite_url: str, make_pipeline: Any
) -> None:
    pipeline = make_pipeline(sqlite_url)
    pipeline.sink = SlowSink(pipeline.sink, 0.05)
    big = _messages(40, pad=200_000)  # 8 MB of bodies in all
    source = MemorySource(big)
    bound = 1_000_000
    daemon = Daemon(
        pipeline,
        [Binding(source, concurrency=1, wait_seconds=0.1)],
        WorkerOptions(batch_size=5, max_batch_wait=0.01, max_in_flight_bytes=bound),
    )
    daemon.start()
    peak = 0
    try:
        while source.acked < 40:
            peak = max(peak, daemon.held_bytes)
            time.sleep(0.002)
    finally:
        daemon.stop()
        daemon.wait()
    # Under the bound a poller receives once more: at most ten messages over it.
    assert bound / 2 < peak <= bound + 10 * 201_000, peak
    assert count(sqlite_url, "live_asset_accessed") == 40
    assert daemon.held_bytes == 0


# ----- ledbelly prune -------------------------------------------------------------------------

OLD = datetime(2020, 1, 1)


def _parked_and_inserted(url: str, make_pipeline: Any) -> None:
    """10 inserted, 2 dead letters, 2 unknown events; all processed long ago but one
    dead letter, which failed recently."""
    pipeline = make_pipeline(url)
    bad = [Message(f"bad-{i}", "{not json", {"event_name": "asset_accessed"}) for i in range(2)]
    unknown = [
        sqs_message(f"unk-{i}", "brand_new_event", canvas_event("brand_new_event"))
        for i in range(2)
    ]
    stats = ingest_all(pipeline, [*_messages(10), *bad, *unknown])
    assert (stats.dead_letters, stats.unknown) == (2, 2)
    engine = engine_for(url)
    with engine.begin() as conn:
        conn.execute(text("UPDATE ledbelly_messages SET processed_at = :t"), {"t": OLD})
        conn.execute(text("UPDATE ledbelly_unknown_events SET received_at = :t"), {"t": OLD})
        conn.execute(
            text("UPDATE ledbelly_dead_letters SET failed_at = :t WHERE message_id = 'bad-0'"),
            {"t": OLD},
        )
    engine.dispose()


def test_prune_deletes_old_rows_in_chunks_and_keeps_what_replay_needs(
    db_url: str, make_pipeline: Any
) -> None:
    _parked_and_inserted(db_url, make_pipeline)
    engine = engine_for(db_url)
    try:
        dry = prune(engine, 30, 30, dry_run=True)
        assert [(p.table, p.rows) for p in dry] == [
            ("ledbelly_dead_letters", 1),
            ("ledbelly_messages", 10),  # before the dead letter goes: it still holds its entry
        ]
        assert count(db_url, "ledbelly_messages") == 14
        done = prune(engine, 30, 30, chunk=3)
    finally:
        engine.dispose()
    assert [(p.table, p.rows, p.kept) for p in done] == [
        ("ledbelly_dead_letters", 1, 0),
        ("ledbelly_messages", 11, 3),  # bad-1 and the two unknown events are still parked
    ]
    assert scalar(db_url, "SELECT COUNT(*) FROM ledbelly_dead_letters WHERE message_id = 'bad-1'")
    remaining = engine_for(db_url)
    with remaining.connect() as conn:
        ids = set(conn.execute(text("SELECT message_id FROM ledbelly_messages")).scalars())
    remaining.dispose()
    assert ids == {"bad-1", "unk-0", "unk-1"}
    result = CliRunner().invoke(
        main, ["prune", "--db", db_url, "--unknown-older-than", "30", "--ledger-older-than", "14"]
    )
    assert result.exit_code == 0, result.output
    assert "ledbelly_unknown_events: deleted 2 rows" in result.output
    assert "ledbelly_messages: deleted 2 rows" in result.output
    assert "what is lost:" in result.output
    assert count(db_url, "ledbelly_unknown_events") == 0
    assert count(db_url, "ledbelly_messages") == 1  # bad-1, a recent dead letter
    assert count(db_url, "live_asset_accessed") == 10  # rows are never pruned


def test_prune_refuses_a_ledger_younger_than_sqs_retention(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'x.db'}"
    result = CliRunner().invoke(main, ["prune", "--db", db, "--ledger-older-than", "7"])
    assert result.exit_code == EXIT_CONFIG
    assert "below SQS's longest retention (14 days)" in result.output
    assert "stored twice" in result.output and "--force" in result.output
    nothing = CliRunner().invoke(main, ["prune", "--db", db])
    assert nothing.exit_code == EXIT_CONFIG and "name at least one" in nothing.output
