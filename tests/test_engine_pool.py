"""The pool pings a connection only after it sat idle, and replaces one the server closed.

Against the real servers: the server kills a pooled connection's session while it is
idle in the pool; the next checkout must hand out a working connection, not an error.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.pool import NullPool

from ledbelly.db import engine as engine_module
from ledbelly.db.engine import normalize_url, open_engine


def _backend_pid(engine: Engine) -> int:
    postgres = engine.dialect.name == "postgresql"
    with engine.connect() as conn:
        sql = "SELECT pg_backend_pid()" if postgres else "SELECT CONNECTION_ID()"
        return int(conn.execute(text(sql)).scalar_one())


def _kill(engine: Engine, pid: int) -> None:
    """Kill session ``pid`` from a connection outside the pool."""
    killer = create_engine(engine.url, poolclass=NullPool, isolation_level="AUTOCOMMIT")
    try:
        with killer.connect() as conn:
            if engine.dialect.name == "postgresql":
                conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
            else:
                conn.execute(text(f"KILL {int(pid)}"))
    finally:
        killer.dispose()


def _pings(engine: Engine) -> list[int]:
    """Counts ``do_ping`` calls on this engine's dialect."""
    calls: list[int] = []
    original = engine.dialect.do_ping

    def counting(dbapi_conn: Any) -> bool:
        calls.append(1)
        return bool(original(dbapi_conn))

    engine.dialect.do_ping = counting  # type: ignore[method-assign,assignment]
    return calls


@pytest.fixture
def pooled(server_db_url: str) -> Iterator[Engine]:
    """A pooled engine as ledbelly opens it, on PostgreSQL and on MariaDB."""
    engine = open_engine(normalize_url(server_db_url), pool_size=2)
    yield engine
    engine.dispose()


def test_a_connection_killed_while_idle_is_replaced_at_checkout(
    pooled: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    pings = _pings(pooled)
    monkeypatch.setattr(engine_module, "PING_AFTER_IDLE", 0.0)  # every checkout is "idle"
    pid = _backend_pid(pooled)
    _kill(pooled, pid)
    assert _backend_pid(pooled) != pid  # a new session, no error
    assert pings, "the idle connection was not pinged"


def test_a_connection_used_moments_ago_is_not_pinged(
    pooled: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    pings = _pings(pooled)
    monkeypatch.setattr(engine_module, "PING_AFTER_IDLE", 3600.0)
    checkouts: list[int] = []
    event.listen(pooled, "checkout", lambda *_: checkouts.append(1))
    pids = {_backend_pid(pooled) for _ in range(5)}
    assert len(checkouts) == 5 and len(pids) == 1  # one pooled connection, reused
    assert pings == []
