"""Guessing schema from data: column types from sample values, names from flat keys.

Pure functions shared by ``schema suggest`` (samples from logs and stored events) and
the opt-in automatic evolution, so both propose the same column for the same field.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from typing import Any

from ledbelly import parsers
from ledbelly.errors import LedbellyError
from ledbelly.schema.model import (
    METADATA_PLAIN,
    SYSTEM_COLUMNS,
    TABLE_PREFIX,
    Catalog,
    ColumnDef,
    TableDef,
    default_source,
    resolved_source,
    sanitize_name,
    table_name_for,
)
from ledbelly.transform.coerce import BIGINT_MAX, BIGINT_MIN

# String sizes a new or widened column gets: the first step at least 1.5 times the
# longest value seen; past the last step the column becomes text.
SIZE_STEPS = (16, 32, 64, 128, 255, 512, 1024, 2000)
# New column names stay under PostgreSQL's 63 and MySQL's 64 characters.
MAX_NAME = 60
CANVAS_TEMPLATE = "live_asset_accessed"
CALIPER_TEMPLATE = "ims_logged_out"

_ISO_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?$")
_INT_TEXT = re.compile(r"^-?\d{1,18}$")
_SAFE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def headroom(length: int) -> int | None:
    """A string size with room to grow for values up to ``length``; ``None`` means text."""
    want = math.ceil(length * 1.5)
    return next((s for s in SIZE_STEPS if s >= want), None)


def infer_column(name: str, samples: Iterable[Any], source: str | None = None) -> ColumnDef:
    """The narrowest safe column for the values seen (never narrower than they need)."""
    values = [v for v in samples if v is not None]
    if not values:
        return ColumnDef(name, "text", source=source)
    if all(type(v) is bool for v in values):
        return ColumnDef(name, "boolean", source=source)
    if all(type(v) is int for v in values):
        fits = all(BIGINT_MIN <= v <= BIGINT_MAX for v in values)
        return ColumnDef(name, "bigint" if fits else "text", source=source)
    if all(type(v) in (int, float) for v in values):
        return ColumnDef(name, "float", source=source)
    if not all(type(v) is str for v in values):
        return ColumnDef(name, "text", source=source)
    if all(_ISO_TIME.match(v) for v in values):
        return ColumnDef(name, "datetime", source=source)
    if name.endswith("id") and all(_INT_TEXT.match(v) for v in values):
        return ColumnDef(name, "bigint", source=source)
    return string_column(
        name, max(len(v) for v in values), any(not v.isascii() for v in values), source
    )


def string_column(
    name: str, length: int, multibyte: bool = False, source: str | None = None
) -> ColumnDef:
    """A string column for values up to ``length`` (with headroom), or text past 2000."""
    size = headroom(max(length, 1))
    if size is None:
        return ColumnDef(name, "text", multibyte=multibyte, source=source)
    return ColumnDef(name, "string", size=size, multibyte=multibyte, source=source)


_WIDENINGS = frozenset(
    [("int", "bigint"), ("int", "float"), ("bigint", "float"), ("string", "text")]
)


def is_wider(new: ColumnDef, old: ColumnDef) -> bool:
    """Whether ``new`` holds everything ``old`` holds and more (never a narrowing)."""
    if new.multibyte < old.multibyte:
        return False
    if new.type == old.type:
        longer = new.type == "string" and (new.size or 0) > (old.size or 0)
        return longer or new.multibyte > old.multibyte
    return (old.type, new.type) in _WIDENINGS


def column_name(table: TableDef, key: str, taken: set[str]) -> tuple[str, str | None]:
    """A new column's name for a flat key, and its ``source`` when the default will not do."""
    pk = table.primary_key.name if table.primary_key else ""
    if table.format == "canvas" and key.startswith("metadata."):
        bare = key[len("metadata.") :]
        base = bare if bare in METADATA_PLAIN else bare + "_meta"
    elif table.format == "canvas" and key.startswith("body."):
        base = key[len("body.") :]
        if (
            base in METADATA_PLAIN
            or base.endswith("_meta")
            or base in taken
            or base in SYSTEM_COLUMNS
            or base == pk
        ):
            base += "_body"
    else:
        base = sanitize_name(key).lower().strip("_") or "field"
    if not _SAFE.match(base):
        base = "f_" + base
    if len(base) > MAX_NAME:
        from ledbelly.db.ddl import oracle_name

        base = oracle_name(base, MAX_NAME)
    name = base
    n = 2
    while name in taken or name in SYSTEM_COLUMNS or name == pk:
        name = f"{base}_{n}"
        n += 1
    default = default_source(table.format, name) if table.format != "custom" else name
    return name, None if default == key else key


