"""YAML table definitions: the single source of truth for every table ledbelly writes.

One file per table under ``schemas/<format>/``. See ``schemas/README.md`` for the format.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from ledbelly.errors import SchemaError
from ledbelly.text import safe_text

ColumnType = Literal["bigint", "int", "float", "boolean", "string", "text", "datetime"]
COLUMN_TYPES: frozenset[str] = frozenset(
    ["bigint", "int", "float", "boolean", "string", "text", "datetime"]
)
FORMATS = ("canvas", "caliper", "custom")
TABLE_PREFIX = {"canvas": "live_", "caliper": "ims_"}
SYSTEM_COLUMNS = frozenset(["processed_at", "event_time_local"])

# LEDbelly's metadata naming: these metadata keys keep their own names as columns ...
METADATA_PLAIN = frozenset(
    [
        "client_ip",
        "context_account_id",
        "context_sis_source_id",
        "event_name",
        "event_time",
        "developer_key_id",
        "hostname",
        "http_method",
        "job_id",
        "job_tag",
        "producer",
        "real_user_id",
        "request_id",
        "root_account_lti_guid",
        "root_account_uuid",
        "session_id",
        "time_zone",
        "referrer",
        "user_account_id",
        "user_agent",
    ]
)
# ... and any other metadata key is stored as ``<key>_meta`` (user_id -> user_id_meta).

# libyaml's safe loader when PyYAML was built with it: loading ~140 schema files 5x faster.
_YAML_LOADER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

_UNSAFE = re.compile(r"[^A-Za-z0-9_]")
_SAFE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def sanitize_name(name: str) -> str:
    """Replace every character outside ``[A-Za-z0-9_]`` with ``_``."""
    return _UNSAFE.sub("_", name)


def table_name_for(fmt: str, event_name: str) -> str:
    """The table an event is routed to: ``live_``/``ims_`` + the sanitized event name."""
    return TABLE_PREFIX[fmt] + sanitize_name(event_name)


@dataclass(frozen=True, slots=True)
class ColumnDef:
    """One column: its SQL type and where its value comes from."""

    name: str
    type: ColumnType
    size: int | None = None
    multibyte: bool = False
    primary_key: bool = False
    source: str | None = None
    json: bool = False
    urn_id: bool = False  # the Canvas id at the end of the URN in ``source``

    @property
    def is_system(self) -> bool:
        """Filled by ledbelly itself, not from the payload."""
        return self.primary_key or self.name in SYSTEM_COLUMNS


@dataclass(frozen=True, slots=True)
class TableDef:
    """One table: its name, the format it is filled from and its columns in order."""

    name: str
    format: str
    columns: tuple[ColumnDef, ...]
    event: str | None = None
    stream: bool = False
    path: Path | None = field(default=None, compare=False)

    @property
    def primary_key(self) -> ColumnDef | None:
        return next((c for c in self.columns if c.primary_key), None)

    def column(self, name: str) -> ColumnDef | None:
        return next((c for c in self.columns if c.name == name), None)

    @property
    def data_columns(self) -> tuple[ColumnDef, ...]:
        """Columns filled from the payload (everything but the key and system times)."""
        return tuple(c for c in self.columns if not c.is_system)


def default_source(fmt: str, column: str) -> str:
    """Where a column's value comes from when its definition names no ``source``."""
    if fmt == "caliper":
        return column
    if column.endswith("_meta"):
        return "metadata." + column[: -len("_meta")]
    if column in METADATA_PLAIN:
        return "metadata." + column
    return "body." + column


def resolved_source(table: TableDef, column: ColumnDef) -> str:
    return column.source or default_source(table.format, column.name)


