"""Stage three: committing outcomes to the database, exactly once per message.

Each batch is one transaction holding the event rows, the stream rows, the stored
unknown events, the dead letters and a ledger entry per message. A message already in
the ledger is skipped, so redelivery inserts nothing twice. A row the database refuses
for its content never takes its batch down: the batch is split until the bad message is
alone, and that one becomes a dead letter.
"""

from __future__ import annotations

import threading
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Engine, MetaData, Table, insert, inspect, select
from sqlalchemy import exc as sa_exc

from ledbelly.db.bulk import inserter_for
from ledbelly.db.tables import DEAD_LETTERS, LEDGER, build_system_tables, build_table
from ledbelly.db.tables import UNKNOWN as UNKNOWN_TABLE
from ledbelly.errors import (
    DatabaseUnavailable,
    LedbellyError,
    PermanentError,
    RowError,
    TransientError,
)
from ledbelly.message import Message
from ledbelly.ops.logs import EventLogs
from ledbelly.outcome import Kind, Outcome
from ledbelly.schema.model import Catalog, TableDef
from ledbelly.transform.coerce import clean_text

# MySQL/MariaDB error numbers that pass by themselves: lock wait, deadlock, lost connection,
# server gone, too many connections, shutdown in progress, read-only failover.
_MYSQL_TRANSIENT = frozenset([1040, 1053, 1205, 1213, 1290, 1927, 2002, 2003, 2006, 2013, 2055,
                              4031])
# PostgreSQL SQLSTATE classes that pass by themselves: connection, rollback (deadlock,
# serialization), resources, operator intervention (shutdown), system errors.
_PG_TRANSIENT_CLASSES = frozenset(["08", "40", "53", "57", "58"])


def classify_db_error(exc: BaseException) -> LedbellyError:
    """Map a driver error to ``TransientError`` (retry) or ``RowError`` (dead letter)."""
    if isinstance(exc, LedbellyError):
        return exc
    if isinstance(exc, sa_exc.TimeoutError):
        return DatabaseUnavailable(f"connection pool timed out: {exc}")
    if isinstance(exc, sa_exc.DBAPIError):
        if exc.connection_invalidated or isinstance(exc, sa_exc.InterfaceError):
            return DatabaseUnavailable(_first_line(exc.orig) if exc.orig else str(exc))
        orig: BaseException = exc.orig if exc.orig is not None else exc
    elif _is_dbapi_error(exc):
        orig = exc  # raised by the driver outside SQLAlchemy (COPY)
        if type(exc).__name__ in ("OperationalError", "InterfaceError") and \
                not getattr(exc, "pgcode", None):
            return DatabaseUnavailable(_first_line(exc))
    else:
        return RowError(f"{type(exc).__name__}: {exc}")
    text = _first_line(orig)
    sqlstate = getattr(orig, "pgcode", None) or getattr(orig, "sqlstate", None)
    if isinstance(sqlstate, str) and sqlstate:
        if sqlstate[:2] in _PG_TRANSIENT_CLASSES or sqlstate == "55P03":
            return DatabaseUnavailable(text)
        return RowError(text)
    args = getattr(orig, "args", ())
    if args and isinstance(args[0], int):
        code = args[0]
        if code in _MYSQL_TRANSIENT or 2000 <= code < 3000:
            return DatabaseUnavailable(text)
        return RowError(text)
    if isinstance(exc, sa_exc.OperationalError) or type(orig).__name__ == "OperationalError":
        lowered = text.lower()
        if "locked" in lowered or "busy" in lowered or "unable to open" in lowered \
                or "disk i/o" in lowered or "connect" in lowered or "closed" in lowered:
            return DatabaseUnavailable(text)
        return RowError(text)
    return RowError(text)


def _is_dbapi_error(exc: BaseException) -> bool:
    """A PEP 249 driver error: every driver's errors derive from its own ``Error``."""
    return any(c.__name__ == "Error" and c.__module__.split(".")[0] in _DRIVERS
               for c in type(exc).__mro__)


