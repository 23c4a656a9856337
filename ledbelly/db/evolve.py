"""Bringing a database up to ``schemas/``, and ``schemas/`` up to the events seen.

``plan_alter`` compares the schemas with the live database (reflection) and lists the
statements that add what is missing: tables, columns, wider strings and numbers. It
never drops or narrows. ``Evolver`` does the same at run time, opt-in, one change at a
time, and writes each change to an overlay file for review.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from sqlalchemy import Column, Engine, Table, inspect
from sqlalchemy import exc as sa_exc
from sqlalchemy import types as sqltypes
from sqlalchemy.engine import Dialect
from sqlalchemy.schema import CreateColumn

from ledbelly.config import EVOLUTION_MODES
from ledbelly.db.ddl import (
    DdlOptions,
    build_tables,
    create_statements,
    dialect_for,
    oracle_name,
    run_statements,
    terminate,
)
from ledbelly.db.errors import classify_db_error
from ledbelly.errors import ConfigError, TransientError
from ledbelly.ops.logs import EventLogs
from ledbelly.schema.infer import add_fields, infer_table, widen_column
from ledbelly.schema.model import Catalog, TableDef
from ledbelly.schema.patch import Patch, apply_patch, suggest, write_table_file

__all__ = [
    "MODES",
    "AlterPlan",
    "Evolver",
    "Patch",
    "TableChange",
    "apply_alter",
    "apply_patch",
    "plan_alter",
    "plan_between",
    "suggest",
]

MODES = EVOLUTION_MODES  # spelled once, in ledbelly.config
# MySQL's TEXT family by capacity; other dialects' unbounded types have no length.
_MYSQL_TEXT = {"TINYTEXT": 255, "TEXT": 65_535, "MEDIUMTEXT": 16_777_215, "LONGTEXT": 4_294_967_295}
_UNBOUNDED = float("inf")


# ----- comparing with the database ---------------------------------------------------------


@dataclass
class TableChange:
    """What one table needs: statements to run, and remarks that change nothing."""

    table: str
    statements: list[str] = field(default_factory=list)
    remarks: list[str] = field(default_factory=list)


@dataclass
class AlterPlan:
    """Every change, per table, for one database; empty when it matches the schemas."""

    dialect: str
    changes: list[TableChange]

    @property
    def statements(self) -> list[str]:
        return [s for c in self.changes for s in c.statements]

    def render(self) -> str:
        """The plan as SQL with ``--`` remarks; the empty string when nothing differs."""
        out: list[str] = []
        for c in self.changes:
            out += [f"-- {r}" for r in c.remarks]
            out += [terminate(s) for s in c.statements]
        return "\n".join(out) + "\n" if out else ""


def plan_alter(
    engine: Engine,
    tables: Sequence[TableDef],
    opts: DdlOptions | None = None,
    include_system: bool = True,
) -> AlterPlan:
    """The statements that bring the database up to ``tables`` (and the system tables)."""
    opts = opts or DdlOptions.for_engine(engine)
    sa_tables, _ = build_tables(tables, opts, include_system)
    with engine.connect() as conn:
        insp = inspect(conn)
        existing = {n.lower() for n in insp.get_table_names(schema=opts.schema)}

        def live(t: Table) -> list[Any] | None:
            if t.name.lower() not in existing:
                return None
            return list(insp.get_columns(t.name, schema=opts.schema))

        return _plan(sa_tables, live, engine.dialect, opts)


def plan_between(old: Sequence[TableDef], new: Sequence[TableDef], opts: DdlOptions) -> AlterPlan:
    """Without a connection: what brings a database created from ``old`` up to ``new``.

    The database is taken to be what ``create-tables`` makes of ``old`` for
    ``opts.dialect``; the statements are compiled by SQLAlchemy's dialect, as
    ``plan_alter`` compiles them for a live database. The system tables are left out
    (their columns in an older database are not in ``old``).
    """
    dialect = dialect_for(opts.dialect, opts.name_limit, opts.oracle_compat)
    before, _ = build_tables(old, opts, include_system=False)
    have = {
        t.name.lower(): [{"name": c.name, "type": _impl(c, dialect)} for c in t.columns]
        for t in before
    }
    after, _ = build_tables(new, opts, include_system=False)
    return _plan(after, lambda t: have.get(t.name.lower()), dialect, opts)


def _plan(
    tables: Sequence[Table],
    live: Callable[[Table], list[Any] | None],
    dialect: Dialect,
    opts: DdlOptions,
) -> AlterPlan:
    """Each table created when ``live`` has no columns for it, else compared with them."""
    changes: list[TableChange] = []
    for t in tables:
        columns = live(t)
        if columns is None:
            change = TableChange(
                t.name, create_statements(t, dialect, opts), [f"{t.name}: new table"]
            )
        else:
            change = _compare(t, columns, dialect)
        if change.statements or change.remarks:
            changes.append(change)
    return AlterPlan(dialect.name, changes)


def apply_alter(engine: Engine, plan: AlterPlan) -> None:
    """Run a plan's statements (PostgreSQL and SQLite: in one transaction)."""
    run_statements(engine, plan.statements)


