"""The fastest correct way to put a batch of rows into each database.

PostgreSQL (psycopg2) gets ``COPY ... FROM STDIN`` inside the batch's transaction, about
twice as fast as multi-row INSERTs. Elsewhere SQLAlchemy's executemany is already the
bulk path: mysqlclient rewrites it into multi-row INSERTs, pyodbc gets
``fast_executemany`` (set on the engine), Oracle gets array binds, SQLite one prepared
statement.
"""

from __future__ import annotations

import io
import operator
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from operator import itemgetter
from typing import Any

from sqlalchemy import Connection, DateTime, Table, insert

from ledbelly import kernels

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


def copy_text(
    rows: list[dict[str, Any]], columns: list[str], times: frozenset[str] = frozenset()
) -> str:
    """Rows as COPY text, one line each, columns in the given order.

    ``times`` names the columns that hold datetimes, written with ``isoformat``.
    """
    text = copy_payload(rows, columns, times, utf8=False)
    assert isinstance(text, str)
    return text


def copy_payload(
    rows: list[dict[str, Any]], columns: list[str], times: frozenset[str], utf8: bool = True
) -> str | bytes:
    """``copy_text``, or with the compiled kernel and ``utf8`` its UTF-8 bytes: what
    psycopg2 sends, without making a string first and encoding it after."""
    if _KERNEL is not None:
        payload = _kernel_render(rows, tuple(columns), times, utf8)
        assert payload is not None  # only a check of the rows' columns gives None
        return payload
    render = _renderer(tuple(columns), times)
    return "".join([render(row) for row in rows])


def _kernel_render(
    rows: list[dict[str, Any]],
    columns: tuple[str, ...],
    times: frozenset[str],
    utf8: bool,
    exact: bool = False,
) -> str | bytes | None:
    """The compiled renderer; with ``exact`` it checks each row has exactly ``columns``
    (in that order) and gives None at the first that does not."""
    assert _KERNEL is not None
    is_time = tuple(c in times for c in columns)
    return _KERNEL.render_rows(  # type: ignore[no-any-return]
        rows, columns, is_time, copy_line_slow, utf8, exact
    )


def copy_line_slow(values: tuple[Any, ...]) -> str:
    """One line with every value escaped on its own: for lines whose values need it."""
    return "\t".join([copy_field(v) for v in values]) + "\n"


class _IsoTimes(dict[datetime, str]):
    """``isoformat()`` of the naive datetimes COPY writes, remembered.

    An event's time and local time go into its own table and into live_stream, and the
    events of one millisecond share ``processed_at``, so most times are written more
    than once; a look-up costs a tenth of ``isoformat()``. Only naive ``datetime``s are
    kept (the renderer asks only for exact ``datetime``s): aware ones equal across zones
    would share a text that is not theirs.
    """

    def __missing__(self, value: datetime) -> str:
        text = value.isoformat()
        if value.tzinfo is None:
            if len(self) >= 50_000:
                self.clear()
            self[value] = text
        return text


_KERNEL = kernels.load("copy")

Renderer = Callable[[dict[str, Any]], str]
_RENDERERS: dict[tuple[tuple[str, ...], frozenset[str]], Renderer] = {}
_ISO = _IsoTimes()