def _column_from_yaml(table: str, name: str, spec: Any) -> ColumnDef:
    where = f"{table}.{name}"
    if isinstance(spec, str):
        spec = {"type": spec}
    if not isinstance(spec, dict):
        raise SchemaError(f"{where}: expected a mapping like {{type: bigint}}, got {spec!r}")
    unknown = set(spec) - {"type", "size", "multibyte", "primary_key", "source", "json", "urn_id"}
    if unknown:
        raise SchemaError(f"{where}: unknown keys {sorted(unknown)}")
    ctype = spec.get("type")
    if ctype not in COLUMN_TYPES:
        raise SchemaError(f"{where}: type must be one of {sorted(COLUMN_TYPES)}, got {ctype!r}")
    size = spec.get("size")
    if ctype == "string" and not (isinstance(size, int) and size > 0):
        raise SchemaError(f"{where}: a string column needs a positive size (or use type: text)")
    if not _SAFE_NAME.match(name):
        raise SchemaError(f"{where}: column names must match [A-Za-z_][A-Za-z0-9_]*")
    return ColumnDef(
        name=name,
        type=ctype,
        size=size if ctype == "string" else None,
        multibyte=bool(spec.get("multibyte", False)),
        primary_key=bool(spec.get("primary_key", False)),
        source=spec.get("source"),
        json=bool(spec.get("json", False)),
        urn_id=_urn_id(where, ctype, spec),
    )


def _urn_id(where: str, ctype: str, spec: dict[str, Any]) -> bool:
    urn_id = bool(spec.get("urn_id", False))
    if urn_id and (ctype != "bigint" or not spec.get("source")):
        raise SchemaError(f"{where}: urn_id needs type: bigint and the URN column as source")
    return urn_id


def table_from_dict(doc: Any, path: Path | None = None) -> TableDef:
    """Build a ``TableDef`` from one parsed YAML document, checking it as we go."""
    where = str(path) if path else "<schema>"
    if not isinstance(doc, dict) or "table" not in doc or "columns" not in doc:
        raise SchemaError(f"{where}: needs 'table' and 'columns'")
    name = str(doc["table"])
    fmt = str(doc.get("format", "custom"))
    if fmt not in FORMATS:
        raise SchemaError(f"{where}: format must be one of {FORMATS}")
    if not _SAFE_NAME.match(name):
        raise SchemaError(f"{where}: table names must match [A-Za-z_][A-Za-z0-9_]*")
    columns_doc = doc["columns"]
    if not isinstance(columns_doc, dict) or not columns_doc:
        raise SchemaError(f"{where}: 'columns' must be a non-empty mapping")
    columns = tuple(_column_from_yaml(name, str(k), v) for k, v in columns_doc.items())
    event = doc.get("event")
    return TableDef(
        name=name,
        format=fmt,
        columns=columns,
        event=str(event) if event is not None else None,
        stream=bool(doc.get("stream", False)),
        path=path,
    )


def table_to_dict(table: TableDef) -> dict[str, Any]:
    """The YAML form of a table, the inverse of ``table_from_dict``."""
    doc: dict[str, Any] = {"table": table.name, "format": table.format}
    if table.event is not None:
        doc["event"] = table.event
    if table.stream:
        doc["stream"] = True
    cols: dict[str, Any] = {}
    for c in table.columns:
        spec: dict[str, Any] = {"type": c.type}
        if c.size is not None:
            spec["size"] = c.size
        for flag in ("multibyte", "primary_key", "json", "urn_id"):
            if getattr(c, flag):
                spec[flag] = True
        if c.source:
            spec["source"] = c.source
        cols[c.name] = spec
    doc["columns"] = cols
    return doc


def load_table_file(path: Path) -> TableDef:
    try:
        doc = yaml.load(path.read_text(encoding="utf-8"), Loader=_YAML_LOADER)
    except yaml.YAMLError as exc:
        raise SchemaError(f"{path}: invalid YAML: {exc}") from exc
    return table_from_dict(doc, path)


def default_schema_dir() -> Path:
    """``./schemas`` when run from a checkout, else the copy shipped beside the package."""
    here = Path.cwd() / "schemas"
    if here.is_dir():
        return here
    return Path(__file__).resolve().parents[2] / "schemas"  # ledbelly/schema/model.py


