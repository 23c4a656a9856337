"""Driver errors into retry, wait-for-an-operator or dead letter: one table per driver.

Each row builds an error in the shape its driver raises it (psycopg2's ``pgcode``,
mysqlclient's number in ``args[0]``, sqlite3's words, pyodbc's SQLSTATE in ``args[0]``,
oracledb's ``_Error`` with a ``code``), then checks the class ``classify_db_error`` gives.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

import pytest
from sqlalchemy import exc as sa_exc

from ledbelly.db.errors import classify_db_error
from ledbelly.errors import DatabaseUnavailable, LedbellyError, OperatorError, RowError


def _driver_error(module: str, name: str, *args: object, **attrs: object) -> Exception:
    """An exception whose class lives in ``module`` and derives from that module's Error."""
    base = type("Error", (Exception,), {"__module__": module})
    cls = type(name, (base,), {"__module__": module})
    err: Exception = cls(*args)
    for key, value in attrs.items():
        setattr(err, key, value)
    return err


@dataclass
class _OracleError:  # what oracledb puts in args[0]
    code: int
    message: str


def _wrapped(orig: Exception) -> sa_exc.DBAPIError:
    return sa_exc.DBAPIError("INSERT ...", {}, orig)


PSYCOPG2 = [
    ("08006", "connection failure", DatabaseUnavailable),
    ("40P01", "deadlock detected", DatabaseUnavailable),
    ("57P01", "terminating connection due to administrator command", DatabaseUnavailable),
    ("55P03", "lock not available", DatabaseUnavailable),
    ("42501", "permission denied for table live_asset_accessed", OperatorError),
    ("42P01", 'relation "live_asset_accessed" does not exist', OperatorError),
    (
        "42703",
        'column "asset_name" of relation "live_asset_accessed" does not exist',
        OperatorError,
    ),
    ("25006", "cannot execute INSERT in a read-only transaction", OperatorError),
    ("28P01", "password authentication failed", OperatorError),
    ("22001", "value too long for type character varying(100)", RowError),
    ("22003", "integer out of range", RowError),
    ("23505", "duplicate key value violates unique constraint", RowError),
]

MYSQLCLIENT = [
    (2006, "MySQL server has gone away", DatabaseUnavailable),
    (2013, "Lost connection to MySQL server during query", DatabaseUnavailable),
    (1213, "Deadlock found when trying to get lock", DatabaseUnavailable),
    (1205, "Lock wait timeout exceeded", DatabaseUnavailable),
    (1142, "INSERT command denied to user 'ledbelly'@'%' for table 'live_x'", OperatorError),
    (1146, "Table 'canvas.live_x' doesn't exist", OperatorError),
    (1054, "Unknown column 'asset_name' in 'field list'", OperatorError),
    (1290, "The MariaDB server is running with the --read-only option", OperatorError),
    (1406, "Data too long for column 'asset_name' at row 1", RowError),
    (1366, "Incorrect integer value", RowError),
]

SQLITE3 = [
    ("database is locked", DatabaseUnavailable),
    ("disk I/O error", DatabaseUnavailable),
    ("no such table: live_asset_accessed", OperatorError),
    ("table live_asset_accessed has no column named asset_name", OperatorError),
    ("attempt to write a readonly database", OperatorError),
    ("too long", RowError),
]

PYODBC = [
    ("08S01", "Communication link failure", DatabaseUnavailable),
    ("HYT00", "Query timeout expired", DatabaseUnavailable),
    ("40001", "Transaction was deadlocked", DatabaseUnavailable),
    ("42S02", "Invalid object name 'live_x'", OperatorError),
    ("42S22", "Invalid column name 'asset_name'", OperatorError),
    ("42000", "The INSERT permission was denied on the object 'live_x'", OperatorError),
    ("28000", "Login failed for user 'ledbelly'", OperatorError),
    ("22001", "String or binary data would be truncated", RowError),
]

ORACLEDB = [
    (3113, "end-of-file on communication channel", DatabaseUnavailable),
    (60, "deadlock detected while waiting for resource", DatabaseUnavailable),
    (942, "table or view does not exist", OperatorError),
    (904, '"ASSET_NAME": invalid identifier', OperatorError),
    (1031, "insufficient privileges", OperatorError),
    (16000, "database or pluggable database open for read-only access", OperatorError),
    (12899, "value too large for column", RowError),
]


@pytest.mark.parametrize(("sqlstate", "text", "expected"), PSYCOPG2)
def test_psycopg2(sqlstate: str, text: str, expected: type[LedbellyError]) -> None:
    name = "OperationalError" if sqlstate[:2] in ("08", "57") else "DatabaseError"
    err = _driver_error("psycopg2", name, text, pgcode=sqlstate)
    assert type(classify_db_error(_wrapped(err))) is expected
    assert type(classify_db_error(err)) is expected  # raised outside SQLAlchemy (COPY)


def test_psycopg2_without_a_sqlstate_is_a_lost_connection() -> None:
    err = _driver_error("psycopg2", "OperationalError", "server closed the connection", pgcode=None)
    assert type(classify_db_error(err)) is DatabaseUnavailable


@pytest.mark.parametrize(("number", "text", "expected"), MYSQLCLIENT)
def test_mysqlclient(number: int, text: str, expected: type[LedbellyError]) -> None:
    err = _driver_error("MySQLdb", "OperationalError", number, text)
    assert type(classify_db_error(_wrapped(err))) is expected


@pytest.mark.parametrize(("text", "expected"), SQLITE3)
def test_sqlite3(text: str, expected: type[LedbellyError]) -> None:
    err = sqlite3.OperationalError(text)
    assert type(classify_db_error(_wrapped(err))) is expected


@pytest.mark.parametrize(("sqlstate", "text", "expected"), PYODBC)
def test_pyodbc(sqlstate: str, text: str, expected: type[LedbellyError]) -> None:
    err = _driver_error(
        "pyodbc",
        "ProgrammingError",
        sqlstate,
        f"[{sqlstate}] [Microsoft][ODBC Driver 18 for SQL Server] {text}",
    )
    assert type(classify_db_error(_wrapped(err))) is expected


@pytest.mark.parametrize(("code", "text", "expected"), ORACLEDB)
def test_oracledb(code: int, text: str, expected: type[LedbellyError]) -> None:
    err = _driver_error("oracledb", "DatabaseError", _OracleError(code, f"ORA-{code:05}: {text}"))
    assert type(classify_db_error(_wrapped(err))) is expected


def test_a_pool_timeout_is_transient_and_anything_else_is_the_row() -> None:
    assert type(classify_db_error(sa_exc.TimeoutError("pool"))) is DatabaseUnavailable
    assert type(classify_db_error(ValueError("odd value"))) is RowError
    assert isinstance(OperatorError("x"), DatabaseUnavailable)  # waited out, never dead-lettered
