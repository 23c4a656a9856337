"""Many daemons on one queue: SQS spreads the messages, the ledger keeps rows exactly once.

Two ``ledbelly run`` processes share one queue of moto's SQS server and one database
(PostgreSQL, MariaDB). SQS delivers at least once; here that is forced: a third consumer
peeks at messages and, once a daemon holds one, makes it visible again (moto accepts an
earlier receipt handle), so the same message is in both daemons at once. One daemon is
killed with SIGKILL mid-run. Every message must end in the ledger once and as rows once,
with no dead letters: two writers racing for one message id is a duplicate, not an error.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy import text

from conftest import SCHEMAS, canvas_event, engine_for, queue_depth, send_all, sqs_message
from helpers import LEDGER_COUNT, count, scalar, simulated, wait_for
from ledbelly.message import Message

# ----- one database, two writers, one message id: deterministic ------------------------------


def _waiting_on_a_lock(url: str) -> bool:
    sql = (
        "SELECT COUNT(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
        "AND datname = current_database()"
        if url.startswith("postgresql")
        else "SELECT COUNT(*) FROM information_schema.INNODB_TRX WHERE trx_state = 'LOCK WAIT'"
    )
    return scalar(url, sql) > 0


def test_a_message_another_writer_commits_meanwhile_is_a_duplicate(
    server_db_url: str, make_pipeline: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another writer holds ``m-2`` uncommitted in the ledger while this batch is written:
    once it commits, ``m-2`` is a duplicate and the rest commits, without bisecting."""
    pipeline = make_pipeline(server_db_url)
    messages = [
        sqs_message(f"m-{i}", "asset_accessed", canvas_event(asset_name=f"p{i}")) for i in range(5)
    ]
    outcomes = [pipeline.processor.process(m) for m in messages]
    alone: list[Any] = []
    monkeypatch.setattr(pipeline.sink, "_dead_letter_alone", lambda *a: alone.append(a))
    other = engine_for(server_db_url)
    conn = other.connect()
    held = conn.begin()
    conn.execute(
        text(
            "INSERT INTO ledbelly_messages (message_id, outcome, processed_at) "
            "VALUES ('m-2', 'inserted', :t)"
        ),
        {"t": datetime.now(UTC).replace(tzinfo=None)},
    )
    result: dict[str, Any] = {}

    def write() -> None:
        try:
            result["report"] = pipeline.sink.write(outcomes)
        except Exception as exc:
            result["error"] = exc

    writer = threading.Thread(target=write)
    writer.start()
    try:
        wait_for(
            lambda: not writer.is_alive() or _waiting_on_a_lock(server_db_url),
            20,
            "the sink to wait for m-2",
        )
        assert writer.is_alive(), f"the sink did not wait for the other writer: {result}"
    finally:
        held.commit()
        conn.close()
        other.dispose()
    writer.join(30)
    report = result["report"]
    assert [m.message_id for m in report.duplicates] == ["m-2"]
    assert sorted(o.message.message_id for o in report.committed) == ["m-0", "m-1", "m-3", "m-4"]
    assert not alone, "the race was settled by bisecting to a dead letter, not as a duplicate"
    assert count(server_db_url, "live_asset_accessed") == 4
    assert count(server_db_url, "ledbelly_dead_letters") == 0


# ----- two daemon processes on one moto queue -------------------------------------------------


def _config(tmp_path: Path, endpoint: str, url: str) -> Path:
    """One configuration for every daemon, as on N hosts; /metrics on a port of its own."""
    cfg = {
        "aws": {"region": "us-east-1", "access_key_id": "testing", "secret_access_key": "testing"},
        "endpoint_url": endpoint,
        "queues": [url],
        "concurrency": 2,
        "wait_time_seconds": 1,
        "visibility_timeout": 5,
        "batch_size": 50,
        # Batches held up to a second: the forced redeliveries (0.15 s after a peek) find
        # their messages held by a daemon, not already committed and deleted.
        "max_batch_wait": 1.0,
        "batch_linger": 0.5,
        "shutdown_timeout": 10,
        "metrics_port": 0,
    }
    path = tmp_path / "sqs.yml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def _start(tmp_path: Path, name: str, cfg: Path, db: str) -> subprocess.Popen[bytes]:
    home = tmp_path / name
    home.mkdir(exist_ok=True)
    with (home / "daemon.log").open("ab") as log:
        return subprocess.Popen(
            [
                *(sys.executable, "-m", "ledbelly.cli.main", "run", "-c", str(cfg)),
                *("--db", db, "--create-missing", "--log-dir", str(home / "log")),
                *("--schemas", str(SCHEMAS)),
            ],
            cwd=home,
            stdout=log,
            stderr=log,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )


def _stop(proc: subprocess.Popen[bytes]) -> int:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    return proc.wait(timeout=30)


