"""The contract between the stages: what became of a message, and what a row lost.

The processor makes these, the sink commits them, the daemon, ``ingest`` and the
metrics read them. They live apart from every producer so no stage imports another
stage just for a type.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from ledbelly.schema.model import TableDef

from ledbelly.message import Message


class Kind(StrEnum):
    """Where a message ended: the ledger's ``outcome`` column holds these values."""

    INSERTED = "inserted"
    UNKNOWN = "unknown"
    DEAD_LETTER = "dead_letter"


class IssueKind(StrEnum):
    TRIM = "trim"  # a string cut to its column's size
    NULL = "null"  # a value that could not be coerced, stored as NULL


@dataclass(frozen=True, slots=True)
class Issue:
    """Something the row builder changed on the way: a trim or a value stored as NULL."""

    column: str
    kind: IssueKind
    supplied: int = 0
    expecting: int = 0
    value: Any = None
    reason: str = ""


@dataclass(slots=True)
class Outcome:
    """What became of one message, ready for the sink to commit."""

    message: Message
    kind: Kind
    event_name: str | None = None
    format: str | None = None
    table: str | None = None
    rows: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    event_time: datetime | None = None
    error: str | None = None
    truncations: int = 0
    undefined: int = 0


class EventRows(Protocol):
    """One event while its rows are built, as an extension's ``event_rows`` hook sees it.

    ``add_row`` builds the event's row for another table (``live_stream``, say) with the
    processor's own row builder: coerced, trimmed, logged and counted like the event's.
    """

    @property
    def format(self) -> str: ...

    @property
    def event_name(self) -> str: ...

    def add_row(self, table: TableDef) -> None: ...

    def mark(self) -> int:
        """How many rows the event has now (for the host, to undo a failed hook)."""
        ...

    def undo(self, mark: int) -> None:
        """Drop the rows added since ``mark``."""
        ...
