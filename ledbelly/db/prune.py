"""Pruning the tables that only grow: the ledger, the dead letters, the unknown events.

Each is deleted in chunks, one short transaction per chunk, oldest first, so a prune
runs beside the daemon without holding locks for long. What each loses:

- the ledger (``ledbelly_messages``, by ``processed_at``, its index): a message delivered
  again after its entry is gone is stored again. SQS keeps a message at most 14 days, so
  entries older than that meet only re-ingested files and replayed recovery files. The
  entry of a message still parked (a dead letter or an unknown event) is kept while it is
  parked: ``ledbelly replay`` needs it to move the message exactly once.
- dead letters (``ledbelly_dead_letters``, by ``failed_at``): ``ledbelly replay
  --dead-letters`` can no longer bring them back; their ledger entries stay, so a
  redelivery is still skipped.
- unknown events (``ledbelly_unknown_events``, by ``received_at``): a table made later
  cannot get them by ``ledbelly replay --unknown-events``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, MetaData, Table, and_, delete, exists, func, not_, or_, select

from ledbelly.db.tables import DEAD_LETTERS, LEDGER, UNKNOWN, build_system_tables
from ledbelly.outcome import Kind

SQS_MAX_RETENTION_DAYS = 14
CHUNK = 5000
_IN_LIST = 900  # ids per DELETE ... IN (...), within every database's limits

LOSSES = {
    LEDGER: (
        "a message delivered again after its entry is gone is stored again: SQS keeps "
        f"messages at most {SQS_MAX_RETENTION_DAYS} days, so only re-ingested files and "
        "replayed recovery files can bring one back. Entries of messages still parked "
        "(dead letters, unknown events) are kept"
    ),
    DEAD_LETTERS: (
        "ledbelly replay --dead-letters can no longer bring them back (their ledger entries "
        "stay, so a redelivery is still skipped)"
    ),
    UNKNOWN: (
        "a table made later cannot get them with ledbelly replay --unknown-events (their "
        "ledger entries stay)"
    ),
}


@dataclass
class Pruned:
    """One table's prune: how many rows went (or would go), older than ``cutoff``."""

    table: str
    cutoff: datetime
    rows: int
    kept: int = 0  # ledger entries older than the cutoff kept for parked messages


def prune(
    engine: Engine,
    ledger_days: float | None = None,
    dead_letter_days: float | None = None,
    unknown_days: float | None = None,
    *,
    dry_run: bool = False,
    chunk: int = CHUNK,
    now: datetime | None = None,
) -> list[Pruned]:
    """Delete what is older than each given number of days; parked rows go before the
    ledger, so the ledger entries they held can go in the same run."""
    tables = build_system_tables(MetaData())
    at = now or datetime.now(UTC).replace(tzinfo=None)
    out: list[Pruned] = []
    if dead_letter_days is not None:
        table = tables[DEAD_LETTERS]
        cutoff = at - timedelta(days=dead_letter_days)
        out.append(_prune_parked(engine, table, table.c.failed_at, cutoff, dry_run, chunk))
    if unknown_days is not None:
        table = tables[UNKNOWN]
        cutoff = at - timedelta(days=unknown_days)
        out.append(_prune_parked(engine, table, table.c.received_at, cutoff, dry_run, chunk))
    if ledger_days is not None:
        cutoff = at - timedelta(days=ledger_days)
        out.append(_prune_ledger(engine, tables, cutoff, dry_run, chunk))
    return out


def _prune_parked(
    engine: Engine, table: Table, when: Any, cutoff: datetime, dry_run: bool, chunk: int
) -> Pruned:
    """Dead letters or unknown events stored before ``cutoff``, walked by their key."""
    old = when < cutoff
    if dry_run:
        return Pruned(table.name, cutoff, _count(engine, table, old))
    done, last = 0, None
    while True:
        with engine.begin() as conn:
            query = select(table.c.id).where(old).order_by(table.c.id).limit(chunk)
            if last is not None:
                query = query.where(table.c.id > last)
            ids = list(conn.execute(query).scalars())
            if not ids:
                return Pruned(table.name, cutoff, done)
            _delete(conn, table, table.c.id, ids)
        done, last = done + len(ids), ids[-1]


def _prune_ledger(
    engine: Engine, tables: dict[str, Table], cutoff: datetime, dry_run: bool, chunk: int
) -> Pruned:
    """Ledger entries processed before ``cutoff``, oldest first by the ``processed_at``
    index; an entry whose message is still parked stays."""
    ledger, dead, unknown = tables[LEDGER], tables[DEAD_LETTERS], tables[UNKNOWN]
    old = ledger.c.processed_at < cutoff
    parked = or_(
        exists().where(dead.c.message_id == ledger.c.message_id),
        exists().where(unknown.c.message_id == ledger.c.message_id),
    )
    goes = and_(old, or_(ledger.c.outcome == Kind.INSERTED.value, not_(parked)))
    if dry_run:
        return Pruned(LEDGER, cutoff, _count(engine, ledger, goes))
    done = 0
    while True:
        with engine.begin() as conn:
            query = select(ledger.c.message_id).where(goes)
            ids = list(conn.execute(query.order_by(ledger.c.processed_at).limit(chunk)).scalars())
            if not ids:
                break
            _delete(conn, ledger, ledger.c.message_id, ids)
        done += len(ids)
    return Pruned(LEDGER, cutoff, done, _count(engine, ledger, old))


def _count(engine: Engine, table: Table, where: Any) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table).where(where)).scalar_one())


def _delete(conn: Any, table: Table, key: Any, ids: list[Any]) -> None:
    for i in range(0, len(ids), _IN_LIST):
        conn.execute(delete(table).where(key.in_(ids[i : i + _IN_LIST])))
