"""``ledbelly stats``: what the database holds, read in seconds however large it is.

No figure scans a table. How each is obtained:

- **Rows per table.** PostgreSQL: ``pg_stat_user_tables.n_live_tup`` (kept current by
  every insert, flushed by each backend within seconds), else ``pg_class.reltuples``
  (refreshed by VACUUM/ANALYZE): an estimate. MariaDB/MySQL: ``information_schema.TABLES
  .TABLE_ROWS``, InnoDB's sampled estimate. SQLite keeps no statistics; there the figure
  is ``MAX(rowid) - MIN(rowid) + 1``, two b-tree descents, exact unless rows were deleted
  (replaying unknown events deletes some), and shown as an estimate for that reason.
  ``exact=True`` runs ``COUNT(*)`` instead, which does read every table.
- **Newest event and lag.** The row with the highest primary key, ``ORDER BY pk DESC
  LIMIT 1`` (one index descent): its ``event_time`` (else ``processed_at``). On the
  system tables the indexed ``MAX(processed_at)`` (ledger) and ``MAX(failed_at)`` (dead
  letters). Lag is the report's time minus that newest event time.
- **Events per minute, last hour.** ``live_stream.event_time`` has no index
  (``schemas/custom/live_stream.yml`` declares none), so the counts come from the ledger,
  one row per message: ``processed_at >= now - 1 hour`` grouped by minute, a range scan
  of ``ix_ledbelly_messages_processed_at`` that touches only the last hour's entries.
  The minutes are processing time, not event time.
- **Dead letters and unknown events waiting, by event type.** Grouped over the newest
  ``BREAKDOWN_LIMIT`` rows by primary key (bounded, however many are stored); their
  totals are the row figures above.
- **Ledger size.** Its row figure, plus bytes on disk where the database tells them
  (``pg_total_relation_size``; ``DATA_LENGTH + INDEX_LENGTH``); on SQLite the file size.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import (
    Connection,
    DateTime,
    Engine,
    String,
    column,
    desc,
    func,
    inspect,
    select,
    table,
    text,
)
from sqlalchemy import exc as sa_exc
from sqlalchemy.sql.expression import ColumnClause

from ledbelly.db.tables import DEAD_LETTERS, LEDGER, UNKNOWN, datetime_type

STREAM = "live_stream"
PREFIXES = ("live_", "ims_", "ledbelly_")
NOT_OURS = ("led_geo_maxmind",)
BREAKDOWN_LIMIT = 100_000
BLOCKS = " ▁▂▃▄▅▆▇█"
_NEWEST_COLUMNS = ("event_time", "eventtime", "processed_at", "received_at", "failed_at")


@dataclass(frozen=True)
class TableStats:
    """One table: its row figure, how that was obtained, its newest event and the lag."""

    name: str
    rows: int
    estimated: bool
    newest: datetime | None
    newest_column: str | None
    lag_seconds: float | None


@dataclass
class DbStats:
    """The whole report; ``render_stats`` and ``stats_json`` show it."""

    database: str
    dialect: str
    taken_at: datetime
    count_method: str
    tables: list[TableStats] = field(default_factory=list)
    per_minute: list[int] = field(default_factory=list)  # 60 minutes, oldest first
    per_minute_source: str = ""
    dead_letters: dict[str, int] = field(default_factory=dict)
    unknown_events: dict[str, int] = field(default_factory=dict)
    breakdown_limited: bool = False
    ledger_rows: int = 0
    ledger_estimated: bool = False
    ledger_bytes: int | None = None
    database_bytes: int | None = None
    notes: list[str] = field(default_factory=list)

    def table(self, name: str) -> TableStats | None:
        return next((t for t in self.tables if t.name == name), None)


# ----- gathering -------------------------------------------------------------------------


def collect_stats(
    engine: Engine, exact: bool = False, now: datetime | None = None, database: str | None = None
) -> DbStats:
    """Read the report from ``engine``; see the module docstring for how, without scans."""
    taken = (now or datetime.now(UTC)).astimezone(UTC)
    dialect = engine.dialect.name
    with engine.connect() as conn:
        names = sorted(
            n
            for n in inspect(conn).get_table_names()
            if n.startswith(PREFIXES) and n not in NOT_OURS
        )
        keys = _primary_keys(conn, names)
        times = _time_columns(conn, names)
        if exact:
            counts = {n: (_exact_count(conn, n), False) for n in names}
            method = "COUNT(*) per table (exact)"
        else:
            counts, method = _row_figures(conn, names)
        stats = DbStats(
            database=database or engine.url.render_as_string(hide_password=True),
            dialect=dialect,
            taken_at=taken,
            count_method=method,
        )
        for name in names:
            rows, estimated = counts.get(name, (0, True))
            newest, newest_column = _newest(conn, name, keys.get(name), times.get(name, []))
            lag = None if newest is None else (taken - newest).total_seconds()
            stats.tables.append(TableStats(name, rows, estimated, newest, newest_column, lag))
        if LEDGER in names:
            stats.per_minute = _per_minute(conn, taken)
            stats.per_minute_source = (
                f"{LEDGER}.processed_at (index "
                "ix_ledbelly_messages_processed_at), processing time; "
                f"{STREAM}.event_time has no index"
            )
            stats.ledger_rows, stats.ledger_estimated = counts.get(LEDGER, (0, True))
        for source, target in ((DEAD_LETTERS, stats.dead_letters), (UNKNOWN, stats.unknown_events)):
            if source in names and keys.get(source):
                grouped, limited = _by_event(conn, source, keys[source])
                target.update(grouped)
                stats.breakdown_limited |= limited
        stats.ledger_bytes, stats.database_bytes = _sizes(conn, engine)
    if dialect == "postgresql" and any(
        t.estimated and t.rows == 0 and t.newest is not None for t in stats.tables
    ):
        stats.notes.append(
            "some tables hold rows that the statistics do not count yet "
            "(shown as ~0); they catch up within seconds, or run ANALYZE"
        )
    return stats


def unknown_event_counts(engine: Engine) -> dict[str, int]:
    """Stored unknown events by type, over the newest ``BREAKDOWN_LIMIT`` of them."""
    with engine.connect() as conn:
        if UNKNOWN not in inspect(conn).get_table_names():
            return {}
        return _by_event(conn, UNKNOWN, "id")[0]


def _primary_keys(conn: Connection, names: Sequence[str]) -> dict[str, str]:
    """Each table's single-column primary key (catalog queries, no table reads)."""
    out: dict[str, str] = {}
    if conn.dialect.name == "sqlite":
        for name in names:
            pk = [r[1] for r in conn.exec_driver_sql(f'PRAGMA table_info("{name}")') if r[5] == 1]
            if len(pk) == 1:
                out[name] = str(pk[0])
        return out
    rows = conn.execute(
        text(
            "SELECT k.table_name, k.column_name FROM information_schema.table_constraints c "
            "JOIN information_schema.key_column_usage k ON k.constraint_name = c.constraint_name "
            "AND k.table_schema = c.table_schema AND k.table_name = c.table_name "
            "WHERE c.constraint_type = 'PRIMARY KEY' AND c.table_schema = " + _schema_expr(conn)
        )
    )
    found: dict[str, list[str]] = {}
    for table_name, column_name in rows:
        found.setdefault(str(table_name), []).append(str(column_name))
    return {t: cols[0] for t, cols in found.items() if len(cols) == 1 and t in names}


