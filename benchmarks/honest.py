"""The honest PostgreSQL figures: ``ledbelly ingest`` as a user runs it, against the
database's own bulk path on data rendered before the clock starts, and the daemon fed
from memory against ingest of the same messages. See benchmarks/README.md.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
from common import (
    BENCH_DB,
    PG_ADMIN,
    Figure,
    _progress,
    create_all_tables,
    drop_database,
    fresh_database,
    new_pipeline,
)

from ledbelly.daemon.worker import Binding, Daemon, WorkerOptions
from ledbelly.ingest.consume import ingest
from ledbelly.message import Message
from ledbelly.simulate import EVENT_WEIGHTS, generate_messages
from ledbelly.sources.files import IterSource, read_path
from ledbelly.sources.memory import MemorySource

HONEST_TARGET = 0.4  # `ledbelly ingest` / psql \copy of the same rows
DAEMON_TARGET = 0.8  # the daemon from memory / ingest of the same messages
CEILING_PREFIX = "ceiling_"
EVENT = "asset_accessed"  # the workload: Canvas's most common event, alone


def write_event_jsonl(path: Path, events: int, seed: int, event: str = EVENT) -> None:
    """``events`` Canvas raw ``event`` messages as SQS-message JSON lines."""
    saved = dict(EVENT_WEIGHTS)
    EVENT_WEIGHTS.clear()
    EVENT_WEIGHTS[event] = 1.0
    try:
        with path.open("wb") as fh:
            for raw in generate_messages(events, seed, fmt="canvas"):
                doc = {k: raw[k] for k in ("MessageId", "Body", "MessageAttributes")}
                fh.write(orjson.dumps(doc) + b"\n")
    finally:
        EVENT_WEIGHTS.clear()
        EVENT_WEIGHTS.update(saved)


def ledbelly_command() -> list[str]:
    """The ``ledbelly`` a user runs: the console script beside this interpreter."""
    script = Path(sys.executable).with_name("ledbelly")
    if script.exists():
        return [str(script)]
    return [sys.executable, "-c", "import sys; from ledbelly.cli import main; sys.exit(main())"]


def _psql() -> str | None:
    return shutil.which("psql")


def _pg(dbname: str = BENCH_DB) -> Any:
    import psycopg2

    conn = psycopg2.connect(**dict(PG_ADMIN, dbname=dbname))
    conn.autocommit = True
    return conn


def ingest_command(url: str, jsonl: Path, workdir: Path) -> float:
    """Wall seconds of ``ledbelly ingest`` in its own process, start-up included."""
    cmd = [*ledbelly_command(), "ingest", "--db", url, "--log-dir", str(workdir / "log-cmd")]
    start = time.perf_counter()
    proc = subprocess.run([*cmd, str(jsonl)], capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0 or "dead letters 0;" not in proc.stdout:
        raise RuntimeError(f"ingest failed ({proc.returncode}):\n{proc.stdout}{proc.stderr}")
    return elapsed


def _written_tables(cur: Any) -> list[str]:
    """The tables ingest filled, its own bookkeeping (the ledger) left out."""
    cur.execute(
        "SELECT relname FROM pg_stat_user_tables WHERE n_live_tup > 0 OR n_tup_ins > 0 "
        "ORDER BY relname"
    )
    names = [r[0] for r in cur.fetchall()]
    out = []
    for name in names:
        if name.startswith(("ledbelly_", CEILING_PREFIX)):
            continue
        cur.execute(f'SELECT EXISTS (SELECT 1 FROM "{name}")')
        if cur.fetchone()[0]:
            out.append(name)
    return out


def export_written(workdir: Path) -> list[tuple[str, str, Path]]:
    """The rows ingest wrote, as COPY text files, and an empty table of the same shape
    (columns, defaults, identity, indexes) for each: what the ceiling loads."""
    conn = _pg()
    out: list[tuple[str, str, Path]] = []
    try:
        with conn.cursor() as cur:
            for table in _written_tables(cur):
                cur.execute(
                    "SELECT column_name FROM information_schema.columns "
                    "WHERE table_name = %s AND is_identity = 'NO' ORDER BY ordinal_position",
                    (table,),
                )
                cols = ", ".join(f'"{r[0]}"' for r in cur.fetchall())
                path = workdir / f"{table}.copy"
                with path.open("w", encoding="utf-8") as fh:
                    cur.copy_expert(f'COPY (SELECT {cols} FROM "{table}") TO STDOUT', fh)
                copy = CEILING_PREFIX + table
                cur.execute(f'DROP TABLE IF EXISTS "{copy}"')
                cur.execute(f'CREATE TABLE "{copy}" (LIKE "{table}" INCLUDING ALL)')
                out.append((copy, cols, path))
    finally:
        conn.close()
    return out


def ceiling_psql(loads: list[tuple[str, str, Path]], workdir: Path) -> float:
    """Wall seconds of ``psql -1`` running ``\\copy`` of every exported file, one
    transaction; without psql, ``copy_expert`` of the same bytes read beforehand."""
    conn = _pg()
    with conn.cursor() as cur:
        cur.execute("TRUNCATE " + ", ".join(f'"{t}"' for t, _, _ in loads) + " RESTART IDENTITY")
    conn.close()
    psql = _psql()
    if psql is not None:
        script = workdir / "ceiling.sql"
        script.write_text(
            "".join(f"\\copy \"{t}\" ({cols}) FROM '{path}'\n" for t, cols, path in loads)
        )
        cmd = [psql, "-X", "-q", "-1", "-v", "ON_ERROR_STOP=1", "-f", str(script)]
        cmd += ["-h", str(PG_ADMIN["host"]), "-p", str(PG_ADMIN["port"])]
        cmd += ["-U", str(PG_ADMIN["user"]), "-d", BENCH_DB]
        start = time.perf_counter()
        subprocess.run(cmd, check=True, capture_output=True)
        return time.perf_counter() - start
    import io

    data = [(t, cols, path.read_bytes()) for t, cols, path in loads]  # before the clock
    start = time.perf_counter()
    conn = _pg()
    conn.autocommit = False
    with conn.cursor() as cur:
        for t, cols, text in data:
            cur.copy_expert(f'COPY "{t}" ({cols}) FROM STDIN', io.BytesIO(text))
    conn.commit()
    conn.close()
    return time.perf_counter() - start


def bench_honest(sizes: list[int], runs: int, seed: int, workdir: Path) -> list[Figure]:
    """`ledbelly ingest` (a subprocess, wall clock) vs psql \\copy of the rows it wrote."""
    how = "psql \\copy, 1 tx" if _psql() else "COPY of pre-rendered text, 1 tx"
    figures: list[Figure] = []
    for events in sizes:
        jsonl = workdir / f"{EVENT}-{events}.jsonl"
        write_event_jsonl(jsonl, events, seed)
        fig = Figure(
            f"honest pg {events // 1000}k",
            f"`ledbelly ingest` command, wall ({EVENT} x{events:,})",
            "ev/s",
            ceiling_name=f"same rows, {how}, indexed",
            ratio_target=HONEST_TARGET,
        )
        for run in range(runs):
            url = fresh_database("postgresql", workdir)
            pipeline = new_pipeline(url, workdir)
            try:
                create_all_tables(pipeline)
            finally:
                pipeline.close()
            seconds = ingest_command(url, jsonl, workdir)
            loads = export_written(workdir)
            ceiling = ceiling_psql(loads, workdir)
            fig.values.append(events / seconds)
            fig.ceilings.append(events / ceiling)
            _progress(
                f"honest {events} run {run + 1}: ingest command {fig.values[-1]:,.0f} ev/s "
                f"({seconds:.2f} s), "
                f"ceiling {fig.ceilings[-1]:,.0f} ev/s ({ceiling:.2f} s, "
                f"{', '.join(t for t, _, _ in loads)})"
            )
        figures.append(fig)
        jsonl.unlink()
    drop_database("postgresql")
    return figures


def _copies(messages: list[Message]) -> Iterator[Message]:
    """Fresh ``Message`` objects for one consumer: a source marks the ones it hands out."""
    for m in messages:
        yield Message(m.message_id, m.body, m.attributes, payload=m.payload)


def _fresh_pipeline(workdir: Path) -> Any:
    url = fresh_database("postgresql", workdir)
    pipeline = new_pipeline(url, workdir)
    create_all_tables(pipeline)
    return pipeline


def bench_daemon_memory(events: int, runs: int, seed: int, workdir: Path) -> list[Figure]:
    """The daemon (default worker options) consuming a ``MemorySource`` into PostgreSQL,
    against ``ingest`` in one process of the same messages, both in this process."""
    jsonl = workdir / f"{EVENT}-daemon.jsonl"
    write_event_jsonl(jsonl, events, seed + 1)
    messages = list(read_path(str(jsonl)))
    jsonl.unlink()
    fig = Figure(
        "daemon memory",
        f"Daemon <- MemorySource -> PostgreSQL ({EVENT} x{events:,})",
        "ev/s",
        ceiling_name="ingest, 1 process, same messages",
        ratio_target=DAEMON_TARGET,
    )
    for run in range(runs):
        pipeline = _fresh_pipeline(workdir)
        try:
            start = time.perf_counter()
            stats = ingest(pipeline, IterSource(_copies(messages)))
            ingest_s = time.perf_counter() - start
        finally:
            pipeline.close()
        if stats.messages != events or stats.dead_letters:
            raise RuntimeError(f"ingest took {stats.messages} of {events}")

        pipeline = _fresh_pipeline(workdir)
        source = MemorySource(_copies(messages), name="bench")
        daemon = Daemon(pipeline, [Binding(source, concurrency=1, wait_seconds=1)], WorkerOptions())
        try:
            start = time.perf_counter()
            daemon.start()
            done = daemon.wait_until_consumed(events, timeout=600)
            daemon_s = time.perf_counter() - start
        finally:
            daemon.stop()
            daemon.wait()
            pipeline.close()
        if not done or daemon.stats.dead_letters:
            raise RuntimeError(f"daemon took {daemon.stats.messages} of {events}")
        fig.values.append(events / daemon_s)
        fig.ceilings.append(events / ingest_s)
        _progress(
            f"daemon memory run {run + 1}: daemon {fig.values[-1]:,.0f} ev/s, "
            f"ingest {fig.ceilings[-1]:,.0f} ev/s"
        )
    drop_database("postgresql")
    return [fig]
