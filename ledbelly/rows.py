"""Turning a flattened event into a row for one table, prepared once per table.

A ``RowPlan`` resolves every column's source key, coercer, size and length unit up
front, so building a row is one pass over a list with no look-ups by name.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ledbelly.coerce import (
    Coercer,
    CoercionFailed,
    LengthUnit,
    coercer_for,
    fits,
    length_unit,
    stored_length,
    trim,
)
from ledbelly.schema import ColumnDef, TableDef, resolved_source


@dataclass(frozen=True, slots=True)
class Issue:
    """Something the row builder changed on the way: a trim or a value stored as NULL."""

    column: str
    kind: str  # "trim" | "null"
    supplied: int = 0
    expecting: int = 0
    value: Any = None
    reason: str = ""


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
            self.slots.append(_Slot(col.name, src, coercer_for(col), _size(col),
                                    length_unit(dialect, col)))
        self.keep = frozenset(resolved_source(table, c) for c in table.data_columns if c.json)
        self.consumed = frozenset(s.source for s in self.slots)
        self.keep_prefixes = tuple(k + "_" for k in self.keep)
        self.has_processed_at = _fillable(table, "processed_at", live_columns)
        self.has_local_time = _fillable(table, "event_time_local", live_columns)

    def build(self, flat: dict[str, Any], processed_at: datetime,
              local_time: datetime | None) -> tuple[dict[str, Any], list[Issue]]:
        """The row for ``flat``, and what had to be trimmed or nulled to store it."""
        row: dict[str, Any] = {}
        issues: list[Issue] = []
        get = flat.get
        for slot in self.slots:
            value = get(slot.source)
            if value is None:
                row[slot.column] = None
                continue
            try:
                value = slot.coerce(value)
            except CoercionFailed as exc:
                issues.append(Issue(slot.column, "null", value=value, reason=str(exc)))
                row[slot.column] = None
                continue
            if slot.size is not None and type(value) is str and len(value) > slot.size // 4:
                value = _fit(slot, value, issues)
            row[slot.column] = value
        if self.has_processed_at:
            row["processed_at"] = processed_at
        if self.has_local_time:
            row["event_time_local"] = local_time
        return row, issues

    def undefined(self, flat: dict[str, Any]) -> list[str]:
        """Payload keys this table has no column for (never dropped silently: logged)."""
        extra = flat.keys() - self.consumed
        if not extra:
            return []
        return sorted(k for k in extra if k not in self.keep and
                      not k.startswith(self.keep_prefixes))


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
    issues.append(Issue(slot.column, "trim", supplied=stored_length(value, slot.unit),
                        expecting=slot.size))
    return trim(value, slot.size, slot.unit)


PlanFactory = Callable[[TableDef], RowPlan]