def _time_columns(conn: Connection, names: Sequence[str]) -> dict[str, list[str]]:
    """Which of ``_NEWEST_COLUMNS`` each table has, in that order of preference."""
    wanted = set(_NEWEST_COLUMNS)
    out: dict[str, list[str]] = {}
    if conn.dialect.name == "sqlite":
        for name in names:
            cols = {str(r[1]) for r in conn.exec_driver_sql(f'PRAGMA table_info("{name}")')}
            out[name] = [c for c in _NEWEST_COLUMNS if c in cols]
        return out
    rows = conn.execute(
        text(
            "SELECT table_name, column_name FROM information_schema.columns WHERE table_schema = "
            + _schema_expr(conn)
            + " AND column_name IN ("
            + ", ".join(f"'{c}'" for c in _NEWEST_COLUMNS)
            + ")"
        )
    )
    found: dict[str, set[str]] = {}
    for table_name, column_name in rows:
        if column_name in wanted:
            found.setdefault(str(table_name), set()).add(str(column_name))
    return {n: [c for c in _NEWEST_COLUMNS if c in found.get(n, set())] for n in names}


def _schema_expr(conn: Connection) -> str:
    return "current_schema()" if conn.dialect.name == "postgresql" else "DATABASE()"


def _row_figures(conn: Connection, names: Sequence[str]) -> tuple[dict[str, tuple[int, bool]], str]:
    dialect = conn.dialect.name
    if dialect == "postgresql":
        rows = conn.execute(
            text(
                "SELECT c.relname, c.reltuples, s.n_live_tup FROM pg_class c "
                "JOIN pg_namespace n ON n.oid = c.relnamespace "
                "LEFT JOIN pg_stat_user_tables s ON s.relid = c.oid "
                "WHERE c.relkind IN ('r', 'p') AND n.nspname = current_schema()"
            )
        )
        out: dict[str, tuple[int, bool]] = {}
        for name, reltuples, live in rows:
            figure = int(live) if live else max(0, int(reltuples or 0))
            out[str(name)] = (figure, True)
        return out, "pg_stat_user_tables.n_live_tup (else pg_class.reltuples)"
    if dialect in ("mysql", "mariadb"):
        rows = conn.execute(
            text(
                "SELECT TABLE_NAME, TABLE_ROWS FROM information_schema.TABLES "
                "WHERE TABLE_SCHEMA = DATABASE()"
            )
        )
        return (
            {str(n): (int(r or 0), True) for n, r in rows},
            "information_schema.TABLES.TABLE_ROWS (InnoDB's sampled estimate)",
        )
    if dialect == "sqlite":
        out = {}
        for name in names:
            low, high = conn.exec_driver_sql(f'SELECT MIN(rowid), MAX(rowid) FROM "{name}"').one()
            out[name] = (0 if high is None else int(high) - int(low) + 1, True)
        return out, "MAX(rowid) - MIN(rowid) + 1 per table (exact unless rows were deleted)"
    return (
        {n: (_exact_count(conn, n), False) for n in names},
        "COUNT(*) per table (no statistics read on this database)",
    )