_DRIVERS = frozenset(["psycopg2", "psycopg", "MySQLdb", "pymysql", "sqlite3", "pyodbc",
                      "oracledb"])


def _first_line(err: BaseException) -> str:
    return (str(err).strip().splitlines() or [type(err).__name__])[0][:500]


@dataclass
class WriteReport:
    """What one ``Sink.write`` committed: outcomes (final kinds) and duplicates skipped."""

    committed: list[Outcome] = field(default_factory=list)
    duplicates: list[Message] = field(default_factory=list)

    @property
    def messages(self) -> list[Message]:
        """Every message now accounted for in the database, safe to acknowledge."""
        return [o.message for o in self.committed] + self.duplicates


class Sink:
    """Batched, transactional writes through one pooled engine."""

    def __init__(self, engine: Engine, catalog: Catalog, logs: EventLogs,
                 create_missing: bool | None = None) -> None:
        self.engine = engine
        self.catalog = catalog
        self.logs = logs
        self.dialect = engine.dialect.name
        self._bulk = inserter_for(self.dialect, engine.dialect.driver)
        self._claims_with_returning = (self.dialect == "postgresql"
                                       and engine.dialect.driver == "psycopg2")
        self.create_missing = (self.dialect == "sqlite") if create_missing is None \
            else create_missing
        self.metadata = MetaData()
        self.system = build_system_tables(self.metadata)
        self._tables: dict[str, Table] = {}
        self._live: dict[str, frozenset[str] | None] = {}
        self._lock = threading.Lock()

    # ----- tables -------------------------------------------------------------------------

    def prepare(self) -> list[str]:
        """Make sure the system tables exist; returns the event tables missing in the database."""
        try:
            with self.engine.connect() as conn:
                existing = set(inspect(conn).get_table_names())
                missing_system = [t for t in self.system.values() if t.name not in existing]
                if missing_system:
                    if not self.create_missing:
                        names = ", ".join(t.name for t in missing_system)
                        raise PermanentError(
                            f"tables {names} are missing; run with --create-missing or apply "
                            "'ledbelly create-tables' first")
                    for t in missing_system:
                        t.create(conn, checkfirst=True)
                    conn.commit()
        except sa_exc.SQLAlchemyError as exc:
            raise classify_db_error(exc) from exc
        self._preload_live_columns(existing)
        if self.create_missing:
            return []
        return [t.name for t in self.catalog if t.name not in existing]

    def _preload_live_columns(self, existing: set[str]) -> None:
        """Every existing event table's columns in one query, not one query per table."""
        present = [t for t in self.catalog if self._db_name(t) in existing]
        if not present:
            return
        try:
            with self.engine.connect() as conn:
                by_name = _column_names(conn, [self._db_name(t) for t in present])
        except (sa_exc.SQLAlchemyError, NotImplementedError):
            return  # reflected one table at a time instead, when first used
        with self._lock:
            for t in present:
                cols = by_name.get(self._db_name(t))
                if cols and t.name not in self._live:
                    self._live[t.name] = self._schema_names(t, cols)

    def _schema_names(self, table: TableDef, live: set[str]) -> frozenset[str]:
        """The schema's names of the columns the database has (Oracle's shortened ones
        mapped back); SQLAlchemy's tables are built only where names differ."""
        lowered = {name.lower() for name in live}
        if self.dialect == "oracle":
            return frozenset(c.key for c in self.sa_table(table).columns
                             if c.name.lower() in lowered)
        return frozenset(c.name for c in table.columns if c.name.lower() in lowered)

    def _db_name(self, table: TableDef) -> str:
        """The table's name in the database (shortened on Oracle), without building it."""
        return self.sa_table(table).name if self.dialect == "oracle" else table.name

    def create_event_tables(self) -> int:
        """Create every catalog table the database lacks, in one pass; how many it made."""
        created = 0
        try:
            with self.engine.begin() as conn:
                existing = set(inspect(conn).get_table_names())
                for t in self.catalog:
                    if self._db_name(t) not in existing:
                        self.sa_table(t).create(conn)
                        created += 1
        except sa_exc.SQLAlchemyError as exc:
            raise classify_db_error(exc) from exc
        if created:
            self.forget()
        return created

    def live_columns(self, table: TableDef) -> frozenset[str] | None:
        """The table's columns as the database has them; creates it first if allowed."""
        if table.name in self._live:
            return self._live[table.name]
        with self._lock:
            if table.name not in self._live:
                self._live[table.name] = self._reflect(table)
            return self._live[table.name]

    def known_columns(self) -> dict[str, frozenset[str] | None]:
        """The live columns read so far, to hand to a sink in a worker process."""
        with self._lock:
            return dict(self._live)

    def adopt_columns(self, known: dict[str, frozenset[str] | None]) -> None:
        """Take live columns another sink over the same database already read."""
        with self._lock:
            for name, columns in known.items():
                self._live.setdefault(name, columns)

    def forget(self, table_name: str | None = None) -> None:
        """Drop cached reflection, after DDL changed the database."""
        with self._lock:
            if table_name is None:
                self._live.clear()
                self._tables.clear()
            else:
                self._live.pop(table_name, None)
                self._tables.pop(table_name, None)

    def _reflect(self, table: TableDef) -> frozenset[str] | None:
        """Live column names, as schema names (Oracle's shortened names mapped back)."""
        sa_table = self.sa_table(table)
        try:
            with self.engine.connect() as conn:
                insp = inspect(conn)
                if not insp.has_table(sa_table.name):
                    if not self.create_missing:
                        return None
                    sa_table.create(conn, checkfirst=True)
                    conn.commit()
                    insp = inspect(conn)
                live = {c["name"] for c in insp.get_columns(sa_table.name)}
        except sa_exc.SQLAlchemyError as exc:
            raise classify_db_error(exc) from exc
        return self._schema_names(table, live)

    def sa_table(self, table: TableDef) -> Table:
        """The insert target; on Oracle names over the limit are shortened, keys stay long."""
        found = self._tables.get(table.name)
        if found is None:
            if self.dialect == "oracle":
                from ledbelly.db.ddl import DdlOptions, event_table

                found = event_table(table, MetaData(), DdlOptions.for_engine(self.engine))
            else:
                found = build_table(table, MetaData())
            self._tables[table.name] = found
        return found

    def _table_by_name(self, name: str) -> Table:
        if name in self.system:
            return self.system[name]
        return self.sa_table(self.catalog.tables[name])

    # ----- writing ------------------------------------------------------------------------

    def write(self, outcomes: Sequence[Outcome]) -> WriteReport:
        """Commit a batch; ``TransientError`` (nothing committed) if the database is away."""
        report = WriteReport()
        if outcomes:
            self._write(list(outcomes), report)
        return report

    def _write(self, outcomes: list[Outcome], report: WriteReport) -> None:
        try:
            with self.engine.begin() as conn:
                if self._claims_with_returning:
                    fresh, dups = self._claim(conn, outcomes)
                    self._insert(conn, fresh, ledger_done=True)
                else:
                    fresh, dups = self._dedupe(conn, outcomes)
                    self._insert(conn, fresh)
        except Exception as exc:  # classified: transient ones are retried, never dead letters
            err = classify_db_error(exc)
            if isinstance(err, TransientError):
                raise err from exc
            if len(outcomes) == 1:
                self._dead_letter_alone(outcomes[0], err, exc, report)
                return
            mid = len(outcomes) // 2
            self._write(outcomes[:mid], report)
            self._write(outcomes[mid:], report)
            return
        report.committed.extend(fresh)
        report.duplicates.extend(dups)
        for o in fresh:
            if o.kind == Kind.DEAD_LETTER:
                self._log_dead_letter(o, None, o.rows)

    def _claim(self, conn: Connection, outcomes: list[Outcome]
               ) -> tuple[list[Outcome], list[Message]]:
        """PostgreSQL: write the ledger first, ``ON CONFLICT DO NOTHING RETURNING``.

        One round trip both records the batch and finds the messages already recorded;
        a concurrent writer with the same message waits for ours and then skips it. The
        batch travels as one array per column (``unnest``), which psycopg2 quotes in C,
        not as a VALUES row per message.
        """
        now = _now()
        rows = [_ledger_row(o, now) for o in outcomes]
        raw: Any = conn.connection.dbapi_connection
        cur = raw.cursor()
        try:
            cur.execute(
                f"INSERT INTO {LEDGER} (message_id, event_name, target_table, outcome, "
                "processed_at) SELECT m, e, t, o, %s FROM unnest(%s::text[], %s::text[], "
                "%s::text[], %s::text[]) AS b(m, e, t, o) "
                "ON CONFLICT (message_id) DO NOTHING RETURNING message_id",
                (now, [r["message_id"] for r in rows], [r["event_name"] for r in rows],
                 [r["target_table"] for r in rows], [r["outcome"] for r in rows]))
            claimed = {r[0] for r in cur.fetchall()}
        finally:
            cur.close()
        return _first_of_each(outcomes, claimed)

    def _dedupe(self, conn: Connection, outcomes: list[Outcome]
                ) -> tuple[list[Outcome], list[Message]]:
        ledger = self.system[LEDGER]
        ids = list({o.message.message_id for o in outcomes})
        seen: set[str] = set()
        for i in range(0, len(ids), 900):
            chunk = ids[i:i + 900]
            seen.update(conn.execute(
                select(ledger.c.message_id).where(ledger.c.message_id.in_(chunk))).scalars())
        return _first_of_each(outcomes, set(ids) - seen)

    def _insert(self, conn: Connection, outcomes: list[Outcome],
                ledger_done: bool = False) -> None:
        now = _now()
        by_table: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for o in outcomes:
            if o.kind == Kind.UNKNOWN:
                by_table[UNKNOWN_TABLE].append(_unknown_row(o, now))
            elif o.kind == Kind.DEAD_LETTER:
                by_table[DEAD_LETTERS].append(_dead_letter_row(o, o.error or "", now))
            else:
                for name, row in o.rows:
                    by_table[name].append(row)
        for name, rows in by_table.items():
            self.insert_rows(conn, self._table_by_name(name), rows)
        if not ledger_done:
            self.insert_rows(conn, self.system[LEDGER], [_ledger_row(o, now) for o in outcomes])

    def insert_rows(self, conn: Connection, table: Table, rows: list[dict[str, Any]]) -> None:
        """One bulk insert per table (COPY on PostgreSQL); rows of one table share keys."""
        if rows:
            self._bulk(conn, table, rows)

    # ----- dead letters -------------------------------------------------------------------

    def _dead_letter_alone(self, outcome: Outcome, err: LedbellyError, exc: BaseException,
                           report: WriteReport) -> None:
        """One message the database refused: store it as a dead letter, with its reason."""
        failed_rows = outcome.rows
        reason = f"database refused the row: {err}"
        dead = Outcome(outcome.message, Kind.DEAD_LETTER, outcome.event_name, outcome.format,
                       outcome.table, event_time=outcome.event_time, error=reason)
        for attempt in range(2):
            try:
                with self.engine.begin() as conn:
                    fresh, dups = self._dedupe(conn, [dead])
                    if dups:
                        report.duplicates.extend(dups)
                        return
                    if attempt:
                        dead.message = _unstorable_copy(outcome.message)
                    self._insert(conn, fresh)
                break
            except Exception as again:
                second = classify_db_error(again)
                if isinstance(second, TransientError):
                    raise second from again
                if attempt:
                    raise PermanentError(f"cannot even store a dead letter: {second}") from again
        dead.message = outcome.message
        report.committed.append(dead)
        self._log_dead_letter(dead, getattr(exc, "statement", None), failed_rows)

    def _log_dead_letter(self, outcome: Outcome, statement: str | None,
                         rows: list[tuple[str, dict[str, Any]]]) -> None:
        msg = outcome.message
        sql = self._recovery_sql(rows) if rows else None
        self.logs.error(outcome.event_name or "?", outcome.error or "", statement,
                        {name: row for name, row in rows} if rows else msg.body[:2000])
        self.logs.recovery(sqs_form(msg), sql)

    def _recovery_sql(self, rows: list[tuple[str, dict[str, Any]]]) -> str:
        parts = []
        for name, row in rows:
            stmt = insert(self._table_by_name(name)).values(**row)
            try:
                parts.append(str(stmt.compile(dialect=self.engine.dialect,
                                              compile_kwargs={"literal_binds": True})) + ";")
            except (sa_exc.SQLAlchemyError, NotImplementedError, TypeError, ValueError):
                parts.append(f"-- {name}: {row!r}")
        return "\n".join(parts)


