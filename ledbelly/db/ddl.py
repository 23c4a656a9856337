"""DDL for every schema table, per dialect, as a DBA would write it.

The statements come from the same SQLAlchemy tables the sink inserts through
(``ledbelly.db.tables``), compiled by SQLAlchemy's own dialects, so the DDL and the inserts
can never disagree. Oracle's identifier limit is met by one deterministic shortening
rule (``oracle_name``), which the sink must use too.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import Engine, Integer, MetaData, Table, inspect
from sqlalchemy.engine import Dialect
from sqlalchemy.schema import CreateIndex, CreateTable, DropTable
from sqlalchemy.sql.elements import quoted_name

from ledbelly.db.tables import build_system_tables, build_table
from ledbelly.errors import ConfigError, SchemaError
from ledbelly.schema.model import TableDef

DIALECTS = ("mssql", "mysql", "postgresql", "oracle", "sqlite")
# Oracle before 12.2 allows 30-byte identifiers, 12.2 and later 128.
ORACLE_LEGACY_LIMIT = 30
ORACLE_LIMIT = 128
_HASH_LEN = 8
SCHEMA_NAME = "ledbelly_name"  # Table.info key: the table's name in schemas/, before shortening


def oracle_name(name: str, limit: int) -> str:
    """``name`` if it fits, else its first ``limit - 9`` characters, ``_`` and 8 hex of SHA-1.

    Deterministic, so the DDL, the sink's inserts and a later ``alter-tables`` all agree.
    """
    if len(name) <= limit:
        return name
    if limit < _HASH_LEN + 2:
        raise ConfigError(f"an identifier limit of {limit} is too small to shorten names")
    digest = hashlib.sha1(name.encode("utf-8")).hexdigest()[:_HASH_LEN]
    return name[: limit - _HASH_LEN - 1] + "_" + digest


def dialect_for(
    name: str, max_identifier_length: int | None = None, oracle_compat: str = "19"
) -> Dialect:
    """A SQLAlchemy dialect by name, without a driver or a server.

    Oracle before 23 has no BOOLEAN column type; SQLAlchemy, not knowing the server,
    assumes it has, so booleans are declared as SMALLINT for older targets.
    """
    from sqlalchemy.dialects import mssql, mysql, oracle, postgresql, sqlite

    makers = {
        "mssql": mssql.dialect,
        "mysql": mysql.dialect,
        "mariadb": mysql.dialect,
        "postgresql": postgresql.dialect,
        "oracle": oracle.dialect,
        "sqlite": sqlite.dialect,
    }
    if name not in makers:
        raise ConfigError(f"unknown dialect {name!r}; choose one of {', '.join(DIALECTS)}")
    dialect: Dialect = makers[name]()
    if name == "mariadb":
        setattr(dialect, "is_mariadb", True)  # noqa: B010 - not in the Dialect interface
    if max_identifier_length is not None:
        dialect.max_identifier_length = max_identifier_length  # SQLAlchemy checks names too
    if name == "oracle":
        dialect.supports_native_boolean = _version(oracle_compat) >= (23,)
    return dialect


def _version(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(p) for p in text.split("."))
    except ValueError:
        raise ConfigError(
            f"--oracle-compat wants a version like 11, 12.1 or 19, got {text!r}"
        ) from None


@dataclass(frozen=True)
class DdlOptions:
    """How to write the DDL: dialect, optional schema, Oracle compatibility."""

    dialect: str
    schema: str | None = None
    oracle_compat: str = "19"
    max_identifier_length: int | None = None

    @property
    def is_oracle(self) -> bool:
        return self.dialect == "oracle"

    @property
    def identity(self) -> bool:
        """Identity columns, except on Oracle before 12 (a sequence and trigger instead)."""
        return not (self.is_oracle and _version(self.oracle_compat) < (12,))

    @property
    def name_limit(self) -> int | None:
        """The identifier limit names are shortened to, or ``None`` (no shortening)."""
        if self.max_identifier_length is not None:
            return self.max_identifier_length
        if not self.is_oracle:
            return None
        return ORACLE_LIMIT if _version(self.oracle_compat) >= (12, 2) else ORACLE_LEGACY_LIMIT

    @classmethod
    def for_engine(cls, engine: Engine, schema: str | None = None) -> DdlOptions:
        """Options matching a live database (Oracle's limit is the server's)."""
        name = engine.dialect.name
        if name == "oracle":
            limit = engine.dialect.max_identifier_length
            return cls("oracle", schema, "19" if limit > ORACLE_LEGACY_LIMIT else "12.1", limit)
        return cls(name, schema)


@dataclass
class NameMapper:
    """Shortens names to the limit and refuses two names that end up the same."""

    limit: int | None
    mapping: dict[str, str] = field(default_factory=dict)
    _objects: dict[str, str] = field(default_factory=dict)

    def short(self, name: str) -> str:
        return name if self.limit is None else oracle_name(name, self.limit)

    def object_name(self, name: str) -> str:
        """A schema-level name (table, index, sequence, trigger), unique across all of them."""
        short = self.short(name)
        self._claim(self._objects, short.lower(), name, "schema object")
        if short != name:
            self.mapping[name] = short
        return short

    def column_names(self, table: TableDef) -> dict[str, str]:
        """Each column's database name; unique within the table."""
        seen: dict[str, str] = {}
        out: dict[str, str] = {}
        for col in table.columns:
            short = self.short(col.name)
            self._claim(seen, short.lower(), col.name, f"column of {table.name}")
            out[col.name] = short
            if short != col.name:
                self.mapping[f"{table.name}.{col.name}"] = short
        return out

    @staticmethod
    def _claim(space: dict[str, str], short: str, name: str, what: str) -> None:
        other = space.setdefault(short, name)
        if other != name:
            raise SchemaError(
                f"{name} and {other} both become the {what} {short} after "
                "shortening to the identifier limit; rename one of them"
            )


