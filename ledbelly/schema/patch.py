"""Schema patches: ``schema suggest`` writes one from what ledbelly saw, ``schema apply``
merges it into ``schemas/``.

The evidence is the overlay written by automatic evolution, ``log/ddl-undefined.log``,
``log/sql-truncations.log`` and the stored unknown events. This replaces LEDbelly's
``reduce_logs`` task: a person reviews the patch instead of grepping logs.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy import Engine, MetaData, inspect, select

from ledbelly.db.tables import UNKNOWN as UNKNOWN_TABLE
from ledbelly.db.tables import build_system_tables
from ledbelly.errors import ConfigError, LedbellyError, SchemaError
from ledbelly.ops.logs import TRUNCATIONS, UNDEFINED
from ledbelly.schema.infer import add_fields, flatten_body, infer_table, is_wider, widen_column
from ledbelly.schema.model import (
    TABLE_PREFIX,
    Catalog,
    ColumnDef,
    TableDef,
    column_spec_yaml,
    read_comments,
    resolved_source,
    table_from_dict,
    table_name_for,
    table_to_yaml,
)

_TRUNCATION = re.compile(
    r"^\S+ (?P<table>[A-Za-z0-9_]+)\.(?P<column>[A-Za-z0-9_]+) supplied "
    r"(?P<supplied>\d+), expecting (?P<expecting>\d+)"
)


# ----- overlay files -----------------------------------------------------------------------


def write_table_file(table: TableDef, directory: Path, description: str | None = None) -> Path:
    """Write a table as ``<directory>/<format>/<table>.yml``, keeping an old file's comments."""
    path = directory / table.format / f"{table.name}.yml"
    old_description, notes = read_comments(table.path or path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(table_to_yaml(table, description or old_description, notes), encoding="utf-8")
    return path


# ----- suggesting a schema patch -----------------------------------------------------------

PATCH_VERSION = 1
_UNKNOWN_SAMPLES = 200  # stored bodies read per unknown event type


@dataclass
class TablePatch:
    """Changes to one table: new columns, widened columns, or the whole new table."""

    add: list[ColumnDef] = field(default_factory=list)
    widen: list[ColumnDef] = field(default_factory=list)
    create: TableDef | None = None
    notes: dict[str, str] = field(default_factory=dict)


@dataclass
class Patch:
    """A reviewable change to ``schemas/``, as ``schema suggest`` writes it."""

    tables: dict[str, TablePatch] = field(default_factory=dict)
    sources: list[str] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.tables)

    def render(self) -> str:
        """YAML with the evidence for each change as comments."""
        lines = [
            "# ledbelly schema patch: review it, then run 'ledbelly schema apply <file>'",
            f"# from: {', '.join(self.sources) or 'nothing'}",
            f"ledbelly_schema_patch: {PATCH_VERSION}",
            "tables:" + ("" if self else " {}"),
        ]
        for name, tp in self.tables.items():
            lines.append(f"  {name}:")
            if tp.create is not None:
                lines += _render_create(tp.create, tp.notes)
            for key, cols in (("add_columns", tp.add), ("widen_columns", tp.widen)):
                if cols:
                    lines.append(f"    {key}:")
                    lines += [
                        f"      {c.name}: {column_spec_yaml(c)}{_note(tp.notes, c.name)}"
                        for c in cols
                    ]
        return "\n".join(lines) + "\n"

    @classmethod
    def load(cls, path: Path) -> Patch:
        """Read a patch file back (the inverse of ``render``)."""
        try:
            doc = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError) as exc:
            raise ConfigError(f"cannot read patch {path}: {exc}") from None
        if not isinstance(doc, dict) or not isinstance(doc.get("tables"), dict):
            raise SchemaError(f"{path}: not a ledbelly schema patch (no 'tables' mapping)")
        patch = cls(sources=[str(path)])
        for name, spec in doc["tables"].items():
            patch.tables[str(name)] = _load_table_patch(str(name), spec or {}, path)
        return patch


def _note(notes: dict[str, str], name: str) -> str:
    text = notes.get(name, "").replace("\n", " ")
    return f"  # {text}" if text else ""