def _exact_count(conn: Connection, name: str) -> int:
    return int(conn.execute(select(func.count()).select_from(table(name))).scalar_one())


def _newest(
    conn: Connection, name: str, pk: str | None, times: list[str]
) -> tuple[datetime | None, str | None]:
    """The newest event time by an index: MAX of an indexed time, or the last key's row.

    Returns the time and the column it was read from.
    """
    if not times:
        return None, None
    indexed = {LEDGER: "processed_at", DEAD_LETTERS: "failed_at"}.get(name)
    try:
        if indexed is not None:
            source = indexed
            col = column(indexed, datetime_type())
            value = conn.execute(select(func.max(col)).select_from(table(name, col))).scalar()
        elif pk is not None:
            source = times[0]
            col = column(times[0], datetime_type())
            key: ColumnClause[Any] = column(pk)
            value = conn.execute(
                select(col).select_from(table(name, col, key)).order_by(desc(key)).limit(1)
            ).scalar()
        else:
            return None, None
    except sa_exc.SQLAlchemyError:
        conn.rollback()
        return None, None
    return _as_utc(value), source


def _as_utc(value: Any) -> datetime | None:
    if isinstance(value, str):  # SQLite without a declared type
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            return None
    if not isinstance(value, datetime):
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _per_minute(conn: Connection, now: datetime) -> list[int]:
    """Messages per minute over the hour before ``now``, by the ledger's processed_at index."""
    end = now.replace(second=0, microsecond=0) + timedelta(minutes=1)
    start = end - timedelta(minutes=60)
    at = column("processed_at", DateTime())
    dialect = conn.dialect.name
    if dialect == "postgresql":
        minute: Any = func.to_char(
            func.date_trunc("minute", at), "YYYY-MM-DD HH24:MI", type_=String()
        )
    elif dialect in ("mysql", "mariadb"):
        minute = func.date_format(at, "%Y-%m-%d %H:%i", type_=String())
    elif dialect == "sqlite":
        minute = func.substr(at, 1, 16, type_=String())
    else:
        minute = None
    buckets = [0] * 60
    ledger = table(LEDGER, at)
    naive_start = start.replace(tzinfo=None)
    if minute is None:  # other dialects: read the hour's times, still by the index
        for (value,) in conn.execute(select(at).select_from(ledger).where(at >= naive_start)):
            _add(buckets, _as_utc(value), start, 1)
        return buckets
    label = minute.label("minute")
    query = select(label, func.count()).select_from(ledger).where(at >= naive_start).group_by(label)
    for text_minute, count in conn.execute(query):
        try:
            when = datetime.strptime(str(text_minute)[:16].replace("T", " "), "%Y-%m-%d %H:%M")
        except ValueError:
            continue
        _add(buckets, when.replace(tzinfo=UTC), start, int(count))
    return buckets