def add_fields(table: TableDef, fields: Mapping[str, Sequence[Any]]) -> tuple[TableDef, list[str]]:
    """``table`` with a new column for each flat key it has no column for yet."""
    consumed = {resolved_source(table, c) for c in table.columns if not c.is_system}
    taken = {c.name for c in table.columns}
    added: list[ColumnDef] = []
    for key in sorted(fields):
        if key in consumed:
            continue
        name, source = column_name(table, key, taken)
        taken.add(name)
        consumed.add(key)
        added.append(infer_column(name, fields[key], source))
    new = replace(table, columns=table.columns + tuple(added))
    return new, [c.name for c in added]


def widen_column(table: TableDef, column: str, needed: int) -> TableDef | None:
    """``table`` with ``column`` sized for ``needed`` characters (with headroom), or ``None``."""
    old = table.column(column)
    if old is None or old.type != "string":
        return None
    new = string_column(old.name, needed, old.multibyte, old.source)
    new = replace(new, json=old.json)
    if not is_wider(new, old):
        return None
    return replace(table, columns=tuple(new if c.name == column else c for c in table.columns))


def _template_columns(catalog: Catalog, fmt: str) -> tuple[ColumnDef, ...]:
    """The columns every table of a format shares: Canvas metadata, or Caliper's common ones."""
    name = CANVAS_TEMPLATE if fmt == "canvas" else CALIPER_TEMPLATE
    template = catalog.tables.get(name) or next(
        (t for t in catalog if t.format == fmt and not t.stream), None
    )
    if template is None:
        return ()
    if fmt == "caliper":
        return template.data_columns
    return tuple(
        c for c in template.data_columns if resolved_source(template, c).startswith("metadata.")
    )


def infer_table(
    catalog: Catalog, fmt: str, event_name: str, flats: Sequence[dict[str, Any]]
) -> TableDef:
    """A new event table from flattened samples: key, times, the shared columns, the rest."""
    if fmt not in TABLE_PREFIX:
        raise LedbellyError(f"cannot make a table for format {fmt!r}")
    from ledbelly.db.ddl import oracle_name

    # Capped with a stable hash, as columns are: PostgreSQL would cut two long event
    # names to one table at 63 characters, and MySQL refuses names past 64.
    name = oracle_name(table_name_for(fmt, event_name), MAX_NAME)
    bare = name[len(TABLE_PREFIX[fmt]) :]
    head = (
        ColumnDef(oracle_name(f"{bare}_id", MAX_NAME), "bigint", primary_key=True),
        ColumnDef("processed_at", "datetime"),
        ColumnDef("event_time_local", "datetime"),
    )
    table = TableDef(name, fmt, head + _template_columns(catalog, fmt), event=event_name)
    samples: dict[str, list[Any]] = {}
    for flat in flats:
        for key, value in flat.items():
            samples.setdefault(key, []).append(value)
    metadata = {k: v for k, v in samples.items() if k.startswith("metadata.")}
    table, _ = add_fields(table, metadata)
    table, _ = add_fields(table, {k: v for k, v in samples.items() if k not in metadata})
    return table


def flatten_body(raw_body: str, event_name: str | None) -> tuple[str, str, dict[str, Any]]:
    """(format, event name, flat keys) of a stored message body, as the processor sees it."""
    payload = parsers.decode(raw_body)
    env = parsers.open_envelope(payload, {"event_name": event_name} if event_name else {})
    return env.format, env.event_name, parsers.flatten(env, frozenset())