def _render_create(table: TableDef, notes: dict[str, str]) -> list[str]:
    body = table_to_yaml(table).splitlines()
    out = [f"    create:{_note(notes, '')}"]
    for line in body:
        name = line.strip().split(":", 1)[0]
        out.append("      " + line + (_note(notes, name) if line.startswith("  ") else ""))
    return out


def _load_table_patch(name: str, spec: Any, path: Path) -> TablePatch:
    if not isinstance(spec, dict):
        raise SchemaError(f"{path}: {name}: expected add_columns, widen_columns or create")
    tp = TablePatch()
    if "create" in spec:
        tp.create = table_from_dict({"table": name, **spec["create"]}, path)
    for key, target in (("add_columns", tp.add), ("widen_columns", tp.widen)):
        cols = spec.get(key) or {}
        if cols:
            doc = {"table": name, "columns": cols}
            target.extend(table_from_dict(doc, path).columns)
    return tp


def suggest(
    schema_dir: Path | None,
    log_dir: Path,
    engine: Engine | None = None,
    overlay: Path | None = None,
) -> Patch:
    """A patch from what ledbelly saw: overlay tables, undefined fields, truncations, unknowns.

    New columns get types inferred from their samples; truncated strings get the longest
    value seen plus headroom; unknown event types get tables inferred from stored bodies.
    """
    base = Catalog.load(schema_dir)
    wanted = Catalog.load(schema_dir, overlay)
    patch = Patch(sources=[])
    if overlay is not None and overlay.is_dir():
        patch.sources.append(str(overlay))
    desired = dict(wanted.tables)
    notes: dict[str, dict[str, str]] = {}
    _from_undefined(log_dir, desired, notes, patch)
    _from_truncations(log_dir, desired, notes, patch)
    if engine is not None:
        _from_unknown_events(engine, wanted, desired, notes, patch)
    for name, table in desired.items():
        tp = _diff_tables(base.tables.get(name), table)
        if tp is not None:
            tp.notes = notes.get(name, {})
            patch.tables[name] = tp
    return patch


def _diff_tables(old: TableDef | None, new: TableDef) -> TablePatch | None:
    if old is None:
        return TablePatch(create=new)
    tp = TablePatch()
    for col in new.columns:
        was = old.column(col.name)
        if was is None:
            tp.add.append(col)
        elif is_wider(col, was):
            tp.widen.append(col)
    return tp if tp.add or tp.widen else None


def _log_lines(log_dir: Path, name: str) -> list[str]:
    """Lines of a log and its rotated copies, oldest first."""
    paths = sorted(
        log_dir.glob(name + ".*"), key=lambda p: -int(p.suffix[1:]) if p.suffix[1:].isdigit() else 0
    )
    lines: list[str] = []
    for p in [*paths, log_dir / name]:
        if p.is_file():
            lines += p.read_text(encoding="utf-8", errors="replace").splitlines()
    return lines


def _from_undefined(
    log_dir: Path, desired: dict[str, TableDef], notes: dict[str, dict[str, str]], patch: Patch
) -> None:
    samples: dict[str, dict[str, list[Any]]] = {}
    for line in _log_lines(log_dir, UNDEFINED):
        try:
            entry = json.loads(line)
            table, key = str(entry["table"]), str(entry["field"]).split(" ", 1)[0]
        except (ValueError, KeyError, TypeError):
            continue
        if table in desired:
            samples.setdefault(table, {}).setdefault(key, []).append(_sample(entry.get("sample")))
    for table, fields in samples.items():
        new, added = add_fields(desired[table], fields)
        desired[table] = new
        for name in added:
            col = new.column(name)
            key = resolved_source(new, col) if col else name
            shown = ", ".join(_short(v) for v in fields[key][:3])
            notes.setdefault(table, {})[name] = f"{len(fields[key])} seen, e.g. {shown}"
    if samples:
        patch.sources.append(str(log_dir / UNDEFINED))


def _sample(text: Any) -> Any:
    """A logged sample back as its value; a cut-off one stays long text."""
    if not isinstance(text, str):
        return text
    try:
        return json.loads(text)
    except ValueError:
        return text