def _add(buckets: list[int], when: datetime | None, start: datetime, count: int) -> None:
    if when is None:
        return
    index = int((when - start).total_seconds() // 60)
    if 0 <= index < len(buckets):
        buckets[index] += count


def _by_event(conn: Connection, name: str, pk: str) -> tuple[dict[str, int], bool]:
    """Rows by event_name over the newest ``BREAKDOWN_LIMIT`` rows by primary key."""
    key: ColumnClause[Any] = column(pk)
    event: ColumnClause[Any] = column("event_name")
    newest = (
        select(event)
        .select_from(table(name, key, event))
        .order_by(desc(key))
        .limit(BREAKDOWN_LIMIT + 1)
        .subquery()
    )
    rows = conn.execute(
        select(newest.c.event_name, func.count()).group_by(newest.c.event_name)
    ).all()
    counts = {str(n) if n is not None else "(no event name)": int(c) for n, c in rows}
    limited = sum(counts.values()) > BREAKDOWN_LIMIT
    return dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))), limited


def _sizes(conn: Connection, engine: Engine) -> tuple[int | None, int | None]:
    """The ledger's bytes on disk (table and indexes) and the database's, where known."""
    dialect = conn.dialect.name
    try:
        if dialect == "postgresql":
            ledger, whole = conn.execute(
                text(
                    "SELECT pg_total_relation_size(to_regclass(:t)), "
                    "pg_database_size(current_database())"
                ),
                {"t": LEDGER},
            ).one()
            return (None if ledger is None else int(ledger)), int(whole)
        if dialect in ("mysql", "mariadb"):
            ledger = conn.execute(
                text(
                    "SELECT DATA_LENGTH + INDEX_LENGTH FROM information_schema.TABLES "
                    "WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = :t"
                ),
                {"t": LEDGER},
            ).scalar()
            whole = conn.execute(
                text(
                    "SELECT SUM(DATA_LENGTH + INDEX_LENGTH) FROM information_schema.TABLES "
                    "WHERE TABLE_SCHEMA = DATABASE()"
                )
            ).scalar()
            return (None if ledger is None else int(ledger)), (
                None if whole is None else int(whole)
            )
        if dialect == "sqlite" and engine.url.database not in (None, "", ":memory:"):
            path = Path(str(engine.url.database))
            return None, path.stat().st_size if path.exists() else None
    except (sa_exc.SQLAlchemyError, OSError):
        conn.rollback()
    return None, None


# ----- showing ---------------------------------------------------------------------------


def sparkline(values: Sequence[int]) -> str:
    """One block character per value, scaled to the largest; a minute without events is a
    space, and any minute with events shows at least the lowest block."""
    peak = max(values, default=0)
    if peak <= 0:
        return " " * len(values)
    top = len(BLOCKS) - 1
    return "".join(BLOCKS[0 if v <= 0 else max(1, round(v / peak * top))] for v in values)


