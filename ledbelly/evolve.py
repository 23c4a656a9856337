"""Bringing a database up to ``schemas/``, and ``schemas/`` up to the events seen.

``plan_alter`` compares the schemas with the live database (reflection) and lists the
statements that add what is missing: tables, columns, wider strings and numbers. It
never drops or narrows. ``Evolver`` does the same at run time, opt-in, one change at a
time, and writes each change to an overlay file for review.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import yaml
from sqlalchemy import Column, Engine, MetaData, Table, delete, inspect, select
from sqlalchemy import exc as sa_exc
from sqlalchemy import types as sqltypes
from sqlalchemy.engine import Dialect
from sqlalchemy.schema import CreateColumn

from ledbelly import parsers
from ledbelly.ddl import DdlOptions, build_tables, create_statements, run_statements, terminate
from ledbelly.errors import ConfigError, LedbellyError, SchemaError
from ledbelly.infer import add_fields, flatten_body, infer_table, is_wider, widen_column
from ledbelly.logs import TRUNCATIONS, UNDEFINED, EventLogs
from ledbelly.message import Message
from ledbelly.processor import INSERTED, Processor
from ledbelly.schema import (
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
from ledbelly.sink import Sink
from ledbelly.tables import LEDGER, build_system_tables
from ledbelly.tables import UNKNOWN as UNKNOWN_TABLE

Mode = Literal["off", "add_columns", "add_columns_and_tables"]
MODES: tuple[Mode, ...] = ("off", "add_columns", "add_columns_and_tables")
# MySQL's TEXT family by capacity; other dialects' unbounded types have no length.
_MYSQL_TEXT = {"TINYTEXT": 255, "TEXT": 65_535, "MEDIUMTEXT": 16_777_215,
               "LONGTEXT": 4_294_967_295}
_UNBOUNDED = float("inf")
_TRUNCATION = re.compile(r"^\S+ (?P<table>[A-Za-z0-9_]+)\.(?P<column>[A-Za-z0-9_]+) supplied "
                         r"(?P<supplied>\d+), expecting (?P<expecting>\d+)")


# ----- comparing with the database ---------------------------------------------------------

@dataclass
class TableChange:
    """What one table needs: statements to run, and remarks that change nothing."""

    table: str
    statements: list[str] = field(default_factory=list)
    remarks: list[str] = field(default_factory=list)


@dataclass
class AlterPlan:
    """Every change, per table, for one database; empty when it matches the schemas."""

    dialect: str
    changes: list[TableChange]

    @property
    def statements(self) -> list[str]:
        return [s for c in self.changes for s in c.statements]

    def render(self) -> str:
        """The plan as SQL with ``--`` remarks; the empty string when nothing differs."""
        out: list[str] = []
        for c in self.changes:
            out += [f"-- {r}" for r in c.remarks]
            out += [terminate(s) for s in c.statements]
        return "\n".join(out) + "\n" if out else ""


def plan_alter(engine: Engine, tables: Sequence[TableDef], opts: DdlOptions | None = None,
               include_system: bool = True) -> AlterPlan:
    """The statements that bring the database up to ``tables`` (and the system tables)."""
    opts = opts or DdlOptions.for_engine(engine)
    sa_tables, _ = build_tables(tables, opts, include_system)
    dialect = engine.dialect
    changes: list[TableChange] = []
    with engine.connect() as conn:
        insp = inspect(conn)
        existing = {n.lower() for n in insp.get_table_names(schema=opts.schema)}
        for t in sa_tables:
            if t.name.lower() not in existing:
                change = TableChange(t.name, create_statements(t, dialect, opts),
                                     [f"{t.name}: new table"])
            else:
                live = insp.get_columns(t.name, schema=opts.schema)
                change = _compare(t, live, dialect)
            if change.statements or change.remarks:
                changes.append(change)
    return AlterPlan(dialect.name, changes)


def apply_alter(engine: Engine, plan: AlterPlan) -> None:
    """Run a plan's statements (PostgreSQL and SQLite: in one transaction)."""
    run_statements(engine, plan.statements)


