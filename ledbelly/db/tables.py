"""SQLAlchemy tables built from the YAML schemas, typed per dialect as a DBA would.

Used by both the sink (inserts) and the DDL generator, so both see one definition.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Double,
    Identity,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    Unicode,
    UnicodeText,
)
from sqlalchemy.dialects import mssql, mysql, oracle
from sqlalchemy.sql.elements import _truncated_label
from sqlalchemy.types import TypeEngine

from ledbelly.schema.model import ColumnDef, TableDef

LEDGER = "ledbelly_messages"
UNKNOWN = "ledbelly_unknown_events"
DEAD_LETTERS = "ledbelly_dead_letters"
SYSTEM_TABLES = (LEDGER, UNKNOWN, DEAD_LETTERS)

# Every MySQL/MariaDB table stores 4-byte UTF-8 (emoji in discussion posts), whatever the
# server's default character set; other dialects ignore these options.
MYSQL_TABLE_OPTIONS: dict[str, Any] = {
    "mysql_engine": "InnoDB",
    "mysql_charset": "utf8mb4",
    "mysql_collate": "utf8mb4_unicode_ci",
}

NameMap = Callable[[str], str]


def datetime_type() -> TypeEngine[Any]:
    """Times keep their milliseconds (LEDbelly dropped them) on every dialect."""
    return (
        DateTime()
        .with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")
        .with_variant(mssql.DATETIME2(precision=6), "mssql")  # type: ignore[no-untyped-call]
        .with_variant(oracle.TIMESTAMP(), "oracle")
    )


def long_text(multibyte: bool = True) -> TypeEngine[Any]:
    """Unbounded text: LONGTEXT on MySQL (TEXT stops at 64 KB), NVARCHAR(MAX)/CLOB elsewhere."""
    base: TypeEngine[Any] = UnicodeText() if multibyte else Text()
    on_mssql = mssql.NVARCHAR() if multibyte else mssql.VARCHAR()  # (max)
    return base.with_variant(mysql.LONGTEXT(), "mysql", "mariadb").with_variant(on_mssql, "mssql")


def id_type() -> TypeEngine[Any]:
    """A 64-bit surrogate key; SQLite only auto-increments a plain INTEGER PRIMARY KEY."""
    return BigInteger().with_variant(Integer(), "sqlite")


def column_type(col: ColumnDef) -> TypeEngine[Any]:
    if col.type == "bigint":
        return BigInteger()
    if col.type == "int":
        return Integer()
    if col.type == "float":
        return Double()
    if col.type == "boolean":
        return Boolean(create_constraint=False)
    if col.type == "datetime":
        return datetime_type()
    if col.type == "text":
        return long_text(col.multibyte)
    assert col.size is not None
    return Unicode(col.size) if col.multibyte else String(col.size)


def _key_column(name: str, identity: bool, key: str | None = None) -> Column[object]:
    """The surrogate key; without ``identity`` a sequence and trigger fill it (Oracle 11)."""
    if identity:
        return Column(
            name, id_type(), Identity(start=1), key=key, primary_key=True, autoincrement=True
        )
    return Column(name, id_type(), key=key, primary_key=True, autoincrement=True)


def build_table(
    table: TableDef,
    metadata: MetaData,
    name: str | None = None,
    name_map: NameMap | None = None,
    identity: bool = True,
) -> Table:
    """The SQLAlchemy ``Table`` for a schema table; the primary key is an identity column.

    ``name_map`` renames columns in the database (Oracle's identifier limit) while each
    column's ``key`` stays the schema name, so row dicts keep the schema's names.
    """
    rename = name_map or (lambda n: n)
    columns: list[Column[object]] = []
    for col in table.columns:
        db_name = rename(col.name)
        # A renamed column's key truncates its bind parameter name to the dialect's label
        # length too (Oracle before 12.2 refuses binds over 30 characters).
        key = col.name if db_name == col.name else _truncated_label(col.name)
        if col.primary_key:
            columns.append(_key_column(db_name, identity, key=key))
        else:
            columns.append(Column(db_name, column_type(col), key=key, nullable=True))
    return Table(name or table.name, metadata, *columns, **MYSQL_TABLE_OPTIONS)


def build_system_tables(metadata: MetaData, identity: bool = True) -> dict[str, Table]:
    """The ledger, unknown-event and dead-letter tables that make delivery exactly-once."""
    ledger = Table(
        LEDGER,
        metadata,
        Column("message_id", String(100), primary_key=True),
        Column("event_name", Unicode(255)),
        Column("target_table", String(128)),
        Column("outcome", String(16), nullable=False),
        Column("processed_at", datetime_type(), nullable=False),
        Index("ix_ledbelly_messages_processed_at", "processed_at"),
        **MYSQL_TABLE_OPTIONS,
    )
    unknown = Table(
        UNKNOWN,
        metadata,
        _key_column("id", identity),
        Column("message_id", String(100), nullable=False),
        Column("event_name", Unicode(255)),
        Column("format", String(16)),
        Column("event_time", datetime_type()),
        Column("received_at", datetime_type(), nullable=False),
        Column("reason", Unicode(255)),
        Column("raw_body", long_text()),
        Column("attempts", Integer()),  # tries so far: 1 when stored, +1 per replay
        Column("last_attempt_at", datetime_type()),
        Index("ix_ledbelly_unknown_events_event_name", "event_name"),
        Index("ix_ledbelly_unknown_events_message_id", "message_id"),
        **MYSQL_TABLE_OPTIONS,
    )
    dead = Table(
        DEAD_LETTERS,
        metadata,
        _key_column("id", identity),
        Column("message_id", String(100), nullable=False),
        Column("event_name", Unicode(255)),
        Column("error", long_text()),
        Column("raw_body", long_text()),
        Column("failed_at", datetime_type(), nullable=False),
        Column("attempts", Integer()),
        Column("last_attempt_at", datetime_type()),
        Index("ix_ledbelly_dead_letters_message_id", "message_id"),
        Index("ix_ledbelly_dead_letters_failed_at", "failed_at"),
        **MYSQL_TABLE_OPTIONS,
    )
    return {LEDGER: ledger, UNKNOWN: unknown, DEAD_LETTERS: dead}
