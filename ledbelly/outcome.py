"""The contract between the stages: what became of a message, and what a row lost.

The processor makes these, the sink commits them, the daemon, ``ingest`` and the
metrics read them. They live apart from every producer so no stage imports another
stage just for a type.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

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