def _compare(table: Table, live: list[Any], dialect: Dialect) -> TableChange:
    change = TableChange(table.name)
    have = {str(c["name"]).lower(): c for c in live}
    clauses: list[tuple[str, str]] = []
    for col in table.columns:
        found = have.pop(col.name.lower(), None)
        if found is None:
            if col.primary_key:
                change.remarks.append(f"{table.name}.{col.name}: the key column is missing "
                                      "(recreate the table)")
            else:
                clauses.append(("add", _spec(col, dialect)))
                change.remarks.append(f"{table.name}.{col.name}: new column")
            continue
        verdict = _type_verdict(_impl(col, dialect), found["type"], dialect)
        if verdict == "widen":
            clause = _widen_clause(col, dialect)
            if clause is None:
                change.remarks.append(f"{table.name}.{col.name}: {dialect.name} cannot widen "
                                      f"{found['type']} to {_type_sql(col, dialect)} in place")
            else:
                clauses.append(("modify", clause))
                change.remarks.append(f"{table.name}.{col.name}: widen {found['type']} to "
                                      f"{_type_sql(col, dialect)}")
        elif verdict:
            change.remarks.append(f"{table.name}.{col.name}: {verdict} (left alone)")
    for name in have:
        change.remarks.append(f"{table.name}.{name}: only in the database (left alone)")
    change.statements = _alter_statements(table, clauses, dialect)
    return change


def _impl(col: Column[Any], dialect: Dialect) -> sqltypes.TypeEngine[Any]:
    mapping = col.type._variant_mapping
    return mapping.get(dialect.name, col.type)


def _capacity(t: sqltypes.TypeEngine[Any], dialect: Dialect) -> float:
    if dialect.name in ("mysql", "mariadb") and type(t).__name__.upper() in _MYSQL_TEXT:
        return _MYSQL_TEXT[type(t).__name__.upper()]
    length = getattr(t, "length", None)
    return _UNBOUNDED if length in (None, "max") else float(length)


def _type_verdict(want: sqltypes.TypeEngine[Any], have: sqltypes.TypeEngine[Any],
                  dialect: Dialect) -> str:
    """"widen", "" (fine as it is) or why the types differ in a way ledbelly leaves alone."""
    if dialect.name == "sqlite" or isinstance(want, sqltypes.Boolean | sqltypes.DateTime):
        return ""  # SQLite enforces neither lengths nor integer sizes
    if isinstance(want, sqltypes.String):
        if not isinstance(have, sqltypes.String):
            return f"the database has {have}, the schema a string"
        return "widen" if _capacity(have, dialect) < _capacity(want, dialect) else ""
    if isinstance(want, sqltypes.Integer):
        if not isinstance(have, sqltypes.Integer):
            return "" if isinstance(have, sqltypes.Numeric) else \
                f"the database has {have}, the schema an integer"
        small = isinstance(have, sqltypes.SmallInteger) or not isinstance(
            have, sqltypes.BigInteger)
        return "widen" if isinstance(want, sqltypes.BigInteger) and small else ""
    if isinstance(want, sqltypes.Float):
        return "widen" if isinstance(have, sqltypes.Integer) else ""
    return ""


def _spec(col: Column[Any], dialect: Dialect) -> str:
    return str(CreateColumn(col).compile(dialect=dialect)).strip()


def _type_sql(col: Column[Any], dialect: Dialect) -> str:
    return str(dialect.type_compiler_instance.process(col.type))


def _widen_clause(col: Column[Any], dialect: Dialect) -> str | None:
    quoted = dialect.identifier_preparer.quote(col.name)
    if dialect.name == "postgresql":
        return f"ALTER COLUMN {quoted} TYPE {_type_sql(col, dialect)}"
    if dialect.name == "oracle":
        if isinstance(_impl(col, dialect), sqltypes.Text):
            return None  # VARCHAR2 to CLOB needs a new column and a copy
        return f"MODIFY ({quoted} {_type_sql(col, dialect)})"
    if dialect.name == "mssql":
        return f"ALTER COLUMN {_spec(col, dialect)}"
    return f"MODIFY COLUMN {_spec(col, dialect)}"