class _Traffic:
    """Sends in the background, keeping the queue shallow (moto slows when deep), and
    forces redeliveries: it peeks at visible messages (a receive with visibility 0) and
    a moment later makes them visible again by those receipt handles, which moto still
    honours once a daemon has received the message."""

    def __init__(self, client: Any, url: str) -> None:
        self.client, self.url = client, url
        self.sent = 0
        self.redelivered = 0
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self, messages: list[Message], depth: int = 120) -> None:
        for target, args in ((self._send, (messages, depth)), (self._redeliver, ())):
            t = threading.Thread(target=target, args=args, daemon=True)
            t.start()
            self._threads.append(t)

    def _send(self, messages: list[Message], depth: int) -> None:
        while self.sent < len(messages) and not self._stop.is_set():
            if queue_depth(self.client, self.url) > depth:
                time.sleep(0.1)
                continue
            send_all(self.client, self.url, messages[self.sent : self.sent + 50])
            self.sent = min(len(messages), self.sent + 50)

    def _redeliver(self) -> None:
        while not self._stop.is_set():
            # A long poll, competing with the daemons' pollers for each new message; a
            # zero-second peek lost every race to them on a quiet machine.
            got = self.client.receive_message(
                QueueUrl=self.url, MaxNumberOfMessages=10, VisibilityTimeout=0, WaitTimeSeconds=1
            ).get("Messages", [])
            if not got:
                continue
            self._stop.wait(0.15)  # a daemon receives them meanwhile, and holds them
            done = self.client.change_message_visibility_batch(
                QueueUrl=self.url,
                Entries=[
                    {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"], "VisibilityTimeout": 0}
                    for i, m in enumerate(got)
                ],
            )
            self.redelivered += len(done.get("Successful", []))

    def stop(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(timeout=10)


@pytest.fixture
def traffic(sqs_queue: tuple[Any, str]) -> Iterator[_Traffic]:
    t = _Traffic(*sqs_queue)
    yield t
    t.stop()


def _assert_exactly_once(db: str, total: int) -> None:
    assert scalar(db, LEDGER_COUNT) == total
    assert count(db, "ledbelly_messages", "WHERE outcome <> 'inserted'") == 0
    assert count(db, "ledbelly_dead_letters") == 0
    engine = engine_for(db)
    with engine.connect() as conn:
        per_table = conn.execute(
            text("SELECT target_table, COUNT(*) FROM ledbelly_messages GROUP BY target_table")
        ).all()
        canvas = 0
        for table, n in per_table:
            rows = conn.execute(text(f"SELECT COUNT(*) FROM {table}")).scalar_one()
            assert rows == n, f"{table}: {rows} rows for {n} ledger entries"
            canvas += n if table.startswith("live_") else 0
        assert conn.execute(text("SELECT COUNT(*) FROM live_stream")).scalar_one() == canvas
    engine.dispose()


def _log(tmp_path: Path, name: str) -> str:
    path = tmp_path / name / "daemon.log"
    return path.read_text() if path.exists() else ""


def _committed(log: str) -> float:
    """Messages a running daemon has handled, from its /metrics."""
    import urllib.request

    found = re.search(r"metrics on (http://\S+/metrics)", log)
    assert found, log[-3000:]
    with urllib.request.urlopen(found.group(1), timeout=10) as resp:
        page = resp.read().decode()
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in page.splitlines()
        if line.startswith("ledbelly_messages_total{")
    )


def _duplicates(log: str) -> int:
    found = re.search(r"stopped: \d+ messages, \d+ dead letters, (\d+) duplicates skipped", log)
    assert found, log[-3000:]
    return int(found.group(1))


@pytest.mark.slow
def test_two_daemons_on_one_queue_store_every_message_once(
    server_db_url: str,
    tmp_path: Path,
    sqs_endpoint: str,
    sqs_queue: tuple[Any, str],
    traffic: _Traffic,
) -> None:
    client, url = sqs_queue
    db = server_db_url
    unique = simulated(500, seed=21)
    # A producer that sends some events twice: SQS gives each send its own MessageId, so
    # both are messages of their own, each stored once.
    messages = unique + [
        Message(f"again-{i}", m.body, m.attributes) for i, m in enumerate(unique[::20])
    ]
    total = len(messages)
    cfg = _config(tmp_path, sqs_endpoint, url)
    first = _start(tmp_path, "a", cfg, db)
    # The first creates the tables; N daemons creating them at once would race.
    wait_for(lambda: "consuming" in _log(tmp_path, "a"), 60, "the first daemon to consume")
    second = _start(tmp_path, "b", cfg, db)
    try:
        wait_for(lambda: "consuming" in _log(tmp_path, "b"), 60, "the second daemon to consume")
        traffic.start(messages)
        wait_for(lambda: scalar(db, LEDGER_COUNT, missing=-1) >= total // 3, 120, "a third")
        shares = [_committed(_log(tmp_path, name)) for name in ("a", "b")]
        assert all(shares), f"both daemons must be working when one is killed: {shares}"
        second.kill()  # SIGKILL mid-run: its uncommitted messages come back in 5 s
        second.wait()
        wait_for(
            lambda: traffic.sent == total and scalar(db, LEDGER_COUNT, missing=-1) >= total,
            240,
            "every message in the ledger",
        )
        traffic.stop()
        wait_for(lambda: queue_depth(client, url) == 0, 60, "the queue to drain")
    finally:
        code = _stop(first)
        if second.poll() is None:
            second.kill()
    assert code == 0
    _assert_exactly_once(db, total)
    for name in ("a", "b"):
        said = _log(tmp_path, name)
        assert "Traceback" not in said and "writer failed" not in said, said[-3000:]
        errors = tmp_path / name / "log" / "sql-errors.log"
        assert not errors.exists() or not errors.read_text(), errors.read_text()[:3000]
    log = _log(tmp_path, "a")
    assert traffic.redelivered > 0, "no message was delivered twice: the test proved nothing"
    # Which daemon met the redelivered copies is up to SQS; b's count died with it.
    print(f"forced redeliveries {traffic.redelivered}, duplicates skipped by a {_duplicates(log)}")
