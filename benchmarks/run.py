#!/usr/bin/env python
"""ledbelly benchmarks, run by hand: ``.venv/bin/python benchmarks/run.py``.

Every figure is the median of ``--runs`` runs, and every throughput comes with a ceiling
measured in the same run (the same work done by the cheapest means available), so the
ratio stays meaningful on a noisy machine. See benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import collections
import io
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson
import sqlalchemy
from common import (
    BENCH_DB,
    Figure,
    _cpu_with_children,
    _progress,
    all_columns,
    create_all_tables,
    drop_database,
    fresh_database,
    mariadb_admin,
    new_pipeline,
    peak_rss_mb,
    print_table,
    rss_now_mb,
    server_versions,
    to_message,
    write_jsonl,
)
from honest import bench_daemon_memory, bench_honest

from ledbelly import kernels
from ledbelly.config import AwsSettings, QueueSettings
from ledbelly.daemon.worker import Binding, Daemon, WorkerOptions
from ledbelly.db.bulk import copy_text
from ledbelly.ingest.parallel import choose_workers, ingest_paths
from ledbelly.message import Message, message_id_for
from ledbelly.ops.logs import EventLogs
from ledbelly.ops.tuning import tune_gc
from ledbelly.schema.model import Catalog
from ledbelly.simulate import generate_messages
from ledbelly.sources.files import read_path
from ledbelly.sources.memory import MemorySource
from ledbelly.transform.processor import Processor

SECTIONS = ("parse", "honest", "daemon", "sqlite", "postgresql", "mariadb", "moto", "rss")

PG_RATIO_TARGET = 0.5  # ingest into PostgreSQL / COPY of the same rows
PARSE_WARM_UP = 5_000  # messages of another seed processed before the clock starts
PARSE_TARGET = 30_000.0  # events per CPU-second, parse + coerce + trim
PARSE_RATIO_TARGET = 0.2  # of orjson.loads of the same bodies, in the same run
LEDBELLY_RUBY = 750.0  # events/s, the Ruby LEDbelly's own figure on PostgreSQL
MOTO_DEPTH = 200  # moto slows down as its queue fills; keep it shallow
MOTO_TARGET = 0.8  # daemon / raw drain
RSS_MESSAGES = 100_000
RSS_EARLY = 10_000
RSS_TARGET_MB = 150.0
MARIADB_CHUNK = 1000


# ----- 1. parse -----------------------------------------------------------------------------


def bench_parse(messages: list[Message], runs: int, workdir: Path) -> list[Figure]:
    catalog = Catalog.load()
    fig = Figure(
        "parse",
        "process(): parse+coerce+trim",
        "ev/CPU-s",
        ceiling_name="orjson.loads only",
        target=PARSE_TARGET,
        target_text=f"of target {PARSE_TARGET:,.0f}/s",
        ratio_target=PARSE_RATIO_TARGET,
    )
    bodies = [m.body for m in messages]
    loads = orjson.loads
    warm_up = [to_message(m) for m in generate_messages(PARSE_WARM_UP, seed=1_000_003, fmt="mixed")]
    for run in range(runs):
        logs = EventLogs(workdir / f"parse-log-{run}")
        processor = Processor(catalog, "postgresql", logs, all_columns)
        process = processor.process
        for m in warm_up:  # a running daemon's state: hot tables compiled, caches filled
            process(m)
        start = time.process_time()
        for m in messages:
            process(m)
        fig.values.append(len(messages) / (time.process_time() - start))
        logs.close()

        start = time.process_time()
        for b in bodies:
            loads(b)
        fig.ceilings.append(len(bodies) / (time.process_time() - start))
        _progress(
            f"parse run {run + 1}: {fig.values[-1]:,.0f} ev/CPU-s, decode {fig.ceilings[-1]:,.0f}"
        )
    return [fig]


# ----- 2. ingest ----------------------------------------------------------------------------

Grouped = dict[str, list[dict[str, Any]]]


def collect_rows(processor: Processor, messages: Iterable[Message]) -> Grouped:
    """The rows the pipeline writes for ``messages``, by table (the ledger excluded)."""
    grouped: Grouped = collections.defaultdict(list)
    for m in messages:
        for name, row in processor.process(m).rows:
            grouped[name].append(row)
    return dict(grouped)


def _columns(rows: list[dict[str, Any]]) -> list[str]:
    return list(rows[0])


def ceiling_postgresql(grouped: Grouped) -> float:
    """COPY of the same rows, their text rendered before the clock starts."""
    import psycopg2

    conn = psycopg2.connect(host="127.0.0.1", port=5432, user="postgres", dbname=BENCH_DB)
    try:
        with conn.cursor() as cur:
            cur.execute("TRUNCATE " + ", ".join(f'"{t}"' for t in grouped))
        conn.commit()
        loads = []
        for table, rows in grouped.items():
            cols = _columns(rows)
            times = frozenset(c for c in cols if any(isinstance(r[c], datetime) for r in rows))
            names = ", ".join(f'"{c}"' for c in cols)
            text = copy_text(rows, cols, times)
            loads.append((f'COPY "{table}" ({names}) FROM STDIN', text))
        start = time.perf_counter()
        with conn.cursor() as cur:
            for sql, text in loads:
                cur.copy_expert(sql, io.StringIO(text))
        conn.commit()
        return time.perf_counter() - start
    finally:
        conn.close()


def _insert_sql(table: str, columns: list[str], quote: str, mark: str) -> str:
    """One row's INSERT, names quoted with ``quote`` and ``mark`` as the driver's placeholder."""
    names = ", ".join(f"{quote}{c}{quote}" for c in columns)
    return (
        f"INSERT INTO {quote}{table}{quote} ({names}) VALUES ({', '.join([mark] * len(columns))})"
    )


def ceiling_mariadb(grouped: Grouped) -> float:
    conn = mariadb_admin(BENCH_DB)
    try:
        cur = conn.cursor()
        for table in grouped:
            cur.execute(f"TRUNCATE TABLE `{table}`")
        conn.commit()
        start = time.perf_counter()
        for table, rows in grouped.items():
            cols = _columns(rows)
            sql = _insert_sql(table, cols, quote="`", mark="%s")
            params = [tuple(r[c] for c in cols) for r in rows]
            for i in range(0, len(params), MARIADB_CHUNK):
                cur.executemany(sql, params[i : i + MARIADB_CHUNK])
        conn.commit()
        return time.perf_counter() - start
    finally:
        conn.close()


def ceiling_sqlite(grouped: Grouped, path: str) -> float:
    import sqlite3

    sqlite3.register_adapter(datetime, lambda d: d.isoformat(" "))
    conn = sqlite3.connect(path)
    try:
        conn.execute("PRAGMA journal_mode=WAL")  # as ledbelly's engine sets it
        conn.execute("PRAGMA synchronous=NORMAL")
        for table in grouped:
            conn.execute(f'DELETE FROM "{table}"')
        conn.commit()
        start = time.perf_counter()
        for table, rows in grouped.items():
            cols = _columns(rows)
            sql = _insert_sql(table, cols, quote='"', mark="?")
            conn.executemany(sql, [tuple(r[c] for c in cols) for r in rows])
        conn.commit()
        return time.perf_counter() - start
    finally:
        conn.close()


def bench_ingest(kind: str, jsonl: Path, events: int, runs: int, workdir: Path) -> list[Figure]:
    bulk = {
        "sqlite": "executemany, 1 tx",
        "postgresql": "COPY per table, 1 tx",
        "mariadb": f"multi-row INSERT x{MARIADB_CHUNK}, 1 tx",
    }[kind]
    wall = Figure(
        f"ingest {kind}",
        "ingest_paths in-process (wall)",
        "ev/s",
        ceiling_name=f"same rows, {bulk}",
        target=LEDBELLY_RUBY,
        target_text=f"LEDbelly's {LEDBELLY_RUBY:.0f}/s (PG)",
        ratio_target=PG_RATIO_TARGET if kind == "postgresql" else None,
    )
    cpu = Figure(f"ingest {kind}", "ingest_paths in-process (CPU of its processes)", "ev/CPU-s")
    for run in range(runs):
        url = fresh_database(kind, workdir)
        pipeline = new_pipeline(url, workdir)
        try:
            create_all_tables(pipeline)
        finally:
            pipeline.close()
        settings = pipeline.settings
        workers = choose_workers(settings, [str(jsonl)], None).count
        start, cpu_start = time.perf_counter(), _cpu_with_children()
        stats = ingest_paths(settings, [str(jsonl)], workers)
        elapsed, cpu_used = time.perf_counter() - start, _cpu_with_children() - cpu_start
        if stats.messages != events or stats.dead_letters:
            raise RuntimeError(
                f"{kind}: ingest accounted for {stats.messages} of {events} "
                f"messages, {stats.dead_letters} dead letters"
            )
        pipeline = new_pipeline(url, workdir)
        try:
            grouped = collect_rows(pipeline.processor, read_path(str(jsonl)))
        finally:
            pipeline.close()
        wall.name = f"ingest_paths in-process (wall, {workers} worker{'s' if workers > 1 else ''})"
        if kind == "postgresql":
            seconds = ceiling_postgresql(grouped)
        elif kind == "mariadb":
            seconds = ceiling_mariadb(grouped)
        else:
            seconds = ceiling_sqlite(grouped, url.removeprefix("sqlite:///"))
        wall.values.append(events / elapsed)
        cpu.values.append(events / cpu_used)
        wall.ceilings.append(events / seconds)
        rows = sum(len(r) for r in grouped.values())
        _progress(
            f"{kind} run {run + 1}: ingest {wall.values[-1]:,.0f} ev/s "
            f"({cpu.values[-1]:,.0f} ev/CPU-s); ceiling {wall.ceilings[-1]:,.0f} ev/s "
            f"({rows} rows in {len(grouped)} tables, {seconds:.2f} s)"
        )
    drop_database(kind)
    return [wall, cpu]


# ----- 3. moto ------------------------------------------------------------------------------


def _send(client: Any, queue_url: str, raw: list[dict[str, Any]]) -> None:
    for i in range(0, len(raw), 10):
        client.send_message_batch(
            QueueUrl=queue_url,
            Entries=[
                {
                    "Id": str(n),
                    "MessageBody": m["Body"],
                    "MessageAttributes": {
                        k: {"DataType": "String", "StringValue": v["StringValue"]}
                        for k, v in m["MessageAttributes"].items()
                    },
                }
                for n, m in enumerate(raw[i : i + 10])
            ],
        )


def raw_drain(client: Any, queue_url: str, expected: int, threads: int = 2) -> float:
    """Seconds for ``threads`` plain receive + delete loops to empty the queue."""
    done = [0] * threads

    def loop(k: int) -> None:
        while True:
            resp = client.receive_message(
                QueueUrl=queue_url,
                MaxNumberOfMessages=10,
                WaitTimeSeconds=0,
                MessageAttributeNames=["All"],
            )
            msgs = resp.get("Messages", [])
            if not msgs:
                return
            client.delete_message_batch(
                QueueUrl=queue_url,
                Entries=[
                    {"Id": str(n), "ReceiptHandle": m["ReceiptHandle"]} for n, m in enumerate(msgs)
                ],
            )
            done[k] += len(msgs)

    workers = [threading.Thread(target=loop, args=(k,)) for k in range(threads)]
    start = time.perf_counter()
    for t in workers:
        t.start()
    for t in workers:
        t.join()
    elapsed = time.perf_counter() - start
    if sum(done) < expected:  # more is possible: moto, like SQS, may deliver twice
        raise RuntimeError(f"raw drain took {sum(done)} of {expected} messages")
    return elapsed


def moto_server_process() -> tuple[subprocess.Popen[bytes], str]:
    """moto's SQS server in its own process, as a real server would be.

    In-process, moto and the daemon would share one interpreter lock, and the ratio would
    measure that contention rather than ledbelly's overhead.
    """
    import socket

    from ledbelly.demo import free_port

    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return proc, f"http://127.0.0.1:{port}"
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError("moto's server did not start")


def bench_moto(runs: int, seed: int, workdir: Path) -> list[Figure]:
    from ledbelly.sources.sqs import SqsSource, sqs_client

    raw_fig = Figure("moto", f"raw receive+delete, 2 threads, depth {MOTO_DEPTH}", "msg/s")
    fig = Figure(
        "moto",
        "Daemon -> SQLite, 2 pollers, wait 1 s",
        "msg/s",
        ceiling_name="raw receive+delete",
        ratio_target=MOTO_TARGET,
    )
    server, endpoint = moto_server_process()
    try:
        aws = AwsSettings(
            region="us-east-1", access_key_id="x", secret_access_key="x", endpoint_url=endpoint
        )
        client = sqs_client(aws)
        for run in range(runs):
            raw = list(generate_messages(MOTO_DEPTH, seed + 100 + run, fmt="mixed"))
            queue_url = client.create_queue(
                QueueName=f"ledbelly-bench-{run}-{time.monotonic_ns()}"
            )["QueueUrl"]
            _send(client, queue_url, raw)
            raw_rate = MOTO_DEPTH / raw_drain(client, queue_url, MOTO_DEPTH)

            _send(client, queue_url, raw)
            pipeline = new_pipeline(fresh_database("sqlite", workdir), workdir)
            create_all_tables(pipeline)
            source = SqsSource(sqs_client(aws, read_timeout=11), QueueSettings(queue_url, 2, 1, 60))
            daemon = Daemon(
                pipeline,
                [Binding(source, concurrency=2, wait_seconds=1, visibility_timeout=60)],
                WorkerOptions(),
            )
            start = time.perf_counter()
            daemon.start()
            try:
                deadline = start + 120
                while daemon.stats.messages < MOTO_DEPTH and time.perf_counter() < deadline:
                    time.sleep(0.005)
                elapsed = time.perf_counter() - start
            finally:
                daemon.stop()
                daemon.wait()
                pipeline.close()
            if daemon.stats.messages < MOTO_DEPTH:
                raise RuntimeError(f"daemon took {daemon.stats.messages} of {MOTO_DEPTH}")
            client.delete_queue(QueueUrl=queue_url)
            raw_fig.values.append(raw_rate)
            fig.values.append(MOTO_DEPTH / elapsed)
            fig.ceilings.append(raw_rate)
            _progress(
                f"moto run {run + 1}: raw {raw_rate:,.0f} msg/s, daemon "
                f"{fig.values[-1]:,.0f} msg/s ({elapsed:.2f} s)"
            )
    finally:
        server.terminate()
        server.wait(timeout=10)
    return [raw_fig, fig]


# ----- 4. rss -------------------------------------------------------------------------------


def lazy_source(raw: Iterator[dict[str, Any]]) -> MemorySource:
    """The in-memory source fed lazily: messages are made only when the daemon asks."""

    def messages() -> Iterator[Message]:
        for m in raw:
            body = m["Body"]
            attrs = {k: v["StringValue"] for k, v in m["MessageAttributes"].items()}
            yield Message(
                message_id_for(m["MessageId"], body),
                body,
                attrs,
                handle=m["ReceiptHandle"],
                sent_at=time.time(),
            )

    return MemorySource(name="lazy", feed=messages())


def rss_child(kind: str, messages: int, seed: int) -> dict[str, float]:
    """In a fresh process: the daemon over ``messages`` lazily generated ones."""
    workdir = Path(tempfile.mkdtemp(prefix="ledbelly-rss-"))
    try:
        pipeline = new_pipeline(fresh_database(kind, workdir), workdir)
        create_all_tables(pipeline)
        source = lazy_source(generate_messages(messages, seed, fmt="mixed"))
        daemon = Daemon(pipeline, [Binding(source, concurrency=2, wait_seconds=1)], WorkerOptions())
        baseline = rss_now_mb()
        early = float("nan")
        sampled_max = baseline
        start = time.perf_counter()
        daemon.start()
        deadline = start + 1800
        try:
            while daemon.stats.messages < messages and time.perf_counter() < deadline:
                time.sleep(0.05)
                now = rss_now_mb()
                sampled_max = max(sampled_max, now)
                if early != early and daemon.stats.messages >= RSS_EARLY:
                    early = now
            elapsed = time.perf_counter() - start
            final = rss_now_mb()
        finally:
            daemon.stop()
            daemon.wait()
            pipeline.close()
        if daemon.stats.messages < messages or daemon.stats.dead_letters:
            raise RuntimeError(
                f"daemon took {daemon.stats.messages} of {messages} messages, "
                f"{daemon.stats.dead_letters} dead letters"
            )
        return {
            "baseline_mb": baseline,
            "early_mb": early,
            "final_mb": final,
            "sampled_max_mb": sampled_max,
            "peak_mb": peak_rss_mb(),
            "ru_maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "events_per_s": messages / elapsed,
            "seconds": elapsed,
        }
    finally:
        drop_database(kind)
        shutil.rmtree(workdir, ignore_errors=True)


def bench_rss(runs: int, seed: int, kind: str) -> list[Figure]:
    peak = Figure(
        "rss",
        f"peak RSS (VmHWM), daemon -> {kind}",
        "MB",
        target=RSS_TARGET_MB,
        target_text=f"<= {RSS_TARGET_MB:.0f} MB",
        higher_is_better=False,
    )
    base = Figure("rss", "RSS before start (statm)", "MB")
    early = Figure("rss", f"RSS after {RSS_EARLY:,} messages (statm)", "MB")
    final = Figure(
        "rss",
        f"RSS after {RSS_MESSAGES:,} messages (statm)",
        "MB",
        target=RSS_TARGET_MB,
        target_text=f"<= {RSS_TARGET_MB:.0f} MB",
        higher_is_better=False,
    )
    rate = Figure("rss", f"daemon throughput over {RSS_MESSAGES:,} (incl. generation)", "ev/s")
    for run in range(runs):
        cmd = [
            sys.executable,
            str(Path(__file__).resolve()),
            "--rss-child",
            "--rss-db",
            kind,
            "--seed",
            str(seed + 1000 + run),
        ]
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise RuntimeError(f"rss child failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
        res = json.loads(proc.stdout.strip().splitlines()[-1])
        peak.values.append(res["peak_mb"])
        base.values.append(res["baseline_mb"])
        early.values.append(res["early_mb"])
        final.values.append(res["final_mb"])
        rate.values.append(res["events_per_s"])
        _progress(
            f"rss run {run + 1}: peak {res['peak_mb']:.0f} MB (ru_maxrss "
            f"{res['ru_maxrss_mb']:.0f}, inherited from this parent), before "
            f"{res['baseline_mb']:.0f}, at 10k {res['early_mb']:.0f}, at 100k "
            f"{res['final_mb']:.0f} MB; {res['events_per_s']:,.0f} ev/s"
        )
    return [peak, base, early, final, rate]


# ----- main ---------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "--events", type=int, default=20_000, help="events for parse and ingest (default 20000)"
    )
    p.add_argument("--runs", type=int, default=3, help="runs per figure (default 3)")
    p.add_argument(
        "--sizes",
        default="20000,100000",
        help="events for honest (each) and daemon (the largest), comma-separated",
    )
    p.add_argument("--seed", type=int, default=7)
    p.add_argument(
        "--only", default=",".join(SECTIONS), help=f"comma-separated subset of {','.join(SECTIONS)}"
    )
    p.add_argument(
        "--rss-db",
        choices=("sqlite", "postgresql", "mariadb"),
        default="sqlite",
        help="database for the rss section (default sqlite)",
    )
    p.add_argument("--rss-child", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    only = {s.strip() for s in args.only.split(",") if s.strip()}
    unknown = only - set(SECTIONS)
    if unknown:
        p.error(f"unknown sections: {', '.join(sorted(unknown))}")
    args.sections = [s for s in SECTIONS if s in only]
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    tune_gc()  # as `ledbelly run` and `ledbelly ingest` do before their first message
    if args.rss_child:
        print(json.dumps(rss_child(args.rss_db, RSS_MESSAGES, args.seed)))
        return 0
    began = time.perf_counter()
    only = set(args.sections)
    pg_sections = {"postgresql"} if only & {"honest", "daemon"} else set()
    versions = server_versions(only | pg_sections | ({args.rss_db} if "rss" in only else set()))
    print("ledbelly benchmarks")
    print(
        f"  machine   {platform.platform()}, {os.cpu_count()} CPUs, "
        f"{platform.processor() or platform.machine()}"
    )
    print(
        f"  python    {platform.python_version()} ({platform.python_implementation()}), "
        f"SQLAlchemy {sqlalchemy.__version__}"
    )
    print(f"  ledbelly  {kernels.status()} (LEDBELLY_PURE_PYTHON=1 for the pure-Python code)")
    for name, version in versions.items():
        print(f"  {name:<9} {version}")
    print(
        f"  params    --events {args.events} --runs {args.runs} --seed {args.seed} "
        f"--only {','.join(args.sections)}; workload generate_messages(fmt=mixed); "
        f"moto depth {MOTO_DEPTH}; rss {RSS_MESSAGES:,} messages into {args.rss_db}"
    )
    print(
        "  figures   median of the runs; ratio = median of per-run (figure / ceiling)", flush=True
    )

    figures: list[Figure] = []
    workdir = Path(tempfile.mkdtemp(prefix="ledbelly-bench-"))
    try:
        if "parse" in only:
            msgs = [to_message(m) for m in generate_messages(args.events, args.seed, "mixed")]
            figures += bench_parse(msgs, args.runs, workdir)
            del msgs
        sizes = [int(x) for x in args.sizes.split(",") if x.strip()]
        if "honest" in only:
            figures += bench_honest(sizes, args.runs, args.seed, workdir)
        if "daemon" in only:
            figures += bench_daemon_memory(max(sizes), args.runs, args.seed, workdir)
        dbs = [k for k in ("sqlite", "postgresql", "mariadb") if k in only]
        if dbs:
            jsonl = workdir / "events.jsonl"
            write_jsonl(jsonl, args.events, args.seed)
            for kind in dbs:
                figures += bench_ingest(kind, jsonl, args.events, args.runs, workdir)
        if "moto" in only:
            figures += bench_moto(args.runs, args.seed, workdir)
        if "rss" in only:
            figures += bench_rss(args.runs, args.seed, args.rss_db)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    print()
    print_table(figures)
    print(f"\n(total {time.perf_counter() - began:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
