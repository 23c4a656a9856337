"""What the benchmark sections share: the figures and their table, the servers, helpers.

Split out of ``run.py`` so each section's module stays readable; see benchmarks/README.md.
"""

from __future__ import annotations

import os
import resource
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from ledbelly.db.engine import normalize_url
from ledbelly.message import Message
from ledbelly.pipeline import Pipeline, PipelineSettings
from ledbelly.schema.model import TableDef
from ledbelly.simulate import generate_messages

BENCH_DB = os.environ.get("LEDBELLY_BENCH_DB", "ledbelly_bench")
PG_ADMIN = {"host": "127.0.0.1", "port": 5432, "user": "postgres", "dbname": "test"}
PG_URL = f"postgresql://postgres@127.0.0.1:5432/{BENCH_DB}"
MARIADB_ADMIN = {"host": "127.0.0.1", "port": 3306, "user": "root", "passwd": ""}
MARIADB_URL = f"mysql://root@127.0.0.1:3306/{BENCH_DB}"


# ----- results and the table ---------------------------------------------------------------


@dataclass
class Figure:
    """One line of the table: a value per run, optionally a same-run ceiling and a target."""

    section: str
    name: str
    unit: str
    values: list[float] = field(default_factory=list)
    ceilings: list[float] = field(default_factory=list)
    ceiling_name: str = ""
    target: float | None = None
    target_text: str = ""
    higher_is_better: bool = True
    ratio_target: float | None = None  # a target for the ratio to the ceiling

    @property
    def median(self) -> float:
        return statistics.median(self.values) if self.values else float("nan")

    @property
    def ratio(self) -> float | None:
        """The median of the per-run ratios value / ceiling (each pair measured together)."""
        if not self.ceilings:
            return None
        return statistics.median(v / c for v, c in zip(self.values, self.ceilings, strict=True))


def _num(x: float) -> str:
    if x != x:  # NaN
        return "-"
    if abs(x) >= 100:
        return f"{x:,.0f}"
    if abs(x) >= 10:
        return f"{x:.1f}"
    return f"{x:.2f}"


def _verdict(figure: Figure) -> str:
    parts: list[str] = []
    ratio = figure.ratio
    if figure.ratio_target is not None and ratio is not None:
        ok = ratio >= figure.ratio_target
        parts.append(f"ratio >= {figure.ratio_target:g}: {'met' if ok else 'NOT met'}")
    if figure.target is not None:
        m = figure.median
        if figure.higher_is_better:
            parts.append(f"{m / figure.target:.2f}x {figure.target_text}")
        else:
            ok = m <= figure.target
            parts.append(f"{figure.target_text}: {'met' if ok else 'NOT met'}")
    return "; ".join(parts)


