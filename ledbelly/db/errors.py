"""Driver errors mapped, at one boundary, into ledbelly's: retry, or dead letter.

Each driver reports errors its own way (SQLSTATE on psycopg2, error numbers on
mysqlclient, messages on sqlite3); the sink and the live tables call
``classify_db_error`` and decide by the type it returns.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import exc as sa_exc

from ledbelly.errors import DatabaseUnavailable, LedbellyError, OperatorError, RowError

# What each driver says, mapped to what ledbelly does: retry (the fault passes by itself),
# wait for an operator (retry, but someone must act), or dead-letter the row (its content).

# PostgreSQL SQLSTATE classes that pass by themselves: connection, rollback (deadlock,
# serialization), resources, operator intervention (shutdown), system errors.
_PG_TRANSIENT_CLASSES = frozenset(["08", "40", "53", "57", "58"])
_PG_TRANSIENT = frozenset(["55P03"])  # lock not available
# Invalid authorization, missing database or schema; permission denied, undefined table or
# column; read-only transaction.
_PG_OPERATOR_CLASSES = frozenset(["28"])
_PG_OPERATOR = frozenset(["3D000", "3F000", "42501", "42P01", "42703", "25006"])

# MySQL/MariaDB error numbers that pass by themselves: too many connections, shutdown in
# progress, lock wait, deadlock, query interrupted, connection lost (the 2000s).
_MYSQL_TRANSIENT = frozenset([1040, 1053, 1205, 1213, 1927, 4031])
# Access denied (database, user, table, column), unknown database, table or column,
# read-only server or table.
_MYSQL_OPERATOR = frozenset([1036, 1044, 1045, 1049, 1054, 1142, 1143, 1146, 1290])

# Oracle ORA- numbers: deadlock, busy, lost or refused connections, starting or stopping.
_ORACLE_TRANSIENT = frozenset(
    [54, 60, 1033, 1034, 1089, 3113, 3114, 3135, 12170, 12514, 12541, 12543, 25408]
)
# Table or view missing, invalid identifier (column), insufficient privileges, read-only
# database, invalid login, no quota on the tablespace.
_ORACLE_OPERATOR = frozenset([904, 942, 1017, 1031, 1950, 16000])

# ODBC SQLSTATEs (pyodbc, MSSQL): timeouts and deadlocks pass; missing objects, logins and
# permissions (42000 with "permission" in its text) need an operator.
_ODBC_TRANSIENT = frozenset(["40001", "HYT00", "HYT01"])
_ODBC_OPERATOR = frozenset(["28000", "42S02", "42S22"])

# SQLite says it in words.
_SQLITE_TRANSIENT = ("locked", "busy", "unable to open", "disk i/o", "connect", "closed")
_SQLITE_OPERATOR = ("no such table", "no such column", "has no column named", "readonly")


def classify_db_error(exc: BaseException) -> LedbellyError:
    """Map a driver error to ``DatabaseUnavailable`` (retry), ``OperatorError`` (retry, and
    someone must act) or ``RowError`` (dead letter)."""
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
    else:
        return RowError(f"{type(exc).__name__}: {exc}")
    verdict = _verdict(orig)
    text = _first_line(orig)
    if verdict == "operator":
        return OperatorError(text)
    if verdict == "transient":
        return DatabaseUnavailable(text)
    return RowError(text)


def _verdict(orig: BaseException) -> str:
    """``transient``, ``operator`` or ``row``, from the shape of the driver's error."""
    module = type(orig).__module__.split(".")[0]
    text = _first_line(orig).lower()
    args = getattr(orig, "args", ())
    first = args[0] if args else None
    sqlstate = getattr(orig, "pgcode", None) or getattr(orig, "sqlstate", None)
    if isinstance(sqlstate, str) and sqlstate:  # psycopg2, psycopg
        return _by_code(
            sqlstate,
            _PG_TRANSIENT,
            _PG_OPERATOR,
            sqlstate[:2] in _PG_TRANSIENT_CLASSES,
            sqlstate[:2] in _PG_OPERATOR_CLASSES,
        )
    if module in ("psycopg2", "psycopg") and type(orig).__name__ in (
        "OperationalError",
        "InterfaceError",
    ):
        return "transient"  # no SQLSTATE: the connection itself failed
    if isinstance(first, int) and not isinstance(first, bool):  # mysqlclient, PyMySQL
        return _by_code(first, _MYSQL_TRANSIENT, _MYSQL_OPERATOR, 2000 <= first < 3000, False)
    code = getattr(first, "code", None)  # oracledb: args[0] is an _Error with .code
    if isinstance(code, int):
        return _by_code(code, _ORACLE_TRANSIENT, _ORACLE_OPERATOR, False, False)
    if module == "pyodbc" and isinstance(first, str):
        state = first[:5]
        operator = state == "42000" and "permission" in text
        return _by_code(state, _ODBC_TRANSIENT, _ODBC_OPERATOR, state.startswith("08"), operator)
    if type(orig).__name__ == "OperationalError":  # sqlite3
        if any(w in text for w in _SQLITE_OPERATOR):
            return "operator"
        if any(w in text for w in _SQLITE_TRANSIENT):
            return "transient"
    return "row"


def _by_code(
    code: object,
    transient: frozenset[Any],
    operator: frozenset[Any],
    transient_class: bool,
    operator_class: bool,
) -> str:
    if code in operator or operator_class:
        return "operator"
    if code in transient or transient_class:
        return "transient"
    return "row"


def _is_dbapi_error(exc: BaseException) -> bool:
    """A PEP 249 driver error: every driver's errors derive from its own ``Error``."""
    return any(
        c.__name__ == "Error" and c.__module__.split(".")[0] in _DRIVERS for c in type(exc).__mro__
    )


_DRIVERS = frozenset(["psycopg2", "psycopg", "MySQLdb", "pymysql", "sqlite3", "pyodbc", "oracledb"])


def _first_line(err: BaseException) -> str:
    return (str(err).strip().splitlines() or [type(err).__name__])[0][:500]
