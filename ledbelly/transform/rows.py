"""Turning a flattened event into a row for one table, prepared once per table.

A ``RowPlan`` resolves every column's source key, coercer, size and length unit up
front, so building a row is one pass over a list with no look-ups by name.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from ledbelly import kernels
from ledbelly.outcome import Issue, IssueKind
from ledbelly.schema.model import ColumnDef, TableDef, resolved_source
from ledbelly.transform.coerce import (
    BIGINT_MAX,
    BIGINT_MIN,
    INT_MAX,
    INT_MIN,
    Coercer,
    CoercionFailed,
    LengthUnit,
    canvas_id_of_urn,
    coercer_for,
    fits,
    length_unit,
    stored_length,
    text_of,
    to_bigint,
    to_datetime,
    to_int,
    trim,
)


@dataclass(frozen=True, slots=True)
class _Slot:
    column: str
    source: str
    coerce: Coercer
    size: int | None
    unit: LengthUnit


class RowPlan:
    """How to fill one table's row; built for the columns that exist in the live table."""

    def __init__(self, table: TableDef, dialect: str, live_columns: frozenset[str] | None) -> None:
        self.table = table
        self.slots: list[_Slot] = []
        self.missing_in_db: dict[str, str] = {}
        for col in table.data_columns:
            src = resolved_source(table, col)
            if live_columns is not None and col.name not in live_columns:
                self.missing_in_db[src] = col.name
                continue
            self.slots.append(
                _Slot(col.name, src, coercer_for(col), _size(col), length_unit(dialect, col))
            )
        self.keep = frozenset(resolved_source(table, c) for c in table.data_columns if c.json)
        self.consumed = frozenset(s.source for s in self.slots)
        self.keep_prefixes = tuple(k + "_" for k in self.keep)
        # Keys known not to need a log line: consumed ones, and those already reported.
        self._accounted: set[str] = set(self.consumed)
        self.has_processed_at = _fillable(table, "processed_at", live_columns)
        self.has_local_time = _fillable(table, "event_time_local", live_columns)
        self._build = _lazily_compiled(self.slots, None, self._install)
        # By leader plan itself (never its id(), which a later plan may reuse once this
        # one is freed): a reset drops leaders and followers together.
        self._followers: dict[RowPlan, tuple[Any, dict[str, list[str]]]] = {}

    def _install(self, build: Callable[..., dict[str, Any]]) -> None:
        self._build = build

    def build(
        self, flat: dict[str, Any], processed_at: datetime, local_time: datetime | None
    ) -> tuple[dict[str, Any], list[Issue]]:
        """The row for ``flat``, and what had to be trimmed or nulled to store it."""
        issues: list[Issue] = []
        row = self._build(flat, issues)
        if self.has_processed_at:
            row["processed_at"] = processed_at
        if self.has_local_time:
            row["event_time_local"] = local_time
        return row, issues

    def build_after(
        self,
        leader: RowPlan,
        flat: dict[str, Any],
        lead_row: dict[str, Any],
        lead_issues: list[Issue],
        processed_at: datetime,
        local_time: datetime | None,
    ) -> tuple[dict[str, Any], list[Issue]]:
        """Like ``build``, reusing values ``leader`` already converted the same way.

        ``live_stream`` repeats most of an event table's metadata columns; converting them
        once halves its cost. The leader's trims and NULLs are reported for both tables.
        """
        follower = self._followers.get(leader)
        if follower is None:
            follower = self._followers[leader] = self._follower(leader)
        build, reused = follower
        issues: list[Issue] = []
        row = build(flat, issues, lead_row)
        for issue in lead_issues:
            for column in reused.get(issue.column, ()):
                issues.append(replace(issue, column=column))
        if self.has_processed_at:
            row["processed_at"] = processed_at
        if self.has_local_time:
            row["event_time_local"] = local_time
        return row, issues

    def _follower(self, leader: RowPlan) -> tuple[Any, dict[str, list[str]]]:
        reuse, reused = _reuse_map(self.slots, leader.slots)

        def install(build: Callable[..., dict[str, Any]]) -> None:
            self._followers[leader] = (build, reused)

        return _lazily_compiled(self.slots, reuse, install), reused

    def undefined(self, flat: dict[str, Any]) -> list[str]:
        """Payload keys this table has no column for (never dropped silently: logged)."""
        return self._without_kept(flat.keys() - self.consumed)

    def new_undefined(self, flat: dict[str, Any]) -> list[str]:
        """``undefined`` keys not yet reported through this method: the per-event check.

        Most events carry the same keys as the last one, so one C-level subset test
        settles them; only an event with a key never seen before pays for the set work.
        """
        if self._accounted.issuperset(flat):
            return []
        extra = flat.keys() - self._accounted
        self._accounted.update(extra)  # a race here at worst reports a key twice
        return self._without_kept(extra)

    def _without_kept(self, extra: set[str]) -> list[str]:
        """``extra`` less the keys inside a ``json: true`` column's whole object."""
        return sorted(
            k for k in extra if k not in self.keep and not k.startswith(self.keep_prefixes)
        )