class Catalog:
    """Every known table, with event routing by format and event name."""

    def __init__(self, tables: Iterable[TableDef]) -> None:
        self.tables: dict[str, TableDef] = {}
        for t in tables:
            if t.name in self.tables:
                raise SchemaError(f"table {t.name} is defined twice")
            self.tables[t.name] = t
        self.stream_tables = tuple(t for t in self.tables.values() if t.stream)
        # By the event a table declares: evolution may shorten a long event's table name.
        self._by_event = {
            (t.format, t.event): t for t in self.tables.values() if t.event and not t.stream
        }

    @classmethod
    def load(cls, directory: Path | None = None, overlay: Path | None = None) -> Catalog:
        """Load ``schemas/**.yml``, then let an overlay directory add or replace tables."""
        directory = directory or default_schema_dir()
        if not directory.is_dir():
            raise SchemaError(f"schema directory {directory} does not exist")
        tables = {t.name: t for t in _load_dir(directory)}
        if overlay is not None and overlay.is_dir():
            tables.update({t.name: t for t in _load_dir(overlay)})
        return cls(tables.values())

    def put(self, table: TableDef) -> None:
        """Add or replace a table (schema evolution), keeping the routing index in step."""
        self.tables[table.name] = table
        if table.event and not table.stream:
            self._by_event[(table.format, table.event)] = table

    def route(self, fmt: str, event_name: str) -> TableDef | None:
        """The event table for an event, or ``None`` for an unknown event."""
        if fmt not in TABLE_PREFIX:
            return None
        table = self._by_event.get((fmt, event_name)) or self.tables.get(
            table_name_for(fmt, event_name)
        )
        if table is None or table.stream or table.format != fmt:
            return None
        return table

    def by_format(self, fmt: str) -> list[TableDef]:
        if fmt == "all":
            return list(self.tables.values())
        if fmt == "custom":
            return [t for t in self.tables.values() if t.format == "custom" or t.stream]
        return [t for t in self.tables.values() if t.format == fmt and not t.stream]

    def __iter__(self) -> Iterator[TableDef]:
        return iter(self.tables.values())

    def __len__(self) -> int:
        return len(self.tables)


def _load_dir(directory: Path) -> list[TableDef]:
    from ledbelly.schema import cache as schema_cache

    paths = sorted(directory.resolve().rglob("*.yml"))
    return schema_cache.cached(
        paths,
        lambda: [load_table_file(p) for p in paths],
        code=[Path(__file__)],
        encode=lambda tables: [[str(t.path), table_to_dict(t)] for t in tables],
        decode=lambda doc: [table_from_dict(d, Path(p)) for p, d in doc],
    )


def column_spec_yaml(column: ColumnDef) -> str:
    """One column's spec in the flow style of the files in ``schemas/``."""
    spec = table_to_dict(TableDef("t", "custom", (column,)))["columns"][column.name]
    return str(yaml.safe_dump(spec, default_flow_style=True, sort_keys=False, width=10_000)).strip()


def table_to_yaml(
    table: TableDef, description: str | None = None, notes: dict[str, str] | None = None
) -> str:
    """A table as a schema file, laid out like the hand-written ones (one column a line).

    ``notes`` are trailing ``# ...`` comments by column name, so a rewrite keeps them.
    """
    doc = table_to_dict(table)
    notes = notes or {}
    # The event name and the notes may come from a payload: JSON-quoted and escaped, no
    # character of theirs can end the line and start a key (YAML reads JSON scalars).
    lines = [f"# {safe_text(description)}"] if description else []
    for key in ("table", "format", "event", "stream"):
        if key in doc:
            lines.append(f"{key}: {json.dumps(doc[key])}")
    lines.append("columns:")
    for c in table.columns:
        note = f"  # {safe_text(notes[c.name])}" if notes.get(c.name) else ""
        lines.append(f"  {c.name}: {column_spec_yaml(c)}{note}")
    return "\n".join(lines) + "\n"


_COLUMN_NOTE = re.compile(r"^  ([A-Za-z_][A-Za-z0-9_]*): \{.*\}\s+#\s?(.*)$")


def read_comments(path: Path) -> tuple[str | None, dict[str, str]]:
    """A schema file's one-line description and its trailing column comments, to keep them."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError:
        return None, {}
    description = lines[0][1:].strip() if lines and lines[0].startswith("#") else None
    notes = {m[1]: m[2] for m in map(_COLUMN_NOTE.match, lines) if m}
    return description, notes
