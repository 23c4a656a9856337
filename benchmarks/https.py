#!/usr/bin/env python
"""The HTTPS intake end to end, run by hand: ``.venv/bin/python benchmarks/https.py``.

Signed events per second into PostgreSQL with ``--clients`` concurrent clients, each
POST timed until its 2xx (which comes only after the event's commit), beside
``ledbelly ingest`` of the same events into the same server in the same run. The daemon
is ``ledbelly run`` with an ``https:`` section, as ``--instances`` child processes
sharing the port (``reuse_port``; 2 by default, 1 for one process); the load generator
(httpx, asyncio, keep-alive) runs in this process on the same machine. Every figure is
the median of ``--runs`` runs. See benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from prometheus_client.parser import text_string_to_metric_families

from ledbelly.db.engine import normalize_url
from ledbelly.demo import (
    Delivery,
    JwksServer,
    LocalSigner,
    free_port,
    percentile,
    simulated_events,
)
from ledbelly.ingest.parallel import choose_workers, ingest_paths
from ledbelly.pipeline import Pipeline, PipelineSettings
from ledbelly.simulate import generate_messages

# Not benchmarks/run.py's, so both can run at once; $LEDBELLY_BENCH_DB names another.
BENCH_DB = os.environ.get("LEDBELLY_BENCH_DB", "ledbelly_bench_https")
PG_ADMIN = {"host": "127.0.0.1", "port": 5432, "user": "postgres", "dbname": "test"}
PG_URL = f"postgresql://postgres@127.0.0.1:5432/{BENCH_DB}"
ROOT = Path(__file__).resolve().parent.parent
TARGET_RATE = 2000.0  # signed events per second
TARGET_P99 = 1.0  # seconds to 2xx
WARM_UP = 2000  # events of another seed posted before the clock starts


@dataclass
class Run:
    rate: float  # events/s, first POST sent to last 2xx received
    p50: float
    p99: float
    daemon_cpu: float  # CPU seconds of the daemon's process during the timed part
    client_cpu: float  # CPU seconds of this process (the load generator) in that time
    batch: float  # mean rows per committed batch
    ingest: float  # ledbelly ingest of the same events, events/s
    extra: dict[str, float] = field(default_factory=dict)


def post_all(
    url: str, bodies: Sequence[str], clients: int, timeout: float = 30.0
) -> list[Delivery]:
    """POST every body over ``clients`` keep-alive connections, each with one request in
    flight, as a sender of webhooks does; the answers in the order of ``bodies``.

    A lean HTTP/1.1 client on asyncio streams: httpx's AsyncClient cost 1.6 ms of CPU per
    request here (3.5 ms with 32 connections), more than the daemon spends on an event,
    so the load generator would have measured itself."""
    parts = urllib.parse.urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    head = (
        f"POST {parts.path} HTTP/1.1\r\nHost: {parts.netloc}\r\n"
        "Content-Type: application/jwt\r\nContent-Length: "
    ).encode()
    answers: list[Delivery] = [Delivery(0, 0.0)] * len(bodies)
    todo = iter(range(len(bodies)))

    async def client() -> None:
        reader, writer = await asyncio.open_connection(host, port)
        try:
            for i in todo:
                data = bodies[i].encode()
                started = time.perf_counter()
                writer.write(head + str(len(data)).encode() + b"\r\n\r\n" + data)
                header = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout)
                length = 0
                for line in header.split(b"\r\n")[1:]:
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value)
                await reader.readexactly(length)
                answers[i] = Delivery(int(header[9:12]), time.perf_counter() - started)
        finally:
            writer.close()

    async def main() -> None:
        await asyncio.gather(*(client() for _ in range(clients)))

    asyncio.run(main())
    return answers


def progress(text: str) -> None:
    print(f"  .. {text}", file=sys.stderr, flush=True)


def pg_admin() -> Any:
    import psycopg2

    conn = psycopg2.connect(**PG_ADMIN)
    conn.autocommit = True
    return conn


def fresh_database(workdir: Path) -> str:
    """An empty ``BENCH_DB`` with every table created, so no DDL is timed."""
    conn = pg_admin()
    with conn.cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS {BENCH_DB} WITH (FORCE)")
        cur.execute(f"CREATE DATABASE {BENCH_DB}")
    conn.close()
    settings = PipelineSettings(
        url=normalize_url(PG_URL), log_dir=workdir / "log-setup", create_missing=True
    )
    pipeline = Pipeline(settings)
    try:
        pipeline.prepare()
        for table in pipeline.catalog:
            pipeline.tables.columns(table)
    finally:
        pipeline.close()
    return PG_URL


def drop_database() -> None:
    conn = pg_admin()
    with conn.cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS {BENCH_DB} WITH (FORCE)")
    conn.close()


def pg_version() -> str:
    try:
        conn = pg_admin()
        with conn.cursor() as cur:
            cur.execute("SHOW server_version")
            version = str(cur.fetchone()[0])
        conn.close()
        return version
    except Exception as exc:
        return f"unreachable ({type(exc).__name__})"


def process_cpu(pid: int) -> float:
    """utime + stime of a running process, in seconds (Linux ``/proc/PID/stat``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def own_cpu() -> float:
    t = os.times()
    return t.user + t.system


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, exc.read().decode()
    except (urllib.error.URLError, OSError):
        return 0, ""


def scrape(base: str) -> dict[str, float]:
    """Every sample of /metrics, by name and labels."""
    out: dict[str, float] = {}
    for family in text_string_to_metric_families(get(base + "/metrics")[1]):
        for s in family.samples:
            labels = ",".join(f"{k}={v}" for k, v in sorted(s.labels.items()))
            out[f"{s.name}{{{labels}}}" if labels else s.name] = s.value
    return out


class Daemon:
    """``ledbelly run`` with an https: section, as ``instances`` children. One serves
    /metrics on the intake's port; several share the port (``reuse_port``) and each
    serves /metrics on a port of its own, and their counters are summed."""

    def __init__(
        self,
        workdir: Path,
        jwks_url: str,
        issuer: str,
        options: Sequence[str] = (),
        instances: int = 1,
    ) -> None:
        self.port = free_port()
        shared = instances > 1
        config = workdir / "https.yml"
        config.write_text(
            f"https:\n  listen: 127.0.0.1:{self.port}\n  jwks_url: {jwks_url}\n"
            f"  issuer: {issuer}\n  max_pending: 5000\n"
            + ("  reuse_port: true\n" if shared else f"metrics_port: {self.port}\n")
            + "log_level: WARNING\n"
            + "".join(f"{o}\n" for o in options)
        )
        self.url = f"http://127.0.0.1:{self.port}/live-events"
        metrics_ports = [free_port() for _ in range(instances)] if shared else [self.port]
        self.bases = [f"http://127.0.0.1:{p}" for p in metrics_ports]
        self.err = workdir / "daemon.err"
        self.log = self.err.open("w")
        self.procs = [
            subprocess.Popen(
                [
                    *(sys.executable, "-m", "ledbelly.cli.main", "run", "-c", str(config)),
                    *("--db", PG_URL, "--log-dir", str(workdir / f"log-daemon-{i}")),
                    *(("--metrics-port", str(port)) if shared else ()),
                ],
                cwd=ROOT,
                stdout=subprocess.DEVNULL,
                stderr=self.log,
            )
            for i, port in enumerate(metrics_ports)
        ]
        until = time.monotonic() + 60
        for base in self.bases:
            while get(base + "/healthz")[0] != 200:
                if any(p.poll() is not None for p in self.procs) or time.monotonic() > until:
                    self.stop()
                    raise RuntimeError(
                        "the daemon did not come up: " + self.err.read_text()[-2000:]
                    )
                time.sleep(0.1)

    def cpu(self) -> float:
        return sum(process_cpu(p.pid) for p in self.procs)

    def scrape(self) -> dict[str, float]:
        """Every sample of every instance's /metrics, summed by name and labels."""
        total: dict[str, float] = collections.defaultdict(float)
        for base in self.bases:
            for key, value in scrape(base).items():
                total[key] += value
        return dict(total)

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self.log.close()


def one_run(
    n: int,
    events: list[dict[str, Any]],
    tokens: list[str],
    warm: list[str],
    jsonl: Path,
    args: argparse.Namespace,
    signer: LocalSigner,
    jwks: JwksServer,
    workdir: Path,
) -> Run:
    fresh_database(workdir)
    from ledbelly.demo import ISSUER

    daemon = Daemon(workdir, jwks.url, ISSUER, args.option, args.instances)
    try:
        answers = post_all(daemon.url, warm, args.clients)
        if any(a.status != 200 for a in answers):
            statuses = collections.Counter(a.status for a in answers)
            raise RuntimeError(
                f"warm-up answers {dict(statuses)}; the daemon said:\n"
                + daemon.err.read_text()[-3000:]
            )
        before = daemon.scrape()
        cpu0, own0 = daemon.cpu(), own_cpu()
        started = time.perf_counter()
        answers = post_all(daemon.url, tokens, args.clients)
        elapsed = time.perf_counter() - started
        cpu1, own1 = daemon.cpu(), own_cpu()
        after = daemon.scrape()
    finally:
        daemon.stop()
    bad = [a for a in answers if a.status != 200]
    if bad:
        raise RuntimeError(f"{len(bad)} of {n} POSTs not answered 200: {bad[:5]}")
    committed = after["ledbelly_https_commit_seconds_count"] - before.get(
        "ledbelly_https_commit_seconds_count", 0
    )
    batches = after["ledbelly_batch_size_count"] - before["ledbelly_batch_size_count"]
    rows = after["ledbelly_batch_size_sum"] - before["ledbelly_batch_size_sum"]
    insert = after["ledbelly_insert_seconds_sum"] - before["ledbelly_insert_seconds_sum"]
    stored = _scalar("SELECT COUNT(*) FROM ledbelly_messages")
    if committed != n or stored != n + len(warm):
        raise RuntimeError(f"committed {committed}, stored {stored}, of {n} + {len(warm)}")
    latencies = [a.seconds for a in answers]
    run = Run(
        rate=n / elapsed,
        p50=percentile(latencies, 50),
        p99=percentile(latencies, 99),
        daemon_cpu=cpu1 - cpu0,
        client_cpu=own1 - own0,
        batch=rows / max(1.0, batches),
        ingest=0.0,
        extra={"insert_seconds": insert, "batches": batches, "elapsed": elapsed},
    )
    run.ingest = ingest_rate(n, jsonl, workdir)
    return run


def ingest_rate(n: int, jsonl: Path, workdir: Path) -> float:
    """``ledbelly ingest`` of the same events into fresh tables, events/s (wall)."""
    url = fresh_database(workdir)
    settings = PipelineSettings(
        url=normalize_url(url), log_dir=workdir / "log-ingest", create_missing=True
    )
    workers = choose_workers(settings, [str(jsonl)], None).count
    started = time.perf_counter()
    stats = ingest_paths(settings, [str(jsonl)], workers)
    elapsed = time.perf_counter() - started
    if stats.messages != n or stats.dead_letters:
        raise RuntimeError(f"ingest: {stats.messages} of {n}, {stats.dead_letters} dead letters")
    return n / elapsed


def _scalar(sql: str) -> int:
    import psycopg2

    conn = psycopg2.connect(host="127.0.0.1", port=5432, user="postgres", dbname=BENCH_DB)
    try:
        with conn.cursor() as cur:
            cur.execute(sql)
            return int(cur.fetchone()[0])
    finally:
        conn.close()


def report(runs: list[Run], n: int, args: argparse.Namespace, out: Callable[[str], None]) -> None:
    def med(get: Callable[[Run], float]) -> float:
        return statistics.median(get(r) for r in runs)

    def each(get: Callable[[Run], float], fmt: str) -> str:
        return " / ".join(format(get(r), fmt) for r in runs)

    rate, p50, p99, ingest = (
        med(lambda r: r.rate),
        med(lambda r: r.p50),
        med(lambda r: r.p99),
        med(lambda r: r.ingest),
    )
    met = rate >= TARGET_RATE and p99 < TARGET_P99
    shape = "one process" if args.instances == 1 else f"{args.instances} processes sharing the port"
    out(f"\nHTTPS intake ({shape}) -> PostgreSQL: {n} signed events, {args.clients} clients, ")
    out(f"median of {len(runs)} runs (the runs: {each(lambda r: r.rate, ',.0f')})\n")
    out("| what | median (runs) |")
    out("|---|---|")
    out(
        f"| signed events/s, first POST to last 2xx | {rate:,.0f} "
        f"({each(lambda r: r.rate, ',.0f')}) |"
    )
    out(f"| time to 2xx p50 | {p50 * 1000:.0f} ms ({each(lambda r: r.p50 * 1000, '.0f')}) |")
    out(f"| time to 2xx p99 | {p99 * 1000:.0f} ms ({each(lambda r: r.p99 * 1000, '.0f')}) |")
    out(
        f"| `ledbelly ingest` of the same events | {ingest:,.0f} events/s "
        f"({each(lambda r: r.ingest, ',.0f')}) |"
    )
    out(f"| HTTPS / ingest | {rate / ingest:.2f} |")
    out(
        f"| daemon CPU per event (all processes) | {med(lambda r: r.daemon_cpu / n) * 1e6:.0f} µs |"
    )
    out(f"| load generator CPU per event | {med(lambda r: r.client_cpu / n) * 1e6:.0f} µs |")
    out(f"| rows per committed batch (mean) | {med(lambda r: r.batch):.1f} |")
    out(
        f"| database share of the run (insert + commit seconds / wall) | "
        f"{med(lambda r: r.extra['insert_seconds'] / r.extra['elapsed']):.0%} |"
    )
    verdict = "met" if met else "MISSED"
    out(f"\ntarget: >= {TARGET_RATE:,.0f} events/s with p99 < {TARGET_P99:.0f} s: {verdict}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--instances",
        type=int,
        default=2,
        help="ledbelly run processes sharing the port (https.reuse_port); 1 for one process.",
    )
    parser.add_argument(
        "--option",
        action="append",
        default=[],
        metavar="KEY: VALUE",
        help="A line added to the daemon's configuration, e.g. 'batch_linger: 0.005'.",
    )
    args = parser.parse_args(argv)
    n = args.events
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} CPUs; "
        f"Python {platform.python_version()}; PostgreSQL {pg_version()}"
    )
    with tempfile.TemporaryDirectory(prefix="ledbelly-bench-https-") as tmp:
        workdir = Path(tmp)
        progress(f"signing {n} events and {WARM_UP} warm-up events (not timed)")
        signer = LocalSigner()
        started = time.perf_counter()
        events = simulated_events(n, args.seed)
        tokens = [signer.sign(e) for e in events]
        warm = [signer.sign(e) for e in simulated_events(WARM_UP, args.seed + 1000)]
        progress(f"signed at {(n + WARM_UP) / (time.perf_counter() - started):,.0f}/s")
        jsonl = workdir / "events.jsonl"
        with jsonl.open("wb") as f:
            for m in generate_messages(n, seed=args.seed, fmt="mixed"):
                f.write(orjson.dumps(m) + b"\n")
        jwks = JwksServer(signer.jwks())
        runs: list[Run] = []
        try:
            for i in range(args.runs):
                runs.append(one_run(n, events, tokens, warm, jsonl, args, signer, jwks, workdir))
                r = runs[-1]
                progress(
                    f"run {i + 1}: {r.rate:,.0f} events/s, p50 {r.p50 * 1000:.0f} ms, "
                    f"p99 {r.p99 * 1000:.0f} ms, daemon CPU {r.daemon_cpu / n * 1e6:.0f} µs/event, "
                    f"client CPU {r.client_cpu / n * 1e6:.0f} µs/event, batch {r.batch:.1f}; "
                    f"ingest {r.ingest:,.0f} events/s"
                )
        finally:
            jwks.close()
            drop_database()
    report(runs, n, args, print)
    return 0


if __name__ == "__main__":
    sys.exit(main())
