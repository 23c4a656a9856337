"""Choosing and opening the database: URL rules, LEDbelly's database.yml, the pool."""

from __future__ import annotations

import importlib.util
import os
import time
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy import URL, Engine, create_engine, event, make_url
from sqlalchemy.exc import ArgumentError, DisconnectionError

from ledbelly.errors import ConfigError

DEFAULT_URL = "sqlite:///ledbelly.db"
ENV_VAR = "LEDBELLY_DATABASE_URL"
DEFAULT_FILE = Path("cfg/database.yml")

# LEDbelly's Sequel adapters, and plain names, to SQLAlchemy dialect+driver.
_ADAPTERS = {
    "postgres": "postgresql",
    "postgresql": "postgresql",
    "pg": "postgresql",
    "mysql": "mysql",
    "mysql2": "mysql",
    "mariadb": "mariadb",
    "tinytds": "mssql",
    "sqlserver": "mssql",
    "mssql": "mssql",
    "oracle": "oracle",
    "sqlite": "sqlite",
}


def _has(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def normalize_url(raw: str | URL) -> URL:
    """Pick the installed driver for plain URLs and make MySQL speak utf8mb4.

    SQLAlchemy 2.1 maps a plain ``postgresql://`` to psycopg 3; ledbelly ships psycopg2,
    so a plain URL goes to psycopg2 unless only psycopg 3 is installed.
    """
    try:
        url = make_url(raw) if isinstance(raw, str) else raw
    except ArgumentError as exc:
        raise ConfigError(f"not a database URL: {exc}") from None
    backend, _, driver = url.drivername.partition("+")
    if backend in ("postgres", "postgresql") and not driver:
        url = url.set(
            drivername="postgresql+psycopg2"
            if _has("psycopg2") or not _has("psycopg")
            else "postgresql+psycopg"
        )
    elif backend in ("mysql", "mariadb"):
        if not driver:
            url = url.set(drivername=f"{backend}+mysqldb")
        if "charset" not in url.query:
            url = url.update_query_dict({"charset": "utf8mb4"})
    elif backend == "mssql" and not driver:
        url = url.set(drivername="mssql+pyodbc")
    elif backend == "oracle" and not driver:
        url = url.set(drivername="oracle+oracledb")
    return url


def url_from_yaml(path: Path) -> URL:
    """A URL from LEDbelly's ``database.yml`` (adapter, host, data, user, pass) or a ``url``."""
    from ledbelly.config import read_yaml  # config imports the extensions, which use this

    doc = read_yaml(path) or {}
    if not isinstance(doc, dict):
        raise ConfigError(f"{path}: expected a mapping of database settings")
    if doc.get("url"):
        return normalize_url(str(doc["url"]))
    adapter = str(doc.get("adapter", "")).lower()
    if adapter not in _ADAPTERS:
        raise ConfigError(f"{path}: adapter must be one of {sorted(_ADAPTERS)}, got {adapter!r}")
    backend = _ADAPTERS[adapter]
    if backend == "sqlite":
        return normalize_url(f"sqlite:///{doc.get('data') or doc.get('database') or 'ledbelly.db'}")
    query: dict[str, str] = {}
    if backend == "mssql":
        query["driver"] = str(doc.get("odbc_driver", "ODBC Driver 18 for SQL Server"))
    url = URL.create(
        backend,
        username=_opt(doc.get("user")),
        password=_opt(doc.get("pass") or doc.get("password")),
        host=_opt(doc.get("host")),
        port=int(doc["port"]) if doc.get("port") else None,
        database=_opt(doc.get("data") or doc.get("database")),
        query=query,
    )
    return normalize_url(url)


def _opt(value: Any) -> str | None:
    return None if value is None else str(value)


def pool_size_for(cli_url: str | None, config_file: Path | None = None) -> int | None:
    """LEDbelly's ``max_connections``, when the database comes from ``database.yml``."""
    if cli_url or os.environ.get(ENV_VAR):
        return None
    path = config_file or DEFAULT_FILE
    return pool_size_from_yaml(path) if path.exists() else None


def pool_size_from_yaml(path: Path) -> int | None:
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError):
        return None
    value = doc.get("max_connections") if isinstance(doc, dict) else None
    return int(value) if value else None


