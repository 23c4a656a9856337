"""Parked messages back through the pipeline, once their cause is fixed.

A dead letter (a column too narrow, a bad value) or an unknown event (no table yet)
waits in its table and in the ledger. Replaying processes it again: what now lands is
inserted once and leaves the parked table, in the same transaction that records it in
the ledger as ``inserted``; what still fails stays parked with one more attempt and its
new error. A message already inserted is skipped, so replaying twice changes nothing.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import Engine, Table, select

from ledbelly.db.tables import DEAD_LETTERS, LEDGER
from ledbelly.db.tables import UNKNOWN as UNKNOWN_TABLE
from ledbelly.message import Message
from ledbelly.outcome import Kind, Outcome
from ledbelly.pipeline import Pipeline
from ledbelly.retry import retry_transient


@dataclass(frozen=True)
class ReplayFilter:
    """Which parked messages to take: by event name, by target table, by time, how many."""

    event: str | None = None
    table: str | None = None
    since: datetime | None = None
    limit: int | None = None


@dataclass
class ReplayReport:
    """What moved into its table and what stayed parked, by event type."""

    moved: Counter[str] = field(default_factory=Counter)
    stayed: Counter[str] = field(default_factory=Counter)
    skipped: int = 0  # already inserted: nothing to do

    def add(self, outcomes: Iterable[Outcome]) -> None:
        for o in outcomes:
            (self.moved if o.kind == Kind.INSERTED else self.stayed)[o.event_name or "?"] += 1

    def render(self, dry_run: bool) -> list[str]:
        verb = ("would move", "would stay") if dry_run else ("moved", "stayed")
        lines = [
            f"{verb[0]} {sum(self.moved.values())}, {verb[1]} "
            f"{sum(self.stayed.values())}, already inserted {self.skipped}"
        ]
        for label, counts in zip(verb, (self.moved, self.stayed), strict=True):
            lines += [f"  {label}: {name} {n}" for name, n in sorted(counts.items())]
        return lines


def parked(
    engine: Engine, pipeline: Pipeline, kind: Kind, wanted: ReplayFilter
) -> Iterator[Message]:
    """Parked messages of ``kind`` (dead letters or unknown events) as ``Message``s."""
    system = pipeline.tables.system
    table: Table = system[DEAD_LETTERS if kind == Kind.DEAD_LETTER else UNKNOWN_TABLE]
    ledger = system[LEDGER]
    when = table.c.failed_at if kind == Kind.DEAD_LETTER else table.c.received_at
    query = select(table.c.message_id, table.c.event_name, table.c.raw_body).order_by(table.c.id)
    if wanted.event:
        query = query.where(table.c.event_name == wanted.event)
    if wanted.table:
        target = pipeline.catalog.tables.get(wanted.table)
        if target is not None and kind == Kind.UNKNOWN:
            query = query.where(table.c.event_name == target.event).where(
                table.c.format == target.format
            )
        else:
            query = query.where(
                table.c.message_id.in_(
                    select(ledger.c.message_id).where(ledger.c.target_table == wanted.table)
                )
            )
    if wanted.since:
        query = query.where(when >= wanted.since)
    if wanted.limit:
        query = query.limit(wanted.limit)
    with engine.connect() as conn:
        rows = conn.execute(query).all()
    for message_id, event_name, raw_body in rows:
        yield Message(message_id, raw_body or "", {"event_name": event_name} if event_name else {})


def replay(
    pipeline: Pipeline, messages: Iterable[Message], dry_run: bool = False, batch_size: int = 500
) -> ReplayReport:
    """Process ``messages`` again and write them in replay mode; ``dry_run`` writes nothing."""
    report = ReplayReport()
    batch: list[Message] = []

    def flush() -> None:
        if dry_run:
            done = _inserted(pipeline, [m.message_id for m in batch])
            report.skipped += sum(m.message_id in done for m in batch)
            report.add(pipeline.processor.process(m) for m in batch if m.message_id not in done)
            batch.clear()
            return
        outcomes = [pipeline.processor.process(m) for m in batch]
        written = retry_transient(lambda: pipeline.sink.write(outcomes, replay=True), attempts=4)
        report.add(written.committed)
        report.skipped += len(written.duplicates)
        batch.clear()

    for m in messages:
        batch.append(m)
        if len(batch) >= batch_size:
            flush()
    if batch:
        flush()
    return report


def _inserted(pipeline: Pipeline, ids: list[str]) -> set[str]:
    """Which of ``ids`` the ledger already holds as inserted."""
    ledger = pipeline.tables.system[LEDGER]
    with pipeline.engine.connect() as conn:
        return set(
            conn.execute(
                select(ledger.c.message_id).where(
                    ledger.c.message_id.in_(ids), ledger.c.outcome == Kind.INSERTED.value
                )
            ).scalars()
        )