def _compare(table: Table, live: list[Any], dialect: Dialect) -> TableChange:
    change = TableChange(table.name)
    have = {str(c["name"]).lower(): c for c in live}
    clauses: list[tuple[str, str]] = []
    copies: list[str] = []
    for col in table.columns:
        found = have.pop(col.name.lower(), None)
        if found is None:
            if col.primary_key:
                change.remarks.append(
                    f"{table.name}.{col.name}: the key column is missing (recreate the table)"
                )
            else:
                clauses.append(("add", _spec(col, dialect)))
                change.remarks.append(f"{table.name}.{col.name}: new column")
            continue
        verdict = _type_verdict(_impl(col, dialect), found["type"], dialect)
        if verdict == "widen":
            clause = _widen_clause(col, dialect)
            if clause is None:
                copies += _oracle_copy(table, col, dialect)
                change.remarks.append(
                    f"{table.name}.{col.name}: widen {_type_name(found['type'], dialect)} to "
                    f"{_type_sql(col, dialect)} by a copy (the column moves to the end)"
                )
            else:
                clauses.append(("modify", clause))
                change.remarks.append(
                    f"{table.name}.{col.name}: widen {_type_name(found['type'], dialect)} "
                    f"to {_type_sql(col, dialect)}"
                )
        elif verdict:
            change.remarks.append(f"{table.name}.{col.name}: {verdict} (left alone)")
    for name in have:
        change.remarks.append(f"{table.name}.{name}: only in the database (left alone)")
    change.statements = _alter_statements(table, clauses, dialect) + copies
    return change


def _impl(col: Column[Any], dialect: Dialect) -> sqltypes.TypeEngine[Any]:
    mapping = col.type._variant_mapping
    return mapping.get(dialect.name, col.type)


def _capacity(t: sqltypes.TypeEngine[Any], dialect: Dialect) -> float:
    if dialect.name in ("mysql", "mariadb") and type(t).__name__.upper() in _MYSQL_TEXT:
        return _MYSQL_TEXT[type(t).__name__.upper()]
    length = getattr(t, "length", None)
    return _UNBOUNDED if length in (None, "max") else float(length)


def _type_verdict(
    want: sqltypes.TypeEngine[Any], have: sqltypes.TypeEngine[Any], dialect: Dialect
) -> str:
    """ "widen", "" (fine as it is) or why the types differ in a way ledbelly leaves alone."""
    if dialect.name == "sqlite" or isinstance(want, sqltypes.Boolean):
        return ""  # SQLite enforces neither lengths nor integer sizes
    if isinstance(want, sqltypes.DateTime):
        fine = not isinstance(have, sqltypes.DateTime)
        return (
            ""
            if fine or _second_digits(have, dialect) >= _second_digits(want, dialect)
            else "widen"
        )
    if isinstance(want, sqltypes.String):
        if not isinstance(have, sqltypes.String):
            return f"the database has {have}, the schema a string"
        return "widen" if _capacity(have, dialect) < _capacity(want, dialect) else ""
    if isinstance(want, sqltypes.Integer):
        if not isinstance(have, sqltypes.Integer):
            return (
                ""
                if isinstance(have, sqltypes.Numeric)
                else f"the database has {have}, the schema an integer"
            )
        small = isinstance(have, sqltypes.SmallInteger) or not isinstance(have, sqltypes.BigInteger)
        return "widen" if isinstance(want, sqltypes.BigInteger) and small else ""
    if isinstance(want, sqltypes.Float):
        if isinstance(have, sqltypes.Float):
            return "widen" if _float_bits(have, dialect) < _float_bits(want, dialect) else ""
        return "widen" if isinstance(have, sqltypes.Integer) else ""
    return ""