def resolve_url(cli_url: str | None, config_file: Path | None = None) -> URL:
    """``--db``, else ``$LEDBELLY_DATABASE_URL``, else ``cfg/database.yml``, else SQLite."""
    if cli_url:
        return normalize_url(cli_url)
    if os.environ.get(ENV_VAR):
        return normalize_url(os.environ[ENV_VAR])
    path = config_file or DEFAULT_FILE
    if config_file is not None and not path.exists():
        raise ConfigError(f"database configuration {path} does not exist")
    if path.exists():
        return url_from_yaml(path)
    return normalize_url(DEFAULT_URL)


def safe_url(url: URL) -> str:
    """The URL as it may be shown: never with its password."""
    return url.render_as_string(hide_password=True)


# A pooled connection idle longer than this is pinged before use. SQLAlchemy's
# ``pool_pre_ping`` pings at every checkout: one more round trip per batch, a fifth of a
# small batch's time (the HTTPS intake commits 16 events at a time). A connection used
# moments ago is as good as the ping would say; if the server went away since, the
# statement fails as a disconnect, the pool is emptied and the writer retries.
PING_AFTER_IDLE = 1.0  # seconds


def open_engine(url: URL, pool_size: int = 5, durable: bool = True) -> Engine:
    """A pooled engine that checks idle connections before use and survives restarts.

    ``durable=False`` lets SQLite skip the disk flush at each commit: right for
    ``ingest``, whose input is still there to run again after a power cut.
    """
    kwargs: dict[str, Any] = {}
    if url.get_backend_name() == "sqlite":
        kwargs["connect_args"] = {"timeout": 30, "check_same_thread": False}
    else:
        kwargs.update(
            pool_size=pool_size, max_overflow=pool_size, pool_recycle=1800, pool_timeout=30
        )
        if url.get_backend_name() == "postgresql" or url.get_backend_name() in ("mysql", "mariadb"):
            kwargs["connect_args"] = {"connect_timeout": 10}
    engine = create_engine(url, **kwargs)
    _ping_when_idle(engine)
    if url.get_backend_name() == "sqlite":
        _create_owner_only(url.database)
        event.listen(engine, "connect", _sqlite_pragmas if durable else _sqlite_pragmas_fast)
    return engine


def _ping_when_idle(engine: Engine) -> None:
    """Ping a connection at checkout if it sat in the pool over ``PING_AFTER_IDLE``; a
    dead one is replaced (SQLAlchemy's documented ``DisconnectionError`` contract)."""
    dialect = engine.dialect

    @event.listens_for(engine, "checkin")
    def idle_since(_dbapi_conn: Any, record: Any) -> None:
        record.info["ledbelly_idle_since"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def ping(dbapi_conn: Any, record: Any, _proxy: Any) -> None:
        since = record.info.get("ledbelly_idle_since")
        if since is None or time.monotonic() - since < PING_AFTER_IDLE:
            return  # new, or used moments ago
        try:
            dialect.do_ping(dbapi_conn)
        except dialect.loaded_dbapi.Error as exc:
            if dialect.is_disconnect(exc, dbapi_conn, None):
                raise DisconnectionError(str(exc)) from exc
            raise


def _create_owner_only(database: str | None) -> None:
    """A new SQLite file is created 0600 (its -wal and -shm files take its mode)."""
    if not database or database == ":memory:" or database.startswith("file:"):
        return
    try:
        os.close(os.open(database, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except FileExistsError:
        pass
    except OSError:
        return  # a directory that does not exist: SQLite says so when it connects


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    """WAL, and ``synchronous=FULL``: the WAL is on disk when a commit returns, so a
    message acknowledged after its commit cannot be lost to a power cut (NORMAL may lose
    the last commits, whose messages SQS has already deleted)."""
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=FULL")
    cur.close()


def _sqlite_pragmas_fast(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.close()
