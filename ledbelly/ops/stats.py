"""Counts of what was committed: the ``ingest`` summary line and the daemon's last line."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from ledbelly.db.sink import WriteReport
from ledbelly.outcome import Kind


@dataclass
class Stats:
    """Counts for the summary line and the metrics endpoint."""

    messages: int = 0
    rows: Counter[str] = field(default_factory=Counter)
    tables: Counter[str] = field(default_factory=Counter)
    unknown: int = 0
    dead_letters: int = 0
    duplicates: int = 0
    truncations: int = 0
    undefined: int = 0

    def merge(self, other: Stats) -> None:
        """Add another worker's counts to these."""
        self.messages += other.messages
        self.rows.update(other.rows)
        self.tables.update(other.tables)
        self.unknown += other.unknown
        self.dead_letters += other.dead_letters
        self.duplicates += other.duplicates
        self.truncations += other.truncations
        self.undefined += other.undefined

    def add(self, report: WriteReport) -> None:
        for o in report.committed:
            self.messages += 1
            if o.kind == Kind.INSERTED:
                self.rows[o.format or "?"] += 1
                for name, _ in o.rows:
                    self.tables[name] += 1
            elif o.kind == Kind.UNKNOWN:
                self.unknown += 1
            elif o.kind == Kind.DEAD_LETTER:
                self.dead_letters += 1
            self.truncations += o.truncations
            self.undefined += o.undefined
        self.messages += len(report.duplicates)
        self.duplicates += len(report.duplicates)