def event_table(
    table: TableDef, metadata: MetaData, opts: DdlOptions, names: NameMapper | None = None
) -> Table:
    """The dialect's ``Table`` for a schema table: shortened names, keys kept long."""
    names = names or NameMapper(opts.name_limit)
    cols = names.column_names(table)
    out = build_table(
        table,
        metadata,
        name=names.object_name(table.name),
        name_map=cols.__getitem__,
        identity=opts.identity,
    )
    out.info[SCHEMA_NAME] = table.name
    return out


def system_tables(
    metadata: MetaData, opts: DdlOptions, names: NameMapper | None = None
) -> list[Table]:
    """The ledger, unknown-event and dead-letter tables, index names shortened if needed."""
    names = names or NameMapper(opts.name_limit)
    tables = list(build_system_tables(metadata, identity=opts.identity).values())
    for t in tables:
        names.object_name(t.name)
        t.info[SCHEMA_NAME] = t.name
        for ix in t.indexes:
            ix.name = quoted_name(names.object_name(str(ix.name)), None)
    return tables


def _with_schema(tables: list[Table], schema: str | None) -> list[Table]:
    if schema is None:
        return tables
    md = MetaData()
    return [t.to_metadata(md, schema=schema) for t in tables]


def build_tables(
    tables: Iterable[TableDef], opts: DdlOptions, include_system: bool = True
) -> tuple[list[Table], NameMapper]:
    """Every ``Table`` to create, and the name mapping that shortening made."""
    names = NameMapper(opts.name_limit)
    md = MetaData()
    out = system_tables(md, opts, names) if include_system else []
    out += [event_table(t, md, opts, names) for t in tables]
    if not opts.identity:
        for t in out:
            names.object_name(_helper_name(t, "_seq"))
            names.object_name(_helper_name(t, "_trg"))
    return _with_schema(out, opts.schema), names


def create_statements(table: Table, dialect: Dialect, opts: DdlOptions) -> list[str]:
    """CREATE TABLE, its indexes and (Oracle 11) its sequence and trigger; no terminators."""
    out = [str(CreateTable(table).compile(dialect=dialect)).strip()]
    indexes = sorted(table.indexes, key=lambda ix: str(ix.name))
    out += [str(CreateIndex(ix).compile(dialect=dialect)).strip() for ix in indexes]
    if not opts.identity and _has_surrogate_key(table):
        out += _sequence_and_trigger(table, dialect, opts)
    return out


def _has_surrogate_key(table: Table) -> bool:
    """A single integer primary key that the database numbers (not the ledger's message id)."""
    keys = list(table.primary_key.columns)
    return len(keys) == 1 and isinstance(keys[0].type, Integer)


def _helper_name(table: Table, suffix: str) -> str:
    """An Oracle 11 sequence or trigger name, from the table's unshortened name."""
    return str(table.info.get(SCHEMA_NAME, table.name)) + suffix


def _sequence_and_trigger(table: Table, dialect: Dialect, opts: DdlOptions) -> list[str]:
    names = NameMapper(opts.name_limit)
    quote = dialect.identifier_preparer.quote
    prefix = f"{quote(opts.schema)}." if opts.schema else ""
    seq = prefix + quote(names.short(_helper_name(table, "_seq")))
    trg = prefix + quote(names.short(_helper_name(table, "_trg")))
    pk = quote(next(iter(table.primary_key.columns)).name)
    target = dialect.identifier_preparer.format_table(table)
    return [
        f"CREATE SEQUENCE {seq} START WITH 1 INCREMENT BY 1 CACHE 100",
        f"CREATE OR REPLACE TRIGGER {trg}\nBEFORE INSERT ON {target}\nFOR EACH ROW\n"
        f"WHEN (new.{pk} IS NULL)\nBEGIN\n  SELECT {seq}.NEXTVAL INTO :new.{pk} FROM dual;\n"
        "END;",
    ]