def _float_bits(t: sqltypes.TypeEngine[Any], dialect: Dialect) -> int:
    """The mantissa bits of a floating type: 24 single precision, 53 double."""
    if isinstance(t, sqltypes.Double):
        return 53
    precision = getattr(t, "precision", None)
    if precision is not None:
        return int(precision)
    mysql = dialect.name in ("mysql", "mariadb")
    if type(t).__name__ in ("REAL", "BINARY_FLOAT"):
        return 53 if mysql else 24  # MySQL's REAL is a DOUBLE
    return 24 if mysql else 53  # MySQL's bare FLOAT is single precision, FLOAT elsewhere double


def _second_digits(t: sqltypes.TypeEngine[Any], dialect: Dialect) -> int:
    """How many digits of a second a time type keeps (LEDbelly's DATETIME kept none)."""
    name = type(t).__name__
    if dialect.name in ("mysql", "mariadb"):
        return int(getattr(t, "fsp", None) or 0)
    if dialect.name == "oracle":
        return 0 if name == "DATE" else 6
    if dialect.name == "mssql" and name in ("DATETIME", "SMALLDATETIME"):
        return 2 if name == "DATETIME" else 0  # DATETIME: steps of 1/300 s
    precision = getattr(t, "precision", None)
    return 6 if precision is None else int(precision)


def _spec(col: Column[Any], dialect: Dialect) -> str:
    return str(CreateColumn(col).compile(dialect=dialect)).strip()


def _type_name(t: sqltypes.TypeEngine[Any], dialect: Dialect) -> str:
    """A type as ``dialect`` writes it (a reflected type may have no name there)."""
    try:
        return str(dialect.type_compiler_instance.process(t))
    except sa_exc.SQLAlchemyError:
        return str(t)


def _type_sql(col: Column[Any], dialect: Dialect) -> str:
    return str(dialect.type_compiler_instance.process(col.type))


def _widen_clause(col: Column[Any], dialect: Dialect) -> str | None:
    quoted = dialect.identifier_preparer.quote(col.name)
    if dialect.name == "postgresql":
        return f"ALTER COLUMN {quoted} TYPE {_type_sql(col, dialect)}"
    if dialect.name == "oracle":
        if isinstance(_impl(col, dialect), sqltypes.Text):
            return None  # VARCHAR2 to CLOB needs a new column and a copy
        return f"MODIFY ({quoted} {_type_sql(col, dialect)})"
    if dialect.name == "mssql":
        return f"ALTER COLUMN {_spec(col, dialect)}"
    return f"MODIFY COLUMN {_spec(col, dialect)}"


def _oracle_copy(table: Table, col: Column[Any], dialect: Dialect) -> list[str]:
    """VARCHAR2 to CLOB: Oracle changes neither in place, so a new column takes a copy."""
    quote = dialect.identifier_preparer.quote
    target = f"ALTER TABLE {dialect.identifier_preparer.format_table(table)}"
    name = quote(col.name)
    tmp = quote(oracle_name(f"{col.name}_widened", dialect.max_identifier_length))
    return [
        f"{target} ADD ({tmp} {_type_sql(col, dialect)})",
        f"UPDATE {dialect.identifier_preparer.format_table(table)} SET {tmp} = {name}",
        f"{target} DROP COLUMN {name}",
        f"{target} RENAME COLUMN {tmp} TO {name}",
    ]


def _alter_statements(table: Table, clauses: list[tuple[str, str]], dialect: Dialect) -> list[str]:
    """One ALTER TABLE per table where the dialect allows it (one rebuild on MySQL)."""
    if not clauses:
        return []
    target = f"ALTER TABLE {dialect.identifier_preparer.format_table(table)}"
    parts = [_add_clause(spec, dialect) if kind == "add" else spec for kind, spec in clauses]
    if dialect.name in ("postgresql", "mysql", "mariadb"):
        return [target + "\n  " + ",\n  ".join(parts)]
    return [f"{target} {p}" for p in parts]


def add_column_statement(table: Table, column: Column[Any], dialect: Dialect) -> str:
    """``ALTER TABLE`` adding one column, in the dialect's own words."""
    return _alter_statements(table, [("add", _spec(column, dialect))], dialect)[0]


def _add_clause(spec: str, dialect: Dialect) -> str:
    if dialect.name == "mssql":
        return f"ADD {spec}"
    if dialect.name == "oracle":
        return f"ADD ({spec})"
    return f"ADD COLUMN {spec}"


# ----- automatic evolution -----------------------------------------------------------------