def _convert(slot: _Slot, value: Any, issues: list[Issue]) -> Any:
    """The general path for one value: coerce, then fit; a failure is NULL plus an issue."""
    try:
        value = slot.coerce(value)
    except CoercionFailed as exc:
        issues.append(Issue(slot.column, IssueKind.NULL, value=value, reason=str(exc)))
        return None
    if slot.size is not None and type(value) is str and len(value) > slot.size // 4:
        value = _fit(slot, value, issues)
    return value


_INT_DIGITS = 18  # any run of at most 18 ASCII digits fits a bigint and an int is checked


def _reuse_map(
    slots: list[_Slot], leader: list[_Slot]
) -> tuple[dict[int, str], dict[str, list[str]]]:
    """Which of ``slots`` can take the value another table's row already converted."""
    same = {(s.source, s.coerce, s.size, s.unit): s.column for s in leader}
    reuse: dict[int, str] = {}
    reused: dict[str, list[str]] = {}
    for i, slot in enumerate(slots):
        lead_column = same.get((slot.source, slot.coerce, slot.size, slot.unit))
        if lead_column is not None:
            reuse[i] = lead_column
            reused.setdefault(lead_column, []).append(slot.column)
    return reuse, reused


# Rows a builder makes by the general loop before its straight-line code is compiled:
# compiling costs about 1.5 ms a table, worth it only for tables that get traffic.
HOT_AFTER = 64

_KERNEL = kernels.load("rows")

# The compiled builder's kinds of column (ledbelly/kernels/_rows.pyx).
GENERIC, TEXT, INT32, INT64, REUSE, DATETIME, URN = range(7)


def kernel_spec(
    slots: list[_Slot], reuse: dict[int, str] | None = None
) -> list[tuple[str, str, _Slot, int, int | None]]:
    """What the compiled builder needs of each column: the same decisions as
    ``_compile``'s generated code, as data."""
    reuse = reuse or {}
    spec: list[tuple[str, str, _Slot, int, int | None]] = []
    for i, slot in enumerate(slots):
        if i in reuse:
            spec.append((slot.column, reuse[i], slot, REUSE, None))
        elif slot.coerce is to_bigint:
            spec.append((slot.column, slot.source, slot, INT64, None))
        elif slot.coerce is to_int:
            spec.append((slot.column, slot.source, slot, INT32, None))
        elif slot.coerce is text_of:
            spec.append((slot.column, slot.source, slot, TEXT, slot.size))
        elif slot.coerce is to_datetime:
            spec.append((slot.column, slot.source, slot, DATETIME, None))
        elif slot.coerce is canvas_id_of_urn:
            spec.append((slot.column, slot.source, slot, URN, None))
        else:
            spec.append((slot.column, slot.source, slot, GENERIC, None))
    return spec


def compiled_builder(
    kernel: Any, slots: list[_Slot], reuse: dict[int, str] | None = None
) -> Callable[..., dict[str, Any]]:
    """The compiled kernel's builder for ``slots``: the same rows as ``_compile``'s."""
    return kernel.Builder(kernel_spec(slots, reuse), _convert)  # type: ignore[no-any-return]


