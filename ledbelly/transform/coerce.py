"""Coercing payload values to column types, and trimming strings to column sizes.

Pure functions. A coercer returns the value to store or raises ``CoercionFailed``;
the row builder turns that into NULL plus a log line, so the row still lands.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any, Literal

import orjson

from ledbelly import kernels
from ledbelly.schema.model import ColumnDef

BIGINT_MIN, BIGINT_MAX = -(2**63), 2**63 - 1
INT_MIN, INT_MAX = -(2**31), 2**31 - 1
LengthUnit = Literal["chars", "utf16", "bytes"]

_SURROGATES = re.compile("[\ud800-\udfff]")
_INT_TEXT = re.compile(r"^\s*[+-]?[0-9]+\s*$")


_KERNEL = kernels.load("rows")
_ISO_UTC: Callable[[str], datetime | None] | None = None if _KERNEL is None else _KERNEL.iso_utc


class CoercionFailed(ValueError):
    """The value cannot be stored in the column's type."""


Coercer = Callable[[Any], Any]


def _integer(lo: int, hi: int) -> Coercer:
    def coerce(value: Any) -> int | None:
        t = type(value)
        n: int
        if t is int:
            n = int(value)
        elif t is str:
            if not value:
                return None  # Canvas sends "" for an id it cleared (custom grade status)
            if not _INT_TEXT.match(value):
                raise CoercionFailed(f"not an integer: {value[:80]!r}")
            n = int(value)
        elif t is float:
            if not value.is_integer():
                raise CoercionFailed(f"not an integer: {value!r}")
            n = int(value)
        elif t is bool:
            n = int(value)
        else:
            raise CoercionFailed(f"not an integer: {type(value).__name__}")
        if n < lo or n > hi:
            raise CoercionFailed(f"out of range for the column: {n}")
        return n

    return coerce


to_bigint = _integer(BIGINT_MIN, BIGINT_MAX)
to_int = _integer(INT_MIN, INT_MAX)


def to_float(value: Any) -> float:
    if type(value) is bool:
        return float(value)
    try:
        f = float(value)
    except (TypeError, ValueError, OverflowError):
        raise CoercionFailed(f"not a number: {str(value)[:80]!r}") from None
    if not math.isfinite(f):
        raise CoercionFailed(f"not a finite number: {value!r}")
    return f


_TRUE = frozenset(["true", "t", "1", "yes", "y"])
_FALSE = frozenset(["false", "f", "0", "no", "n"])


def to_boolean(value: Any) -> bool:
    if type(value) is bool:
        return value
    if type(value) is int and value in (0, 1):
        return bool(value)
    if type(value) is str:
        low = value.strip().lower()
        if low in _TRUE:
            return True
        if low in _FALSE:
            return False
    raise CoercionFailed(f"not a boolean: {str(value)[:80]!r}")


def to_datetime(value: Any) -> datetime:
    """An ISO 8601 time as a naive UTC datetime, milliseconds kept."""
    if type(value) is not str:
        raise CoercionFailed(f"not an ISO 8601 time: {type(value).__name__}")
    if _ISO_UTC is not None:  # Canvas's own form, read in C
        found: datetime | None = _ISO_UTC(value)
        if found is not None:
            return found
    return _parse_time(value)


@lru_cache(maxsize=16384)
def _parse_time(value: str) -> datetime:
    """Cached: one event's time is read for its table, for live_stream and for routing."""
    if value[-1:] == "Z":  # Canvas's own form: already UTC, no conversion to do
        try:
            dt = datetime.fromisoformat(value[:-1])
            if dt.tzinfo is None:
                return dt
        except ValueError:
            pass  # the general path below says what is wrong with it
    try:
        dt = datetime.fromisoformat(value)
    except ValueError:
        raise CoercionFailed(f"not an ISO 8601 time: {value[:80]!r}") from None
    if dt.tzinfo is not None:
        try:
            dt = dt.astimezone(UTC).replace(tzinfo=None)
        except OverflowError:  # 0001-01-01T00:30+01:00 is before year 1 in UTC
            raise CoercionFailed(f"out of range as a UTC time: {value[:80]!r}") from None
    return dt


def text_of(value: Any) -> str:
    """Any JSON value as the text LEDbelly stored: objects and lists as JSON."""
    t = type(value)
    if t is str:
        return clean_text(value)
    if t is bool:
        return "true" if value else "false"
    if t is int or t is float:
        return str(value)
    return clean_text(json_text(value))


def json_text(value: Any) -> str:
    """Compact JSON; falls back to the stdlib for what orjson refuses (huge ints, surrogates)."""
    try:
        return orjson.dumps(value).decode("utf-8")
    except (TypeError, orjson.JSONEncodeError):
        return json.dumps(value, ensure_ascii=False, default=str)


def clean_text(s: str) -> str:
    """Make a string storable everywhere: no NUL characters, no lone surrogates."""
    if s.isascii():
        return s.replace("\x00", "") if "\x00" in s else s
    if "\x00" in s:
        s = s.replace("\x00", "")
    try:
        s.encode("utf-8")
    except UnicodeEncodeError:
        s = _SURROGATES.sub("\ufffd", s)
    return s


def stored_length(s: str, unit: LengthUnit) -> int:
    """How long the database counts ``s`` to be."""
    if unit == "chars" or s.isascii():
        return len(s)
    if unit == "utf16":
        return len(s.encode("utf-16-le")) // 2
    return len(s.encode("utf-8"))


def trim(s: str, size: int, unit: LengthUnit) -> str:
    """Cut ``s`` to ``size`` units of ``unit`` without splitting a character."""
    if unit == "chars" or s.isascii():
        return s[:size]
    if unit == "bytes":
        return s.encode("utf-8")[:size].decode("utf-8", "ignore")
    out = s.encode("utf-16-le")[: size * 2]
    return out.decode("utf-16-le", "ignore")


def fits(s: str, size: int, unit: LengthUnit) -> bool:
    n = len(s)
    if n > size:
        return False
    if unit == "chars":
        return True
    if unit == "utf16":
        return n * 2 <= size or stored_length(s, unit) <= size
    return n * 4 <= size or stored_length(s, unit) <= size


COERCERS: dict[str, Coercer] = {
    "bigint": to_bigint,
    "int": to_int,
    "float": to_float,
    "boolean": to_boolean,
    "datetime": to_datetime,
    "string": text_of,
    "text": text_of,
}


_CANVAS_URN = "urn:instructure:canvas:"


def canvas_id_of_urn(value: Any) -> int | None:
    """The Canvas id at the end of a Canvas URN (``urn:instructure:canvas:user:2107…01``).

    Anything else, another vendor's URN or a URL, has no Canvas id: NULL, not an error.
    """
    if type(value) is not str or not value.startswith(_CANVAS_URN):
        return None
    tail = value.rpartition(":")[2]
    if not tail.isdigit() or not tail.isascii():
        return None
    n = int(tail)
    return n if n <= BIGINT_MAX else None


def coercer_for(column: ColumnDef) -> Coercer:
    if column.urn_id:
        return canvas_id_of_urn
    return COERCERS[column.type]


def length_unit(dialect: str, column: ColumnDef) -> LengthUnit:
    """The unit a dialect counts a string column in, as ledbelly's DDL declares it.

    NVARCHAR on MSSQL counts UTF-16 code units and VARCHAR counts bytes; PostgreSQL,
    MySQL/MariaDB (utf8mb4), Oracle (``VARCHAR2(n CHAR)``) and SQLite count characters.
    """
    if dialect == "mssql":
        return "utf16" if column.multibyte else "bytes"
    return "chars"