class Evolver:
    """Opt-in schema evolution at run time, like Kafka Connect's ``auto.evolve``/``auto.create``.

    Each change is made with DDL, written whole to ``overlay_dir`` (a ``schemas.local``
    style directory that ``Catalog.load`` lays over ``schemas/``), logged to
    ``log/schema-changes.log``, put into ``catalog.tables`` so routing sees it, and passed
    to ``on_change`` so the sink and processor can drop what they cached. A change the
    database refuses is logged once and not tried again by this process.
    """

    def __init__(
        self,
        engine: Engine,
        catalog: Catalog,
        overlay_dir: Path,
        logs: EventLogs,
        mode: str = "off",
        on_change: Callable[[TableDef], None] | None = None,
        opts: DdlOptions | None = None,
    ) -> None:
        if mode not in MODES:
            raise ConfigError(f"schema_evolution must be one of {', '.join(MODES)}, got {mode!r}")
        self.engine = engine
        self.catalog = catalog
        self.overlay_dir = overlay_dir
        self.logs = logs
        self.mode = mode
        self.on_change = on_change
        self.opts = opts or DdlOptions.for_engine(engine)
        self._lock = threading.Lock()
        self._refused: set[tuple[str, str]] = set()

    @property
    def adds_columns(self) -> bool:
        return self.mode != "off"

    @property
    def creates_tables(self) -> bool:
        return self.mode == "add_columns_and_tables"

    def add_columns(self, table: TableDef, fields: dict[str, Any]) -> TableDef | None:
        """New nullable columns for undefined flat keys (type from the sample values).

        ``fields`` maps flat key to one sample value (or a list of them). Returns the new
        table definition, or ``None`` when evolution is off or nothing was added.
        """
        if not self.adds_columns or not fields:
            return None
        with self._lock:
            current = self.catalog.tables.get(table.name, table)
            samples = {
                k: v if isinstance(v, list) else [v]
                for k, v in fields.items()
                if (table.name, k) not in self._refused
            }
            new, added = add_fields(current, samples)
            if not added:
                return None
            return self._commit(
                new,
                f"{table.name}: added columns {', '.join(added)}",
                [(table.name, k) for k in samples],
            )

    def widen(self, table: TableDef, column: str, needed_size: int) -> TableDef | None:
        """A string column widened (with headroom) for a value of ``needed_size``."""
        if not self.adds_columns or (table.name, column) in self._refused:
            return None
        with self._lock:
            current = self.catalog.tables.get(table.name, table)
            new = widen_column(current, column, needed_size)
            if new is None:
                return None
            col = new.column(column)
            assert col is not None
            size = f"size {col.size}" if col.type == "string" else "text"
            return self._commit(
                new,
                f"{table.name}.{column}: widened to {size} for a value of {needed_size}",
                [(table.name, column)],
            )

    def create_table(
        self, fmt: str, event_name: str, flat_sample: dict[str, Any]
    ) -> TableDef | None:
        """A new table for an unknown event type, its columns inferred from one event."""
        if not self.creates_tables or (fmt, event_name) in self._refused:
            return None
        with self._lock:
            new = infer_table(self.catalog, fmt, event_name, [flat_sample])
            if new.name in self.catalog.tables:
                return self.catalog.tables[new.name]
            return self._commit(
                new,
                f"{new.name}: new table for {fmt} event {event_name} "
                f"with {len(new.columns)} columns",
                [(fmt, event_name)],
            )

    def _commit(self, new: TableDef, what: str, keys: list[tuple[str, str]]) -> TableDef | None:
        try:
            plan = plan_alter(self.engine, [new], self.opts, include_system=False)
            statements = plan.statements
            apply_alter(self.engine, plan)
            description = (
                None
                if new.path
                else f"{new.format} event {new.event}: added by ledbelly schema evolution; "
                "review, then merge with 'ledbelly schema suggest/apply'"
            )
            path = write_table_file(new, self.overlay_dir, description)
        except Exception as exc:  # the row lands as with evolution off; the field is logged
            transient = isinstance(classify_db_error(exc), TransientError)
            if not transient:
                self._refused.update(keys)  # a passing outage is tried again next time
            note = "will retry" if transient else "not tried again"
            self.logs.schema_change(f"FAILED ({note}) {what}: {str(exc).splitlines()[0][:300]}")
            return None
        new = replace(new, path=path)
        self.catalog.put(new)
        self.logs.schema_change(f"{what}; {len(statements)} statements; wrote {path}")
        if self.on_change:
            self.on_change(new)
        return new