def _lazily_compiled(
    slots: list[_Slot],
    reuse: dict[int, str] | None,
    install: Callable[[Callable[..., dict[str, Any]]], None],
) -> Callable[..., dict[str, Any]]:
    """A builder that runs ``_build_generic`` until its table is hot, then installs the
    compiled one. Both make the same row; the compiled one only takes common values
    without a call. With the compiled kernel, its builder from the first row."""
    if _KERNEL is not None:
        return compiled_builder(_KERNEL, slots, reuse)
    built = 0

    def build(flat: dict[str, Any], issues: list[Issue], lead: Any = None) -> dict[str, Any]:
        nonlocal built
        built += 1
        if built >= HOT_AFTER:
            built = -(1 << 62)  # compile once; two threads racing here at worst compile twice
            install(_compile(slots, reuse))
        return _build_generic(slots, reuse, flat, issues, lead)

    return build


def _build_generic(
    slots: list[_Slot],
    reuse: dict[int, str] | None,
    flat: dict[str, Any],
    issues: list[Issue],
    lead: Any,
) -> dict[str, Any]:
    row: dict[str, Any] = {}
    for i, slot in enumerate(slots):
        if reuse and i in reuse:
            row[slot.column] = lead[reuse[i]]
            continue
        v = flat.get(slot.source)
        row[slot.column] = None if v is None else _convert(slot, v, issues)
    return row


def _compile(
    slots: list[_Slot], reuse: dict[int, str] | None = None
) -> Callable[..., dict[str, Any]]:
    """Generate straight-line code for one table's row: the hot path of the pipeline.

    Common values (ASCII strings that fit, digit-string ids, ints in range) are accepted
    inline; anything else goes through ``_convert``, which coerces, trims and reports.
    Generated once per table and dialect, like ``dataclasses`` generates ``__init__``.
    """
    env: dict[str, Any] = {"_convert": _convert, "str": str, "int": int, "NUL": "\x00"}
    reuse = reuse or {}
    lines = ["def build(flat, issues, lead=None):", "    get = flat.get"]
    for i, slot in enumerate(slots):
        env[f"s{i}"] = slot
        if i in reuse:
            lines.append(f"    r{i} = lead[{reuse[i]!r}]")
            continue
        lines.append(f"    v = get({slot.source!r})")
        fast = _fast_check(slot)
        if fast is None:
            lines.append(f"    if v is not None: v = _convert(s{i}, v, issues)")
        elif fast.startswith("int:"):
            lines.append("    if v is not None:")
            lines.append(f"        if {fast[4:]}: v = int(v)")
            lines.append(f"        elif not (v.__class__ is int and {_range(slot)}):")
            lines.append(f"            v = _convert(s{i}, v, issues)")
        else:
            lines.append(f"    if v is not None and not ({fast}): v = _convert(s{i}, v, issues)")
        lines.append(f"    r{i} = v")
    items = ", ".join(f"{slot.column!r}: r{i}" for i, slot in enumerate(slots))
    lines.append(f"    return {{{items}}}")
    exec("\n".join(lines), env)  # the source is built above from validated names
    return env["build"]  # type: ignore[no-any-return]


def _fast_check(slot: _Slot) -> str | None:
    coerce = slot.coerce
    if coerce is to_bigint or coerce is to_int:
        return (
            f"int:v.__class__ is str and v.isdigit() and v.isascii() "
            f"and len(v) <= {_INT_DIGITS if coerce is to_bigint else 9}"
        )
    if coerce is text_of:
        ascii_ok = "v.__class__ is str and v.isascii() and '\\x00' not in v"
        if slot.size is not None:
            return f"{ascii_ok} and len(v) <= {slot.size}"
        return ascii_ok
    return None


def _range(slot: _Slot) -> str:
    if slot.coerce is to_bigint:
        return f"{BIGINT_MIN} <= v <= {BIGINT_MAX}"
    return f"{INT_MIN} <= v <= {INT_MAX}"


def _fillable(table: TableDef, name: str, live_columns: frozenset[str] | None) -> bool:
    """A system column the schema has and the live table has too."""
    in_db = live_columns is None or name in live_columns
    return in_db and table.column(name) is not None


def _size(col: ColumnDef) -> int | None:
    return col.size if col.type == "string" else None


def _fit(slot: _Slot, value: str, issues: list[Issue]) -> str:
    assert slot.size is not None
    if fits(value, slot.size, slot.unit):
        return value
    issues.append(
        Issue(
            slot.column,
            IssueKind.TRIM,
            supplied=stored_length(value, slot.unit),
            expecting=slot.size,
        )
    )
    return trim(value, slot.size, slot.unit)
