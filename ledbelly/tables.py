"""SQLAlchemy tables built from the YAML schemas, typed per dialect as a DBA would.

Used by both the sink (inserts) and the DDL generator, so both see one definition.
"""

from __future__ import annotations

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
from sqlalchemy.types import TypeEngine

from ledbelly.schema import ColumnDef, TableDef

LEDGER = "ledbelly_messages"
UNKNOWN = "ledbelly_unknown_events"
DEAD_LETTERS = "ledbelly_dead_letters"
SYSTEM_TABLES = (LEDGER, UNKNOWN, DEAD_LETTERS)


def datetime_type() -> TypeEngine[object]:
    """Times keep their milliseconds (LEDbelly dropped them) on every dialect."""
    return (
        DateTime()
        .with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")
        .with_variant(mssql.DATETIME2(precision=6), "mssql")
        .with_variant(oracle.TIMESTAMP(), "oracle")
    )


def long_text(multibyte: bool = True) -> TypeEngine[object]:
    """Unbounded text: LONGTEXT on MySQL (TEXT stops at 64 KB), NVARCHAR(MAX)/CLOB elsewhere."""
    base: TypeEngine[object] = UnicodeText() if multibyte else Text()
    return base.with_variant(mysql.LONGTEXT(), "mysql", "mariadb")


def id_type() -> TypeEngine[object]:
    """A 64-bit surrogate key; SQLite only auto-increments a plain INTEGER PRIMARY KEY."""
    return BigInteger().with_variant(Integer(), "sqlite")


def column_type(col: ColumnDef) -> TypeEngine[object]:
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


def build_table(table: TableDef, metadata: MetaData, name: str | None = None) -> Table:
    """The SQLAlchemy ``Table`` for a schema table; the primary key is an identity column."""
    columns: list[Column[object]] = []
    for col in table.columns:
        if col.primary_key:
            columns.append(
                Column(col.name, id_type(), Identity(start=1), primary_key=True,
                       autoincrement=True)
            )
        else:
            columns.append(Column(col.name, column_type(col), nullable=True))
    return Table(name or table.name, metadata, *columns)


def build_system_tables(metadata: MetaData) -> dict[str, Table]:
    """The ledger, unknown-event and dead-letter tables that make delivery exactly-once."""
    ledger = Table(
        LEDGER, metadata,
        Column("message_id", String(100), primary_key=True),
        Column("event_name", Unicode(255)),
        Column("target_table", String(128)),
        Column("outcome", String(16), nullable=False),
        Column("processed_at", datetime_type(), nullable=False),
        Index("ix_ledbelly_messages_processed_at", "processed_at"),
    )
    unknown = Table(
        UNKNOWN, metadata,
        Column("id", id_type(), Identity(start=1), primary_key=True, autoincrement=True),
        Column("message_id", String(100), nullable=False),
        Column("event_name", Unicode(255)),
        Column("format", String(16)),
        Column("event_time", datetime_type()),
        Column("received_at", datetime_type(), nullable=False),
        Column("reason", Unicode(255)),
        Column("raw_body", long_text()),
        Index("ix_ledbelly_unknown_events_event_name", "event_name"),
        Index("ix_ledbelly_unknown_events_message_id", "message_id"),
    )
    dead = Table(
        DEAD_LETTERS, metadata,
        Column("id", id_type(), Identity(start=1), primary_key=True, autoincrement=True),
        Column("message_id", String(100), nullable=False),
        Column("event_name", Unicode(255)),
        Column("error", long_text()),
        Column("raw_body", long_text()),
        Column("failed_at", datetime_type(), nullable=False),
        Index("ix_ledbelly_dead_letters_message_id", "message_id"),
        Index("ix_ledbelly_dead_letters_failed_at", "failed_at"),
    )
    return {LEDGER: ledger, UNKNOWN: unknown, DEAD_LETTERS: dead}