def _renderer(columns: tuple[str, ...], times: frozenset[str]) -> Renderer:
    """A row's COPY line as one f-string, generated once per column list.

    ``str()`` of an int, a float or a bool is valid COPY input for its column type, and
    times are written with ``isoformat()`` (remembered, ``_IsoTimes``). Instead of
    searching every string for what COPY must escape, the finished line is checked once:
    one tab per separator, one backslash per NULL (``\\N``), one newline and no carriage
    return means nothing needed escaping. Any other line is rebuilt value by value
    (``copy_line_slow``).
    """
    key = (columns, times)
    render = _RENDERERS.get(key)
    if render is None:
        if len(_RENDERERS) > 4096:
            _RENDERERS.clear()
        names = [f"v{i}" for i in range(len(columns))]
        fields = "\\t".join(
            f"{{N if {n} is None else ISO[{n}] if {n}.__class__ is DT else {n}.isoformat()}}"
            if c in times
            else f"{{N if {n} is None else {n}}}"
            for n, c in zip(names, columns, strict=True)
        )
        src = "\n".join(
            [
                "def render(row):",
                "    values = get(row)" if len(names) > 1 else "    values = (get(row),)",
                f"    {', '.join(names)}, = values",
                f"    line = f'{fields}\\n'",
                f"    if line.count(TAB) != {len(columns) - 1} or CR in line \\",
                "            or line.count(BS) != values.count(None) or line.count(LF) != 1:",
                "        return slow(values)",
                "    return line",
            ]
        )
        env: dict[str, Any] = {
            "get": itemgetter(*columns),
            "N": "\\N",
            "TAB": "\t",
            "BS": "\\",
            "CR": "\r",
            "LF": "\n",
            "slow": copy_line_slow,
            "ISO": _ISO,
            "DT": datetime,
        }
        exec(src, env)  # built from positional names only, never from data
        render = _RENDERERS[key] = env["render"]
    return render


def time_columns(table: Table, columns: tuple[str, ...]) -> frozenset[str]:
    """Which of ``columns`` (keys) the table declares as datetimes."""
    return frozenset(c for c in columns if c in table.c and isinstance(table.c[c].type, DateTime))


@dataclass(frozen=True, slots=True)
class _Statements:
    """What a table and a column list need, built once: the COPY statement, the head and
    row placeholders of ``INSERT ... VALUES``, and which columns are datetimes."""

    copy: str
    insert_head: str
    row_slots: str
    times: frozenset[str]


# Per Table object, dropped with it: a table rebuilt after evolution gets its own entry.
_STATEMENTS: weakref.WeakKeyDictionary[Table, dict[tuple[str, ...], _Statements]] = (
    weakref.WeakKeyDictionary()
)


def _statements(conn: Connection, table: Table, columns: tuple[str, ...]) -> _Statements:
    by_columns = _STATEMENTS.setdefault(table, {})
    found = by_columns.get(columns)
    if found is None:
        prep = conn.dialect.identifier_preparer
        names = ", ".join(prep.quote(table.c[c].name if c in table.c else c) for c in columns)
        found = by_columns[columns] = _Statements(
            copy=f"COPY {prep.format_table(table)} ({names}) FROM STDIN",
            insert_head=f"INSERT INTO {prep.format_table(table)} ({names}) VALUES ",
            row_slots="(" + ", ".join(["%s"] * len(columns)) + ")",
            times=time_columns(table, columns),
        )
    return found


@contextmanager
def _raw_cursor(conn: Connection) -> Iterator[Any]:
    """A DBAPI cursor on the connection's own transaction, closed after use."""
    raw = conn.connection.dbapi_connection
    assert raw is not None
    cur: Any = raw.cursor()
    try:
        yield cur
    finally:
        cur.close()


def by_columns(rows: list[dict[str, Any]]) -> list[tuple[tuple[str, ...], list[dict[str, Any]]]]:
    """Rows grouped by the columns they fill, first-seen order kept.

    One batch's rows of a table usually share their keys, but not always: schema
    evolution can add a column between two messages of a batch. Each group is one
    statement, so no row loses a value to another row's column list.
    """
    first = tuple(rows[0])
    if all(tuple(r) == first for r in rows):
        return [(first, rows)]
    groups: dict[frozenset[str], tuple[tuple[str, ...], list[dict[str, Any]]]] = {}
    for r in rows:  # the same columns in another order are the same statement
        groups.setdefault(frozenset(r), (tuple(r), []))[1].append(r)
    return list(groups.values())


def copy_rows(conn: Connection, table: Table, rows: list[dict[str, Any]]) -> None:
    """``COPY table (columns) FROM STDIN`` through the connection's own transaction."""
    with _raw_cursor(conn) as cur:
        for columns, group in by_columns(rows):
            st = _statements(conn, table, columns)
            _send(cur, st.copy, copy_payload(group, list(columns), st.times))