def _alter_statements(table: Table, clauses: list[tuple[str, str]],
                      dialect: Dialect) -> list[str]:
    """One ALTER TABLE per table where the dialect allows it (one rebuild on MySQL)."""
    if not clauses:
        return []
    target = f"ALTER TABLE {dialect.identifier_preparer.format_table(table)}"
    parts = [_add_clause(spec, dialect) if kind == "add" else spec for kind, spec in clauses]
    if dialect.name in ("postgresql", "mysql", "mariadb"):
        return [target + "\n  " + ",\n  ".join(parts)]
    return [f"{target} {p}" for p in parts]


def _add_clause(spec: str, dialect: Dialect) -> str:
    if dialect.name == "mssql":
        return f"ADD {spec}"
    if dialect.name == "oracle":
        return f"ADD ({spec})"
    return f"ADD COLUMN {spec}"


# ----- overlay files -----------------------------------------------------------------------

def write_table_file(table: TableDef, directory: Path, description: str | None = None) -> Path:
    """Write a table as ``<directory>/<format>/<table>.yml``, keeping an old file's comments."""
    path = directory / table.format / f"{table.name}.yml"
    old_description, notes = read_comments(table.path or path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(table_to_yaml(table, description or old_description, notes),
                    encoding="utf-8")
    return path


# ----- automatic evolution -----------------------------------------------------------------

class Evolver:
    """Opt-in schema evolution at run time, like Kafka Connect's ``auto.evolve``/``auto.create``.

    Each change is made with DDL, written whole to ``overlay_dir`` (a ``schemas.local``
    style directory that ``Catalog.load`` lays over ``schemas/``), logged to
    ``log/schema-changes.log``, put into ``catalog.tables`` so routing sees it, and passed
    to ``on_change`` so the sink and processor can drop what they cached. A change the
    database refuses is logged once and not tried again by this process.
    """

    def __init__(self, engine: Engine, catalog: Catalog, overlay_dir: Path, logs: EventLogs,
                 mode: str = "off", on_change: Callable[[TableDef], None] | None = None,
                 opts: DdlOptions | None = None) -> None:
        if mode not in MODES:
            raise ConfigError(f"schema_evolution must be one of {', '.join(MODES)}, got {mode!r}")
        self.engine = engine
        self.catalog = catalog
        self.overlay_dir = overlay_dir
        self.logs = logs
        self.mode = mode
        self.on_change = on_change
        self.opts = opts or DdlOptions.for_engine(engine)
        self._lock = threading.Lock()
        self._refused: set[tuple[str, str]] = set()

    @property
    def adds_columns(self) -> bool:
        return self.mode != "off"

    @property
    def creates_tables(self) -> bool:
        return self.mode == "add_columns_and_tables"

    def add_columns(self, table: TableDef, fields: dict[str, Any]) -> TableDef | None:
        """New nullable columns for undefined flat keys (type from the sample values).

        ``fields`` maps flat key to one sample value (or a list of them). Returns the new
        table definition, or ``None`` when evolution is off or nothing was added.
        """
        if not self.adds_columns or not fields:
            return None
        with self._lock:
            current = self.catalog.tables.get(table.name, table)
            samples = {k: v if isinstance(v, list) else [v] for k, v in fields.items()
                       if (table.name, k) not in self._refused}
            new, added = add_fields(current, samples)
            if not added:
                return None
            return self._commit(new, f"{table.name}: added columns {', '.join(added)}",
                                [(table.name, k) for k in samples])

    def widen(self, table: TableDef, column: str, needed_size: int) -> TableDef | None:
        """A string column widened (with headroom) for a value of ``needed_size``."""
        if not self.adds_columns or (table.name, column) in self._refused:
            return None
        with self._lock:
            current = self.catalog.tables.get(table.name, table)
            new = widen_column(current, column, needed_size)
            if new is None:
                return None
            col = new.column(column)
            assert col is not None
            size = f"size {col.size}" if col.type == "string" else "text"
            return self._commit(new, f"{table.name}.{column}: widened to {size} for a value "
                                f"of {needed_size}", [(table.name, column)])

    def create_table(self, fmt: str, event_name: str,
                     flat_sample: dict[str, Any]) -> TableDef | None:
        """A new table for an unknown event type, its columns inferred from one event."""
        if not self.creates_tables or (fmt, event_name) in self._refused:
            return None
        with self._lock:
            new = infer_table(self.catalog, fmt, event_name, [flat_sample])
            if new.name in self.catalog.tables:
                return self.catalog.tables[new.name]
            return self._commit(new, f"{new.name}: new table for {fmt} event {event_name} "
                                f"with {len(new.columns)} columns", [(fmt, event_name)])

    def evolve_for(self, processor: Processor, msg: Message) -> bool:
        """Make the changes ``msg`` needs before it is processed; ``True`` if any was made.

        A convenience for callers that cannot hook into the processor: it parses the
        message a second time. The processor itself should rather call ``add_columns``
        where it logs undefined fields and ``create_table`` where it finds no table.
        """
        if not self.adds_columns:
            return False
        try:
            payload = msg.payload if msg.payload is not None else parsers.decode(msg.body)
            env = parsers.open_envelope(payload, msg.attributes)
        except LedbellyError:
            return False
        table = self.catalog.route(env.format, env.event_name)
        if table is None:
            flat = parsers.flatten(env, frozenset())
            return self.create_table(env.format, env.event_name, flat) is not None
        plan = processor.plan(table)
        if plan is None:
            return False
        flat = parsers.flatten(env, plan.keep)
        extra = {k: flat[k] for k in plan.undefined(flat) if k not in plan.missing_in_db}
        return bool(extra) and self.add_columns(table, extra) is not None

    def _commit(self, new: TableDef, what: str, keys: list[tuple[str, str]]) -> TableDef | None:
        try:
            plan = plan_alter(self.engine, [new], self.opts, include_system=False)
            statements = plan.statements
            apply_alter(self.engine, plan)
        except sa_exc.SQLAlchemyError as exc:
            self._refused.update(keys)
            self.logs.schema_change(f"FAILED {what}: {str(exc).splitlines()[0][:300]}")
            return None
        description = None if new.path else f"{new.format} event {new.event}: added by " \
            "ledbelly schema evolution; review, then merge with 'ledbelly schema suggest/apply'"
        path = write_table_file(new, self.overlay_dir, description)
        new = replace(new, path=path)
        self.catalog.tables[new.name] = new
        self.logs.schema_change(f"{what}; {len(statements)} statements; wrote {path}")
        if self.on_change:
            self.on_change(new)
        return new


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
        lines = ["# ledbelly schema patch: review it, then run 'ledbelly schema apply <file>'",
                 f"# from: {', '.join(self.sources) or 'nothing'}",
                 f"ledbelly_schema_patch: {PATCH_VERSION}", "tables:" + ("" if self else " {}")]
        for name, tp in self.tables.items():
            lines.append(f"  {name}:")
            if tp.create is not None:
                lines += _render_create(tp.create, tp.notes)
            for key, cols in (("add_columns", tp.add), ("widen_columns", tp.widen)):
                if cols:
                    lines.append(f"    {key}:")
                    lines += [f"      {c.name}: {column_spec_yaml(c)}{_note(tp.notes, c.name)}"
                              for c in cols]
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


def suggest(schema_dir: Path | None, log_dir: Path, engine: Engine | None = None,
            overlay: Path | None = None) -> Patch:
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
    paths = sorted(log_dir.glob(name + ".*"), key=lambda p: -int(p.suffix[1:])
                   if p.suffix[1:].isdigit() else 0)
    lines: list[str] = []
    for p in [*paths, log_dir / name]:
        if p.is_file():
            lines += p.read_text(encoding="utf-8", errors="replace").splitlines()
    return lines


def _from_undefined(log_dir: Path, desired: dict[str, TableDef],
                    notes: dict[str, dict[str, str]], patch: Patch) -> None:
    samples: dict[str, dict[str, list[Any]]] = {}
    for line in _log_lines(log_dir, UNDEFINED):
        try:
            entry = json.loads(line)
            table, key = str(entry["table"]), str(entry["field"]).split(" ", 1)[0]
        except (ValueError, KeyError, TypeError):
            continue
        if table in desired:
            samples.setdefault(table, {}).setdefault(key, []).append(
                _sample(entry.get("sample")))
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


def _from_truncations(log_dir: Path, desired: dict[str, TableDef],
                      notes: dict[str, dict[str, str]], patch: Patch) -> None:
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
            notes.setdefault(table, {})[column] = f"values up to {supplied} were cut to " \
                f"{expecting}"
    if longest:
        patch.sources.append(str(log_dir / TRUNCATIONS))


def _from_unknown_events(engine: Engine, catalog: Catalog, desired: dict[str, TableDef],
                         notes: dict[str, dict[str, str]], patch: Patch) -> None:
    flats: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for event_name, body in _unknown_bodies(engine):
        try:
            fmt, name, flat = flatten_body(body, event_name)
        except LedbellyError:
            continue
        if fmt in TABLE_PREFIX and catalog.route(fmt, name) is None \
                and table_name_for(fmt, name) not in desired:
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
        rows = conn.execute(select(unknown.c.event_name, unknown.c.raw_body)
                            .order_by(unknown.c.id.desc()))
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
        f" ({note})" if note else "")


