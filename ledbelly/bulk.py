"""The fastest correct way to put a batch of rows into each database.

PostgreSQL (psycopg2) gets ``COPY ... FROM STDIN`` inside the batch's transaction, about
twice as fast as multi-row INSERTs. Elsewhere SQLAlchemy's executemany is already the
bulk path: mysqlclient rewrites it into multi-row INSERTs, pyodbc gets
``fast_executemany`` (set on the engine), Oracle gets array binds, SQLite one prepared
statement.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Table, insert

_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def copy_field(value: Any) -> str:
    """One value in PostgreSQL's COPY text format."""
    if value is None:
        return "\\N"
    cls = value.__class__
    if cls is str:
        if "\\" in value or "\t" in value or "\n" in value or "\r" in value:
            return value.translate(_ESCAPES)  # type: ignore[no-any-return]
        return value  # type: ignore[no-any-return]
    if cls is bool:
        return "t" if value else "f"
    if cls is datetime:
        return value.isoformat()  # type: ignore[no-any-return]
    if cls is float:
        return repr(value)
    return str(value)


def copy_text(rows: list[dict[str, Any]], columns: list[str]) -> str:
    """Rows as COPY text, one line each, columns in the given order.

    NULLs and plain strings, most of a row, are written inline without a call.
    """
    f = copy_field
    null = "\\N"
    return "".join([
        "\t".join([
            null if (v := row[c]) is None else
            v if (v.__class__ is str and "\\" not in v and "\t" not in v and "\n" not in v
                  and "\r" not in v) else f(v)
            for c in columns]) + "\n"
        for row in rows])


_COPY_SQL: dict[tuple[int, tuple[str, ...]], str] = {}


def _copy_sql(conn: Connection, table: Table, columns: tuple[str, ...]) -> str:
    key = (id(table), columns)
    sql = _COPY_SQL.get(key)
    if sql is None:
        prep = conn.dialect.identifier_preparer
        names = ", ".join(prep.quote(table.c[c].name if c in table.c else c) for c in columns)
        sql = _COPY_SQL[key] = f"COPY {prep.format_table(table)} ({names}) FROM STDIN"
    return sql


def copy_rows(conn: Connection, table: Table, rows: list[dict[str, Any]]) -> None:
    """``COPY table (columns) FROM STDIN`` through the connection's own transaction."""
    columns = tuple(rows[0])
    sql = _copy_sql(conn, table, columns)
    raw = conn.connection.dbapi_connection
    assert raw is not None
    cur: Any = raw.cursor()
    try:
        cur.copy_expert(sql, io.StringIO(copy_text(rows, list(columns))))
    finally:
        cur.close()


def executemany(conn: Connection, table: Table, rows: list[dict[str, Any]]) -> None:
    conn.execute(insert(table), rows)


Inserter = Callable[[Connection, Table, list[dict[str, Any]]], None]


def inserter_for(conn_dialect: str, driver: str) -> Inserter:
    """The bulk path for a dialect and driver."""
    if conn_dialect == "postgresql" and driver == "psycopg2":
        return copy_rows
    return executemany