@dataclass(frozen=True, slots=True)
class RenderedRows:
    """A table's rows as COPY text, rendered before the write in the thread that made
    them, so that the writer's thread only sends it. Used only for exactly these row
    objects of exactly this table; any other set of rows is rendered when written."""

    table: Table
    rows: list[dict[str, Any]]
    columns: tuple[str, ...]
    text: str | bytes

    def matches(self, table: Table, rows: list[dict[str, Any]]) -> bool:
        return (
            self.table is table
            and len(rows) == len(self.rows)
            and all(map(operator.is_, rows, self.rows))
        )


def render_ahead(table: Table, rows: list[dict[str, Any]]) -> RenderedRows | None:
    """``rows`` as COPY text now, or None if they do not share one column list."""
    if not rows:
        return None
    if _KERNEL is not None:  # checks the rows' columns as it renders them
        columns = tuple(rows[0])
        payload = _kernel_render(rows, columns, time_columns(table, columns), True, exact=True)
        return None if payload is None else RenderedRows(table, rows, columns, payload)
    groups = by_columns(rows)
    if len(groups) != 1:
        return None
    columns = groups[0][0]
    text = copy_payload(rows, list(columns), time_columns(table, columns))
    return RenderedRows(table, rows, columns, text)


def copy_rendered(conn: Connection, rendered: RenderedRows) -> None:
    """``COPY`` of text ``render_ahead`` made, through the connection's own transaction."""
    with _raw_cursor(conn) as cur:
        _send(cur, _statements(conn, rendered.table, rendered.columns).copy, rendered.text)


def _send(cur: Any, sql: str, payload: str | bytes) -> None:
    """COPY ``payload`` in one read: psycopg2 reads its file 8 KB at a time by default,
    and takes the interpreter lock for each read, which a thread parsing meanwhile holds
    for up to 5 ms at a time (a batch of 2.4 MB waited up to 1.5 s for it). UTF-8 bytes
    go as they are where the connection speaks UTF-8, else as text it encodes."""
    size = max(len(payload), 8192)
    if isinstance(payload, str):
        cur.copy_expert(sql, io.StringIO(payload), size=size)
    elif cur.connection.encoding in _UTF8_NAMES:
        cur.copy_expert(sql, io.BytesIO(payload), size=size)
    else:
        cur.copy_expert(sql, io.StringIO(payload.decode("utf-8")), size=size)


_UTF8_NAMES = frozenset(["UTF8", "UNICODE", "UTF-8"])


# A table with fewer rows than this in a batch goes by INSERT ... VALUES, all such tables
# in one statement: a COPY costs two round trips, and a small batch of mixed events
# (the HTTPS intake's, a quiet queue's) touches about nine tables.
SMALL_TABLE_ROWS = 64


def insert_values(conn: Connection, table: Table, rows: list[dict[str, Any]]) -> list[bytes]:
    """``INSERT ... VALUES`` statements for ``rows``, every value quoted by psycopg2
    (``mogrify``, the driver's own escaping, one call per statement); to be sent
    together by ``send_together``."""
    statements = []
    with _raw_cursor(conn) as cur:
        codec = _python_codec(cur.connection.encoding)
        for columns, group in by_columns(rows):
            st = _statements(conn, table, columns)
            slots = ", ".join([st.row_slots] * len(group))
            values = cur.mogrify(slots, [row[c] for row in group for c in columns])
            statements.append(st.insert_head.encode(codec) + values)
    return statements


def _python_codec(pg_encoding: str) -> str:
    """The Python codec for a PostgreSQL client encoding (psycopg2's own table)."""
    import psycopg2.extensions

    return str(psycopg2.extensions.encodings.get(pg_encoding, "utf-8"))


def send_together(conn: Connection, statements: list[bytes]) -> None:
    """Several statements in one round trip, inside the connection's transaction."""
    if not statements:
        return
    with _raw_cursor(conn) as cur:
        cur.execute(b";\n".join(statements))


def executemany(conn: Connection, table: Table, rows: list[dict[str, Any]]) -> None:
    for _, group in by_columns(rows):
        conn.execute(insert(table), group)


Inserter = Callable[[Connection, Table, list[dict[str, Any]]], None]


def inserter_for(conn_dialect: str, driver: str) -> Inserter:
    """The bulk path for a dialect and driver."""
    if conn_dialect == "postgresql" and driver == "psycopg2":
        return copy_rows
    return executemany
