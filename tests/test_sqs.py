"""The daemon against a real SQS API (moto's server over HTTP) and real databases.

In-process tests drive ``Daemon`` with ``SqsSource``; the fault tests run ``ledbelly run``
as a separate process, so ``kill -9`` and SIGTERM hit a real process.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy import text

from conftest import (
    SCHEMAS,
    doc_examples,
    engine_for,
    queue_depth,
    require_docs,
    send_all,
    sqs_message,
)
from helpers import LEDGER_COUNT, scalar, simulated, wait_for
from ledbelly.config import QueueSettings
from ledbelly.daemon.worker import Binding, Daemon, WorkerOptions
from ledbelly.message import Message
from ledbelly.sources.sqs import SqsSource


def _in_process(pipeline: Any, client: Any, url: str, **options: Any) -> Daemon:
    source = SqsSource(client, QueueSettings(url, 2, 1, 30))
    return Daemon(
        pipeline,
        [Binding(source, 2, 1, 30)],
        WorkerOptions(
            batch_size=options.get("batch_size", 50), max_batch_wait=0.2, shutdown_timeout=10
        ),
    )


def _consume(pipeline: Any, client: Any, url: str, count: int, what: str) -> Daemon:
    """An in-process daemon run until it has accounted for ``count`` messages, then stopped."""
    daemon = _in_process(pipeline, client, url)
    daemon.start()
    try:
        assert daemon.wait_until_consumed(count, 90), f"timed out waiting for {what}"
    finally:
        daemon.stop()
        daemon.wait()
    return daemon


def test_every_documented_example_through_sqs(
    db_url: str, make_pipeline: Any, sqs_queue: tuple[Any, str]
) -> None:
    require_docs()
    client, url = sqs_queue
    examples = doc_examples()
    messages = [
        sqs_message(
            f"{f}-{n}-{i}",
            n,
            p,
            (
                p.get("metadata", {}).get("event_time")
                if f == "canvas"
                else p["data"][0].get("eventTime")
            )
            or "-",
        )
        for f, n, i, p in examples
    ]
    send_all(client, url, messages)
    daemon = _consume(make_pipeline(db_url), client, url, len(messages), "all examples")
    assert daemon.stats.rows["canvas"] + daemon.stats.rows["caliper"] == len(messages)
    assert daemon.stats.dead_letters == 0 and daemon.stats.unknown == 0
    assert queue_depth(client, url) == 0
    assert scalar(
        db_url, "SELECT COUNT(*) FROM ledbelly_messages WHERE outcome = 'inserted'"
    ) == len(messages)


def test_malformed_burst_mixed_into_good_traffic(
    db_url: str, make_pipeline: Any, sqs_queue: tuple[Any, str]
) -> None:
    client, url = sqs_queue
    good = simulated(120, seed=3)
    bad = [
        Message(f"bad-{i}", body, {"event_name": name})
        for i, (body, name) in enumerate(
            [
                ("{not json", "asset_accessed"),
                ("[]", "asset_accessed"),
                ('"x"', "logged_in"),
                (json.dumps({"metadata": {}, "body": "nope"}), "asset_accessed"),
                (json.dumps({"body": {}}), "asset_accessed"),
                (json.dumps({"sensor": "s", "dataVersion": "v", "data": "x"}), "logged_in"),
            ]
            * 5
        )
    ]
    mixed = [m for pair in zip(good[:30], bad, strict=True) for m in pair] + good[30:]
    send_all(client, url, mixed)
    daemon = _consume(make_pipeline(db_url), client, url, len(mixed), "the queue to drain")
    assert daemon.stats.dead_letters == len(bad)
    assert daemon.stats.rows["canvas"] + daemon.stats.rows["caliper"] == len(good)
    assert queue_depth(client, url) == 0
    assert scalar(db_url, "SELECT COUNT(*) FROM ledbelly_dead_letters") == len(bad)


# ----- the daemon as a process ----------------------------------------------------------------


def _config(tmp_path: Path, endpoint: str, url: str, **extra: Any) -> Path:
    cfg = {
        "aws": {"region": "us-east-1", "access_key_id": "testing", "secret_access_key": "testing"},
        "endpoint_url": endpoint,
        "queues": [url],
        "concurrency": 3,
        "wait_time_seconds": 1,
        "visibility_timeout": 5,
        "batch_size": 100,
        "max_batch_wait": 0.2,
        "shutdown_timeout": 10,
        **extra,
    }
    path = tmp_path / "sqs.yml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def _start(tmp_path: Path, cfg: Path, db: str) -> subprocess.Popen[bytes]:
    with (tmp_path / "daemon.log").open("ab") as log:
        return subprocess.Popen(
            [
                sys.executable,
                "-m",
                "ledbelly.cli.main",
                "run",
                "-c",
                str(cfg),
                "--db",
                db,
                "--create-missing",
                "--log-dir",
                str(tmp_path / "log"),
                "--schemas",
                str(SCHEMAS),
            ],
            cwd=tmp_path,
            stdout=log,
            stderr=log,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )


@pytest.fixture
def feeder(sqs_queue: tuple[Any, str]) -> Iterator[Any]:
    """Sends messages in the background, keeping the queue shallow (moto slows when deep)."""
    threads: list[threading.Thread] = []
    stop = threading.Event()

    def start(messages: list[Message], depth: int = 150) -> threading.Thread:
        client, url = sqs_queue

        def run() -> None:
            i = 0
            while i < len(messages) and not stop.is_set():
                if queue_depth(client, url) > depth:
                    time.sleep(0.1)
                    continue
                send_all(client, url, messages[i : i + 50])
                i += 50

        t = threading.Thread(target=run, daemon=True)
        t.start()
        threads.append(t)
        return t

    yield start
    stop.set()
    for t in threads:
        t.join(timeout=10)


def _stop(proc: subprocess.Popen[bytes]) -> int:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    return proc.wait(timeout=30)


def _assert_exactly_once(db: str, total: int) -> None:
    assert scalar(db, LEDGER_COUNT, missing=-1) == total
    engine = engine_for(db)
    with engine.connect() as conn:
        per_table = conn.execute(
            text(
                "SELECT target_table, COUNT(*) FROM ledbelly_messages WHERE outcome = 'inserted' "
                "GROUP BY target_table"
            )
        ).all()
        canvas = 0
        for table, n in per_table:
            rows = conn.execute(text(f"SELECT COUNT(*) FROM {table}")).scalar_one()
            assert rows == n, f"{table}: {rows} rows for {n} ledger entries"
            canvas += n if table.startswith("live_") else 0
        assert conn.execute(text("SELECT COUNT(*) FROM live_stream")).scalar_one() == canvas
    engine.dispose()


@pytest.mark.slow
def test_kill_9_mid_run_loses_and_duplicates_nothing(
    db_url: str, tmp_path: Path, sqs_endpoint: str, sqs_queue: tuple[Any, str], feeder: Any
) -> None:
    client, url = sqs_queue
    total = 1000
    feeder(simulated(total, seed=9))
    cfg = _config(tmp_path, sqs_endpoint, url)
    first = _start(tmp_path, cfg, db_url)
    try:
        wait_for(
            lambda: scalar(db_url, LEDGER_COUNT, missing=-1) >= 250,
            90,
            "the first daemon to commit 250 messages",
        )
    finally:
        first.kill()
        first.wait()
    second = _start(tmp_path, cfg, db_url)
    try:
        wait_for(
            lambda: (
                scalar(db_url, LEDGER_COUNT, missing=-1) >= total and queue_depth(client, url) == 0
            ),
            180,
            "the queue to drain after restart",
        )
    finally:
        assert _stop(second) == 0
    _assert_exactly_once(db_url, total)


@pytest.mark.slow
def test_sigterm_during_a_busy_run_exits_0_and_loses_nothing(
    sqlite_url: str, tmp_path: Path, sqs_endpoint: str, sqs_queue: tuple[Any, str]
) -> None:
    client, url = sqs_queue
    total = 400
    send_all(client, url, simulated(total, seed=11))
    cfg = _config(tmp_path, sqs_endpoint, url, shutdown_timeout=8, batch_size=20)
    proc = _start(tmp_path, cfg, sqlite_url)
    wait_for(
        lambda: scalar(sqlite_url, LEDGER_COUNT, missing=-1) >= 40, 60, "the daemon to be busy"
    )
    started = time.monotonic()
    assert _stop(proc) == 0
    assert time.monotonic() - started < 8 + 3
    committed = scalar(sqlite_url, LEDGER_COUNT, missing=-1)
    assert committed < total, "the test must stop the daemon mid-run"
    # Whatever did not commit is back in the queue, visible now (released) or soon.
    wait_for(
        lambda: queue_depth(client, url) == total - committed,
        30,
        "uncommitted messages to be back in the queue",
    )
    again = _start(tmp_path, cfg, sqlite_url)
    try:
        wait_for(
            lambda: scalar(sqlite_url, LEDGER_COUNT, missing=-1) >= total,
            120,
            "the rest to be consumed",
        )
    finally:
        assert _stop(again) == 0
    _assert_exactly_once(sqlite_url, total)


def _pg_cluster(action: str) -> None:
    version = sorted(os.listdir("/etc/postgresql"))[-1]
    subprocess.run(
        ["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", action],
        check=True,
        capture_output=True,
        timeout=60,
    )


@pytest.mark.slow
def test_postgresql_outage_mid_run(
    tmp_path: Path, sqs_endpoint: str, sqs_queue: tuple[Any, str], feeder: Any
) -> None:
    from conftest import fresh_database_url

    if not os.path.isdir("/etc/postgresql") or os.geteuid() != 0:
        pytest.skip("needs a local PostgreSQL cluster it may stop and start (root)")
    db = fresh_database_url("postgresql", tmp_path)
    client, url = sqs_queue
    total = 600
    feeder(simulated(total, seed=13))
    cfg = _config(tmp_path, sqs_endpoint, url, visibility_timeout=10)
    proc = _start(tmp_path, cfg, db)
    try:
        wait_for(
            lambda: scalar(db, LEDGER_COUNT, missing=-1) >= 150,
            90,
            "the daemon to commit 150 messages",
        )
        _pg_cluster("stop")
        try:
            time.sleep(20)
            assert proc.poll() is None, "the daemon must stay up while the database is down"
        finally:
            _pg_cluster("start")
        wait_for(
            lambda: scalar(db, LEDGER_COUNT, missing=-1) >= total and queue_depth(client, url) == 0,
            180,
            "the queue to drain after the outage",
        )
    finally:
        code = _stop(proc)
    assert code == 0
    _assert_exactly_once(db, total)
    log = (tmp_path / "daemon.log").read_text()
    assert log.count("database unavailable") == 1, log[-3000:]
    assert "database is back" in log


def test_ack_deletes_every_message_of_a_large_batch(sqs_queue: tuple[Any, str]) -> None:
    """A writer acknowledges a whole batch at once: its calls of ten run side by side."""
    from ledbelly.config import QueueSettings
    from ledbelly.sources.sqs import SqsSource

    client, url = sqs_queue
    for i in range(0, 45, 10):
        client.send_message_batch(
            QueueUrl=url,
            Entries=[
                {"Id": str(n), "MessageBody": json.dumps({"n": n})}
                for n in range(i, min(i + 10, 45))
            ],
        )
    source = SqsSource(client, QueueSettings(url, 1, 1, 60))
    try:
        received: list[Any] = []
        while len(received) < 45:
            got = source.receive(10, 1)
            assert got, "moto stopped handing out messages"
            received.extend(got)
        assert source.ack(received) == []
        source.release(received)  # anything not deleted would come straight back
        assert queue_depth(client, url) == 0
        assert source.receive(10, 0) == []
    finally:
        source.close()