def print_table(figures: Sequence[Figure], out: Callable[[str], None] = print) -> None:
    header = [
        "section",
        "figure",
        "median",
        "unit",
        "ceiling (same run)",
        "ceiling",
        "ratio",
        "target",
        "runs",
    ]
    rows = [header]
    for f in figures:
        ratio = f.ratio
        rows.append(
            [
                f.section,
                f.name,
                _num(f.median),
                f.unit,
                f.ceiling_name,
                _num(statistics.median(f.ceilings)) if f.ceilings else "",
                f"{ratio:.2f}" if ratio is not None else "",
                _verdict(f),
                " / ".join(_num(v) for v in f.values),
            ]
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    numeric = {2, 5, 6}

    def line(r: list[str]) -> str:
        cells = [
            c.rjust(w) if i in numeric else c.ljust(w)
            for i, (c, w) in enumerate(zip(r, widths, strict=True))
        ]
        return " | ".join(cells).rstrip()

    out(line(rows[0]))
    out("-+-".join("-" * w for w in widths))
    for r in rows[1:]:
        out(line(r))


# ----- shared helpers -----------------------------------------------------------------------


def to_message(raw: dict[str, Any]) -> Message:
    """A ``generate_messages`` item (boto3's shape) as the ``Message`` a source hands over."""
    attrs = {k: v["StringValue"] for k, v in raw["MessageAttributes"].items()}
    return Message(raw["MessageId"], raw["Body"], attrs)


def all_columns(table: TableDef) -> frozenset[str] | None:
    return frozenset(c.name for c in table.columns)


def rss_now_mb() -> float:
    """Resident set size now, from /proc/self/statm."""
    with open("/proc/self/statm") as fh:
        pages = int(fh.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def peak_rss_mb() -> float:
    """This process's peak RSS: ``VmHWM``, and ``ru_maxrss`` where there is no /proc.

    ``ru_maxrss`` survives fork and exec on Linux, so a child started by a big parent
    reports the parent's peak. ``VmHWM`` belongs to the child's own address space.
    """
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KB on Linux


def create_all_tables(pipeline: Pipeline) -> None:
    """System tables and every catalog table, before anything is timed."""
    pipeline.prepare()
    for table in pipeline.catalog:
        pipeline.tables.columns(table)


def pg_admin() -> Any:
    import psycopg2

    conn = psycopg2.connect(**PG_ADMIN)
    conn.autocommit = True
    return conn


def mariadb_admin(db: str | None = None) -> Any:
    import MySQLdb

    kwargs: dict[str, Any] = dict(MARIADB_ADMIN, charset="utf8mb4")
    if db:
        kwargs["db"] = db
    return MySQLdb.connect(**kwargs)


def fresh_database(kind: str, workdir: Path) -> str:
    """A new, empty database of ``kind``; returns its URL."""
    if kind == "sqlite":
        path = workdir / f"bench-{time.monotonic_ns()}.db"
        return f"sqlite:///{path}"
    if kind == "postgresql":
        conn = pg_admin()
        with conn.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS {BENCH_DB} WITH (FORCE)")
            cur.execute(f"CREATE DATABASE {BENCH_DB}")
        conn.close()
        return PG_URL
    if kind == "mariadb":
        conn = mariadb_admin()
        cur = conn.cursor()
        cur.execute(f"DROP DATABASE IF EXISTS {BENCH_DB}")
        cur.execute(f"CREATE DATABASE {BENCH_DB} CHARACTER SET utf8mb4")
        conn.close()
        return MARIADB_URL
    raise ValueError(kind)


def drop_database(kind: str) -> None:
    if kind == "postgresql":
        conn = pg_admin()
        with conn.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS {BENCH_DB} WITH (FORCE)")
        conn.close()
    elif kind == "mariadb":
        conn = mariadb_admin()
        conn.cursor().execute(f"DROP DATABASE IF EXISTS {BENCH_DB}")
        conn.close()


def new_pipeline(url: str, workdir: Path) -> Pipeline:
    log_dir = workdir / f"log-{time.monotonic_ns()}"
    return Pipeline(PipelineSettings(url=normalize_url(url), log_dir=log_dir, create_missing=True))


def server_versions(databases: set[str]) -> dict[str, str]:
    """The versions of the database servers the chosen sections use, asked of the servers."""
    out: dict[str, str] = {}
    if "postgresql" in databases:
        try:
            conn = pg_admin()
            with conn.cursor() as cur:
                cur.execute("SHOW server_version")
                out["PostgreSQL"] = str(cur.fetchone()[0])
            conn.close()
        except Exception as exc:
            out["PostgreSQL"] = f"unreachable ({type(exc).__name__})"
    if "mariadb" in databases:
        try:
            conn = mariadb_admin()
            cur = conn.cursor()
            cur.execute("SELECT VERSION()")
            out["MariaDB"] = str(cur.fetchone()[0])
            conn.close()
        except Exception as exc:
            out["MariaDB"] = f"unreachable ({type(exc).__name__})"
    return out


def _cpu_with_children() -> float:
    """CPU seconds of this process and of its finished children (ingest's workers)."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def _progress(text: str) -> None:
    print(f"  .. {text}", file=sys.stderr, flush=True)


def write_jsonl(path: Path, events: int, seed: int) -> None:
    with path.open("wb") as fh:
        for raw in generate_messages(events, seed, fmt="mixed"):
            fh.write(
                orjson.dumps(
                    {
                        "MessageId": raw["MessageId"],
                        "Body": raw["Body"],
                        "MessageAttributes": raw["MessageAttributes"],
                    }
                )
                + b"\n"
            )
