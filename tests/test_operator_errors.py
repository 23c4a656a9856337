"""A revoked grant is an operator's problem, not the data's: wait for the fix, lose nothing.

The daemon writes as a role of its own; the test revokes its INSERT on one table, sends
events for that table, and checks that the daemon pauses (``/healthz`` says why, the
``operator`` retry counter moves), stores no dead letter, and lands every event once the
grant is back. ``ingest`` stops at once with exit 3, committing nothing of the batch.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import create_engine, text

from conftest import canvas_event, fresh_database_url, sqs_message
from helpers import count, wait_for
from ledbelly.cli import main
from ledbelly.cli.options import EXIT_DATABASE
from ledbelly.daemon.worker import Binding, Daemon, WorkerOptions
from ledbelly.db.engine import normalize_url
from ledbelly.sources.memory import MemorySource

ROLE = "ledbelly_writer"


def _admin(url: str, *statements: str) -> None:
    engine = create_engine(normalize_url(url), isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        for sql in statements:
            conn.execute(text(sql))
    engine.dispose()


@pytest.fixture
def limited(tmp_path: Path, make_pipeline: Any) -> Iterator[tuple[str, str]]:
    """(admin URL, the writer role's URL) of a PostgreSQL database with every table made."""
    admin = fresh_database_url("postgresql", tmp_path)
    make_pipeline(admin)  # creates every table as the admin
    _admin(
        admin,
        f"DROP ROLE IF EXISTS {ROLE}",
        f"CREATE ROLE {ROLE} LOGIN",
        f"GRANT USAGE ON SCHEMA public TO {ROLE}",
        f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {ROLE}",
        f"GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO {ROLE}",
    )
    yield admin, admin.replace("postgres@", f"{ROLE}@", 1)
    _admin(admin, "DROP OWNED BY ledbelly_writer", f"DROP ROLE IF EXISTS {ROLE}")


def _events(n: int) -> list[Any]:
    return [
        sqs_message(f"op-{i}", "asset_accessed", canvas_event(asset_id=str(2107 * 10**13 + i)))
        for i in range(n)
    ]


def test_the_daemon_waits_for_a_revoked_grant_and_loses_nothing(
    limited: tuple[str, str], make_pipeline: Any
) -> None:
    admin, writer = limited
    _admin(admin, f"REVOKE INSERT ON live_asset_accessed FROM {ROLE}")
    source = MemorySource(_events(20))
    daemon = Daemon(
        make_pipeline(writer, create_missing=False),
        [Binding(source, concurrency=1, wait_seconds=0.1)],
        WorkerOptions(batch_size=10, max_batch_wait=0.05),
    )
    daemon.start()
    try:
        wait_for(lambda: daemon.healthy() == (False, "database refuses writes"), 30, "a pause")
        wait_for(lambda: daemon.metrics.snapshot()["retries"].get("operator", 0) >= 2, 30,
                 "retries counted as the operator's")  # fmt: skip
        assert count(admin, "ledbelly_dead_letters") == 0
        assert count(admin, "ledbelly_messages") == 0
        _admin(admin, f"GRANT INSERT ON live_asset_accessed TO {ROLE}")
        assert daemon.wait_until_consumed(20, 60)
    finally:
        daemon.stop()
        daemon.wait()
    assert count(admin, "live_asset_accessed") == 20
    assert count(admin, "ledbelly_dead_letters") == 0


def test_ingest_stops_at_once_on_a_revoked_grant(limited: tuple[str, str], tmp_path: Path) -> None:
    admin, writer = limited
    _admin(admin, f"REVOKE INSERT ON live_asset_accessed FROM {ROLE}")
    path = tmp_path / "events.jsonl"
    path.write_text("".join(m.body + "\n" for m in _events(5)))
    result = CliRunner().invoke(
        main, ["ingest", "--db", writer, "--log-dir", str(tmp_path / "log"), str(path)]
    )
    assert result.exit_code == EXIT_DATABASE, result.output
    assert "error: the database refuses writes: permission denied" in result.stderr
    assert "live_asset_accessed" in result.stderr
    assert count(admin, "ledbelly_messages") == 0 and count(admin, "ledbelly_dead_letters") == 0