# Column names only, from the catalog views: SQLAlchemy's reflection also reads types,
# defaults and comments, which took 0.16 s for ledbelly's 138 tables on PostgreSQL.
_COLUMN_NAMES_SQL = {
    "postgresql": "SELECT table_name, column_name FROM information_schema.columns "
                  "WHERE table_schema = current_schema()",
    "mysql": "SELECT table_name, column_name FROM information_schema.columns "
             "WHERE table_schema = DATABASE()",
}


def _column_names(conn: Connection, tables: list[str]) -> dict[str, set[str]]:
    """The columns of ``tables`` as the database has them, in one query where possible."""
    wanted = set(tables)
    found: dict[str, set[str]] = {}
    sql = _COLUMN_NAMES_SQL.get(conn.dialect.name)
    if sql is not None:
        for table, column in conn.exec_driver_sql(sql):
            if table in wanted:
                found.setdefault(table, set()).add(column)
        return found
    multi = inspect(conn).get_multi_columns(filter_names=tables)
    return {name: {c["name"] for c in cols} for (_, name), cols in multi.items()}


def sqs_form(msg: Message) -> dict[str, Any]:
    """A message as boto3's ``receive_message`` shows it, so ``ingest`` can replay it."""
    return {
        "MessageId": msg.message_id,
        "Body": msg.body,
        "MessageAttributes": {k: {"StringValue": v, "DataType": "String"}
                              for k, v in msg.attributes.items()},
    }