def _short(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= 40 else text[:37] + "..."


def _from_truncations(
    log_dir: Path, desired: dict[str, TableDef], notes: dict[str, dict[str, str]], patch: Patch
) -> None:
    longest: dict[tuple[str, str], tuple[int, int]] = {}
    for line in _log_lines(log_dir, TRUNCATIONS):
        m = _TRUNCATION.match(line)
        if m:
            key = (m["table"], m["column"])
            was = longest.get(key, (0, 0))
            longest[key] = (max(was[0], int(m["supplied"])), int(m["expecting"]))
    for (table, column), (supplied, expecting) in longest.items():
        if table not in desired:
            continue
        new = widen_column(desired[table], column, supplied)
        if new is not None:
            desired[table] = new
            notes.setdefault(table, {})[column] = f"values up to {supplied} were cut to {expecting}"
    if longest:
        patch.sources.append(str(log_dir / TRUNCATIONS))


def _from_unknown_events(
    engine: Engine,
    catalog: Catalog,
    desired: dict[str, TableDef],
    notes: dict[str, dict[str, str]],
    patch: Patch,
) -> None:
    flats: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for event_name, body in _unknown_bodies(engine):
        try:
            fmt, name, flat = flatten_body(body, event_name)
        except LedbellyError:
            continue
        if (
            fmt in TABLE_PREFIX
            and catalog.route(fmt, name) is None
            and table_name_for(fmt, name) not in desired
        ):
            group = flats.setdefault((fmt, name), [])
            if len(group) < _UNKNOWN_SAMPLES:
                group.append(flat)
    for (fmt, name), group in flats.items():
        table = infer_table(catalog, fmt, name, group)
        desired[table.name] = table
        notes.setdefault(table.name, {})[""] = f"from {len(group)} stored {fmt} events {name}"
    patch.sources.append(UNKNOWN_TABLE)


def _unknown_bodies(engine: Engine) -> list[tuple[str | None, str]]:
    unknown = build_system_tables(MetaData())[UNKNOWN_TABLE]
    with engine.connect() as conn:
        if not inspect(conn).has_table(UNKNOWN_TABLE):
            return []
        rows = conn.execute(
            select(unknown.c.event_name, unknown.c.raw_body).order_by(unknown.c.id.desc())
        )
        return [(r.event_name, r.raw_body) for r in rows if r.raw_body]


# ----- applying a patch to schemas/ --------------------------------------------------------


def apply_patch(patch: Patch, schema_dir: Path) -> list[Path]:
    """Merge a patch into ``schema_dir``: new files, new columns, wider columns; never narrower.

    Returns the files written. A column already there with the same or a wider type is
    left as it is, so applying a patch twice changes nothing.
    """
    catalog = Catalog.load(schema_dir)
    written: list[Path] = []
    for name, tp in patch.tables.items():
        table = catalog.tables.get(name)
        changes = list(tp.add) + list(tp.widen)
        if table is None:
            if tp.create is None:
                raise SchemaError(f"the patch changes {name}, which is not in {schema_dir}")
            table = replace(tp.create, columns=tp.create.columns[:1])
            changes = list(tp.create.columns[1:]) + changes
        merged = _merge(table, changes)
        if merged != table or table.path is None:
            written.append(write_table_file(merged, schema_dir, _description(tp, merged)))
    return written


def _description(tp: TablePatch, table: TableDef) -> str | None:
    if table.path is not None:
        return None
    note = tp.notes.get("", "")
    return f"{table.format} event {table.event}: added from a ledbelly schema patch" + (
        f" ({note})" if note else ""
    )


def _merge(table: TableDef, changes: list[ColumnDef]) -> TableDef:
    columns = list(table.columns)
    for col in changes:
        at = next((i for i, c in enumerate(columns) if c.name == col.name), None)
        if at is None:
            columns.append(col)
        elif is_wider(col, columns[at]):
            columns[at] = replace(
                col, source=columns[at].source or col.source, json=columns[at].json
            )
    return replace(table, columns=tuple(columns))