def _bytes(n: int | None) -> str:
    if n is None:
        return "size unknown"
    size = float(n)
    for unit in ("bytes", "kB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:,.0f} {unit}" if unit == "bytes" else f"{size:,.1f} {unit}"
        size /= 1024
    return f"{n} bytes"


def _lag(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    s = int(seconds)
    if s < 0:
        return "in the future"
    if s < 120:
        return f"{s}s"
    if s < 7200:
        return f"{s // 60}m"
    if s < 172800:
        return f"{s // 3600}h"
    return f"{s // 86400}d"


def _figure(rows: int, estimated: bool) -> str:
    return ("~" if estimated else "") + f"{rows:,}"


def render_stats(stats: DbStats, show_empty: bool = False) -> str:
    """The report as text for a terminal."""
    when = stats.taken_at.strftime("%Y-%m-%d %H:%M:%S UTC")
    out = [f"ledbelly stats: {stats.database} ({stats.dialect}) at {when}"]
    shown = [t for t in stats.tables if show_empty or t.rows or t.newest is not None]
    if shown:
        width = max(len(t.name) for t in shown)
        out.append(f"{'table':<{width}}  {'rows':>12}  {'newest event (UTC)':<23}  lag")
        for t in shown:
            newest = t.newest.strftime("%Y-%m-%d %H:%M:%S") if t.newest else "-"
            out.append(
                f"{t.name:<{width}}  {_figure(t.rows, t.estimated):>12}  "
                f"{newest:<23}  {_lag(t.lag_seconds)}"
            )
    empty = len(stats.tables) - len(shown)
    if empty:
        out.append(f"{empty} more tables are empty")
    if not stats.tables:
        out.append("no ledbelly tables in this database")
    if any(t.estimated for t in stats.tables):
        out.append(f"~ estimate: {stats.count_method}")
    if stats.per_minute:
        total, peak = sum(stats.per_minute), max(stats.per_minute)
        out.append(
            f"events per minute, last hour: {total:,} in all, peak {peak:,}/min "
            f"(from {LEDGER}.processed_at by its index, processing time)"
        )
        out.append(f"  |{sparkline(stats.per_minute)}|")
        out.append(f"   -60 min{' ' * 45}now")
    dead = stats.table(DEAD_LETTERS)
    dead_total = dead.rows if dead else 0
    limited = f" (of the newest {BREAKDOWN_LIMIT:,})" if stats.breakdown_limited else ""
    out.append(
        f"dead letters waiting: {sum(stats.dead_letters.values()):,}{limited}"
        + (
            f" ({_figure(dead_total, dead.estimated)} by the table figure)"
            if dead and dead.estimated and dead_total != sum(stats.dead_letters.values())
            else ""
        )
    )
    for name, n in stats.dead_letters.items():
        out.append(f"  {name}: {n:,}")
    if stats.dead_letters:
        out.append("  replay them after the fix: ledbelly replay --dead-letters")
    out.append(f"unknown events waiting: {sum(stats.unknown_events.values()):,}{limited}")
    for name, n in stats.unknown_events.items():
        out.append(f"  {name}: {n:,}")
    if stats.unknown_events:
        out.append("  tables for them: ledbelly schema suggest")
    if stats.table(LEDGER) is not None:
        size = "" if stats.ledger_bytes is None else f", {_bytes(stats.ledger_bytes)}"
        whole = "" if stats.database_bytes is None else f"; database {_bytes(stats.database_bytes)}"
        out.append(
            f"ledger ({LEDGER}): {_figure(stats.ledger_rows, stats.ledger_estimated)} "
            f"messages{size}{whole}"
        )
    out += [f"note: {n}" for n in stats.notes]
    return "\n".join(out) + "\n"


def stats_json(stats: DbStats) -> str:
    """The report as one JSON document (times in ISO 8601, UTC)."""
    doc = asdict(stats)
    doc["taken_at"] = stats.taken_at.isoformat()
    for t in doc["tables"]:
        t["newest"] = t["newest"].isoformat() if t["newest"] is not None else None
    return json.dumps(doc, indent=2, ensure_ascii=False) + "\n"
