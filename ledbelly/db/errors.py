"""Driver errors mapped, at one boundary, into ledbelly's: retry, or dead letter.

Each driver reports errors its own way (SQLSTATE on psycopg2, error numbers on
mysqlclient, messages on sqlite3); the sink and the live tables call
``classify_db_error`` and decide by the type it returns.
"""

from __future__ import annotations

from sqlalchemy import exc as sa_exc

from ledbelly.errors import DatabaseUnavailable, LedbellyError, RowError

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