def _merge(table: TableDef, changes: list[ColumnDef]) -> TableDef:
    columns = list(table.columns)
    for col in changes:
        at = next((i for i, c in enumerate(columns) if c.name == col.name), None)
        if at is None:
            columns.append(col)
        elif is_wider(col, columns[at]):
            columns[at] = replace(col, source=columns[at].source or col.source,
                                  json=columns[at].json)
    return replace(table, columns=tuple(columns))


# ----- replaying stored unknown events -----------------------------------------------------

def replay_unknown(sink: Sink, processor: Processor, table: TableDef) -> int:
    """Move stored unknown events of ``table``'s event type into it, now that it exists.

    Each replayed message's unknown-event row and ledger entry are replaced by its rows
    and a new ledger entry in one transaction, so it is never lost nor counted twice.
    Returns how many messages now have rows.
    """
    system = sink.system
    unknown, ledger = system[UNKNOWN_TABLE], system[LEDGER]
    with sink.engine.connect() as conn:
        stored = conn.execute(select(unknown.c.id, unknown.c.message_id, unknown.c.event_name,
                                     unknown.c.raw_body)
                              .where(unknown.c.event_name == table.event)
                              .where(unknown.c.format == table.format)).all()
    replayed = 0
    now = datetime.now(UTC).replace(tzinfo=None)
    for row in stored:
        msg = Message(row.message_id, row.raw_body or "", {"event_name": row.event_name or ""})
        outcome = processor.process(msg)
        if outcome.kind != INSERTED:
            continue
        with sink.engine.begin() as conn:
            conn.execute(delete(unknown).where(unknown.c.id == row.id))
            conn.execute(delete(ledger).where(ledger.c.message_id == row.message_id))
            for name, values in outcome.rows:
                sink.insert_rows(conn, sink.sa_table(sink.catalog.tables[name]), [values])
            sink.insert_rows(conn, ledger, [{
                "message_id": row.message_id, "event_name": row.event_name,
                "target_table": outcome.table, "outcome": INSERTED, "processed_at": now}])
        replayed += 1
    return replayed