def _first_of_each(outcomes: list[Outcome], new_ids: set[str]
                   ) -> tuple[list[Outcome], list[Message]]:
    """Split a batch: the first outcome of each id in ``new_ids`` is fresh, all else a
    duplicate (already in the ledger, or repeated within the batch)."""
    fresh: list[Outcome] = []
    dups: list[Message] = []
    for o in outcomes:
        mid = o.message.message_id
        if mid in new_ids:
            new_ids.discard(mid)
            fresh.append(o)
        else:
            dups.append(o.message)
    return fresh, dups


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def _name(value: str | None) -> str | None:
    return None if value is None else clean_text(value)[:255]


def _ledger_row(o: Outcome, now: datetime) -> dict[str, Any]:
    return {"message_id": o.message.message_id, "event_name": _name(o.event_name),
            "target_table": o.table if o.kind != Kind.UNKNOWN else None, "outcome": o.kind.value,
            "processed_at": now}


def _unknown_row(o: Outcome, now: datetime) -> dict[str, Any]:
    return {"message_id": o.message.message_id, "event_name": _name(o.event_name),
            "format": o.format, "event_time": o.event_time, "received_at": now,
            "reason": _name(o.error), "raw_body": clean_text(o.message.body)}


def _dead_letter_row(o: Outcome, error: str, now: datetime) -> dict[str, Any]:
    return {"message_id": o.message.message_id, "event_name": _name(o.event_name),
            "error": clean_text(error), "raw_body": clean_text(o.message.body), "failed_at": now}


def _unstorable_copy(msg: Message) -> Message:
    """A stand-in body for a dead letter whose own body the database will not take."""
    from ledbelly.message import body_hash

    note = f"(body not storable; {body_hash(msg.body)}; see log/sql-recovery.jsonl)"
    return Message(msg.message_id, note, dict(msg.attributes), handle=msg.handle,
                   queue=msg.queue, received_at=msg.received_at)
