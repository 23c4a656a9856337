"""One database's live tables: which exist, their columns, and their names there.

The processor builds rows for the columns a table really has, the sink inserts into
the tables, evolution and replay change them: all of them ask this one object, so a
table is found one way and its columns are read once and forgotten together.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Column, Connection, Engine, MetaData, Table, inspect
from sqlalchemy import exc as sa_exc

from ledbelly.db.errors import classify_db_error
from ledbelly.db.tables import build_system_tables, build_table
from ledbelly.errors import PermanentError
from ledbelly.schema.model import Catalog, TableDef

log = logging.getLogger(__name__)

# One number for every ledbelly process: PostgreSQL's advisory locks are keyed by bigint.
DDL_LOCK_KEY = int.from_bytes(b"ledbelly", "big") >> 1


@contextmanager
def ddl_lock(conn: Connection) -> Iterator[None]:
    """Processes starting together on an empty database take turns creating tables: two
    CREATE TABLEs of one name at once fail (PostgreSQL: on its catalog's ``pg_type``
    index, MySQL: "already exists"). PostgreSQL holds the lock until the transaction
    ends; MySQL's named lock is released here. SQLite locks the whole file anyway."""
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({DDL_LOCK_KEY})")
        yield
    elif conn.dialect.name in ("mysql", "mariadb"):
        conn.exec_driver_sql("SELECT GET_LOCK('ledbelly_ddl', 120)")
        try:
            yield
        finally:
            conn.exec_driver_sql("SELECT RELEASE_LOCK('ledbelly_ddl')")
    else:
        yield


class LiveTables:
    """The catalog's tables as one database has them (reflection cached, thread-safe)."""

    def __init__(
        self, engine: Engine, catalog: Catalog, create_missing: bool | None = None
    ) -> None:
        self.engine = engine
        self.catalog = catalog
        self.dialect = engine.dialect.name
        self.create_missing = (
            (self.dialect == "sqlite") if create_missing is None else create_missing
        )
        self.metadata = MetaData()
        self.system = build_system_tables(self.metadata)
        self._tables: dict[str, Table] = {}
        self._live: dict[str, frozenset[str] | None] = {}
        self._lock = threading.Lock()

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
                            "'ledbelly create-tables' first"
                        )
                    with ddl_lock(conn):
                        for t in missing_system:
                            t.create(conn, checkfirst=True)
                        conn.commit()
                self._add_system_columns(conn, existing)
        except sa_exc.SQLAlchemyError as exc:
            raise classify_db_error(exc) from exc
        if self.create_missing:
            self.create_event_tables()
            return []
        self._preload_live_columns(existing)
        return [t.name for t in self.catalog if self.db_name(t) not in existing]

    def _add_system_columns(self, conn: Connection, existing: set[str]) -> None:
        """Columns a newer ledbelly added to its own tables (replay's ``attempts``), added
        to an older database's: they are nullable, and nothing else writes these tables.
        Looked for again under the DDL lock, which processes upgraded together share."""
        present = [t for t in self.system.values() if t.name in existing]
        if self._missing_columns(conn, present):
            with ddl_lock(conn):
                for table, column in self._missing_columns(conn, present):
                    from ledbelly.db.evolve import add_column_statement  # seldom needed

                    conn.exec_driver_sql(add_column_statement(table, column, conn.dialect))
                    log.info("added column %s.%s for this ledbelly", table.name, column.name)
        conn.commit()  # PostgreSQL's lock ends with this transaction

    @staticmethod
    def _missing_columns(conn: Connection, tables: list[Table]) -> list[tuple[Table, Column[Any]]]:
        found = _column_names(conn, [t.name for t in tables])  # one query, not one a table
        out: list[tuple[Table, Column[Any]]] = []
        for table in tables:
            have = {name.lower() for name in found.get(table.name, ())}
            out.extend((table, c) for c in table.columns if c.name.lower() not in have)
        return out

    def _preload_live_columns(self, existing: set[str]) -> None:
        """Every existing event table's columns in one query, not one query per table."""
        present = [t for t in self.catalog if self.db_name(t) in existing]
        if not present:
            return
        try:
            with self.engine.connect() as conn:
                by_name = _column_names(conn, [self.db_name(t) for t in present])
        except (sa_exc.SQLAlchemyError, NotImplementedError):
            return  # reflected one table at a time instead, when first used
        with self._lock:
            for t in present:
                cols = by_name.get(self.db_name(t))
                if cols and t.name not in self._live:
                    self._live[t.name] = self._schema_names(t, cols)

    def _schema_names(self, table: TableDef, live: set[str]) -> frozenset[str]:
        """The schema's names of the columns the database has (Oracle's shortened ones
        mapped back); SQLAlchemy's tables are built only where names differ."""
        lowered = {name.lower() for name in live}
        if self.dialect == "oracle":
            return frozenset(
                c.key for c in self.sa_table(table).columns if c.name.lower() in lowered
            )
        return frozenset(c.name for c in table.columns if c.name.lower() in lowered)

    def db_name(self, table: TableDef) -> str:
        """The table's name in the database (shortened on Oracle), without building it."""
        return self.sa_table(table).name if self.dialect == "oracle" else table.name

    def create_event_tables(self) -> int:
        """Create every catalog table the database lacks, in one pass; how many it made."""
        created = 0
        try:
            with self.engine.begin() as conn, ddl_lock(conn):
                existing = set(inspect(conn).get_table_names())  # as the lock found them
                for t in self.catalog:
                    if self.db_name(t) not in existing:
                        self.sa_table(t).create(conn)
                        created += 1
        except sa_exc.SQLAlchemyError as exc:
            raise classify_db_error(exc) from exc
        self.forget()
        self._preload_live_columns(existing | {self.db_name(t) for t in self.catalog})
        return created

    def columns(self, table: TableDef) -> frozenset[str] | None:
        """The table's columns as the database has them, None if it has no such table.

        Read from the cache ``prepare`` filled; a table changed since (evolution) is
        read again once. Never creates anything: ``prepare`` did that, if allowed.
        """
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
                    return None
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

    def table_by_name(self, name: str) -> Table:
        """A system or event table by its schema name."""
        if name in self.system:
            return self.system[name]
        return self.sa_table(self.catalog.tables[name])


# Column names only, from the catalog views: SQLAlchemy's reflection also reads types,
# defaults and comments, which took 0.16 s for ledbelly's 138 tables on PostgreSQL.
_COLUMN_NAMES_SQL = {
    # pg_catalog, not information_schema's view over it: 6 ms instead of 18-36 ms here
    "postgresql": "SELECT c.relname, a.attname FROM pg_attribute a "
    "JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace "
    "WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'p', 'v', 'm', 'f') "
    "AND a.attnum > 0 AND NOT a.attisdropped",
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