def drop_statements(table: Table, dialect: Dialect, opts: DdlOptions) -> list[str]:
    """DROP TABLE (and an Oracle 11 sequence), only ever asked for with --drop-existing."""
    exists = dialect.name != "oracle"
    out = [str(DropTable(table, if_exists=exists).compile(dialect=dialect)).strip()]
    if not opts.identity:
        quote = dialect.identifier_preparer.quote
        prefix = f"{quote(opts.schema)}." if opts.schema else ""
        seq = quote(NameMapper(opts.name_limit).short(_helper_name(table, "_seq")))
        out.append(f"DROP SEQUENCE {prefix}{seq}")
    return out


@dataclass
class DdlScript:
    """Statements (without terminators) for one dialect, and the names shortening changed."""

    dialect: str
    statements: list[str]
    name_map: dict[str, str]
    tables: list[str]

    def render(self, title: str = "") -> str:
        """The script as a file: a header (what, when, name mapping), then the statements."""
        return header(self.dialect, title, self.name_map) + "".join(
            terminate(s) + "\n\n" for s in self.statements
        )


def terminate(statement: str) -> str:
    """``;`` after SQL; a PL/SQL block (ends with ``END;``) gets SQL*Plus's ``/`` line."""
    return statement + "\n/" if statement.endswith("END;") else statement + ";"


def header(dialect: str, title: str, name_map: dict[str, str]) -> str:
    from ledbelly import __version__

    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    lines = [f"-- generated by ledbelly {__version__} on {stamp}", f"-- dialect: {dialect}"]
    if title:
        lines.append(f"-- {title}")
    if name_map:
        lines.append(
            "-- names shortened to the identifier limit (schema name -> database name;"
            " first limit-9 characters, '_', 8 hex digits of SHA-1):"
        )
        lines += [f"--   {long} -> {short}" for long, short in sorted(name_map.items())]
    return "\n".join(lines) + "\n\n"


def generate(
    tables: Sequence[TableDef],
    opts: DdlOptions,
    drop_existing: bool = False,
    only: set[str] | None = None,
) -> DdlScript:
    """The DDL for ``tables`` plus the system tables; ``only`` limits it to those names."""
    dialect = dialect_for(opts.dialect, opts.name_limit, opts.oracle_compat)
    sa_tables, names = build_tables(tables, opts)
    statements: list[str] = []
    chosen = [t for t in sa_tables if only is None or t.name in only]
    if drop_existing:
        for t in reversed(chosen):
            statements += drop_statements(t, dialect, opts)
    for t in chosen:
        statements += create_statements(t, dialect, opts)
    return DdlScript(opts.dialect, statements, names.mapping, [t.name for t in chosen])


def apply(
    engine: Engine, tables: Sequence[TableDef], opts: DdlOptions, drop_existing: bool = False
) -> DdlScript:
    """Create what is missing (or, with ``drop_existing``, everything afresh); returns what ran."""
    sa_tables, names = build_tables(tables, opts)
    with engine.connect() as conn:
        existing = {n.lower() for n in inspect(conn).get_table_names(schema=opts.schema)}
    dialect = engine.dialect
    statements: list[str] = []
    if drop_existing:
        for t in reversed([t for t in sa_tables if t.name.lower() in existing]):
            statements += drop_statements(t, dialect, opts)
    chosen = [t for t in sa_tables if drop_existing or t.name.lower() not in existing]
    for t in chosen:
        statements += create_statements(t, dialect, opts)
    run_statements(engine, statements)
    return DdlScript(dialect.name, statements, names.mapping, [t.name for t in chosen])


def run_statements(engine: Engine, statements: Iterable[str]) -> None:
    """Execute DDL in order, in one transaction where the database has transactional DDL."""
    with engine.begin() as conn:
        for s in statements:
            conn.exec_driver_sql(s)


def write_script(script: DdlScript, directory: Path, fmt: str, title: str = "") -> Path:
    """``<dir>/<format>-create-<dialect>-<timestamp>.sql``."""
    directory.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    path = directory / f"{fmt}-create-{script.dialect}-{stamp}.sql"
    path.write_text(script.render(title), encoding="utf-8")
    return path
