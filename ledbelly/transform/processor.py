"""Stage two of the pipeline: one message in, one accounted-for outcome out.

Every message ends as rows to insert, an unknown event to store whole, or a dead
letter with its reason. Nothing here touches the database; the sink does.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from ledbelly import parsers
from ledbelly.errors import MessageError, TransientError
from ledbelly.message import Message
from ledbelly.ops.logs import EventLogs
from ledbelly.outcome import EventRows, Issue, IssueKind, Kind, Outcome
from ledbelly.parsers.flatten import Collision
from ledbelly.schema.model import Catalog, TableDef
from ledbelly.text import safe_text
from ledbelly.transform.coerce import CoercionFailed, to_datetime
from ledbelly.transform.rows import RowPlan

log = logging.getLogger("ledbelly.transform.processor")

# Returns the columns of a table as the database has them, or None if the table is missing.
LiveColumns = Callable[[TableDef], frozenset[str] | None]


class SchemaEvolver(Protocol):
    """What the processor asks of opt-in schema evolution (``ledbelly.evolve.Evolver``)."""

    @property
    def adds_columns(self) -> bool: ...

    @property
    def creates_tables(self) -> bool: ...

    def add_columns(self, table: TableDef, fields: dict[str, Any]) -> TableDef | None: ...

    def widen(self, table: TableDef, column: str, needed_size: int) -> TableDef | None: ...

    def create_table(
        self, fmt: str, event_name: str, flat_sample: dict[str, Any]
    ) -> TableDef | None: ...


@dataclass(frozen=True, slots=True)
class ProcessorOptions:
    time_zone: str | None = None


class Processor:
    """Parses, routes, flattens, coerces and trims; pure but for log lines."""

    def __init__(
        self,
        catalog: Catalog,
        dialect: str,
        logs: EventLogs,
        live_columns: LiveColumns,
        options: ProcessorOptions | None = None,
        evolver: SchemaEvolver | None = None,
    ) -> None:
        self.catalog = catalog
        self.dialect = dialect
        self.logs = logs
        self.options = options or ProcessorOptions()
        self._live_columns = live_columns
        self._plans: dict[str, RowPlan | None] = {}
        self._seen_undefined: set[tuple[str, str]] = set()
        self._seen_collisions: set[tuple[str, str]] = set()
        self._seen_renamed: set[tuple[str, str]] = set()
        self._lock = threading.Lock()
        self._zone = ZoneInfo(self.options.time_zone) if self.options.time_zone else None
        self._local_times = LocalTimes(self._zone)
        self._clock = _MillisecondClock()
        # The extensions' per-event hook (ExtensionHost.event_rows): live_stream's rows.
        self.event_rows: Callable[[EventRows], None] | None = None
        self.evolver = evolver
        self.created_tables: list[TableDef] = []  # by evolution, for their unknown events

    def reset_plans(self) -> None:
        """Forget prepared plans, after the database or the schemas changed."""
        with self._lock:
            self._plans.clear()

    def plan(self, table: TableDef) -> RowPlan | None:
        plan = self._plans.get(table.name, False)
        if plan is False:
            live = self._live_columns(table)
            plan = None if live is None else RowPlan(table, self.dialect, live)
            with self._lock:
                self._plans[table.name] = plan
        return plan  # type: ignore[return-value]

    def process(self, msg: Message) -> Outcome:
        """The outcome of one message. Only a ``TransientError`` (the database is away)
        escapes: any other failure, even a bug here, makes a dead letter, so one bad
        message can never block a queue."""
        try:
            return self._process(msg)
        except TransientError:
            raise
        except Exception as exc:
            log.exception(
                "could not process message %s; storing it as a dead letter", msg.message_id
            )
            return Outcome(
                msg,
                Kind.DEAD_LETTER,
                event_name=msg.attributes.get("event_name"),
                error=f"internal error: {type(exc).__name__}: {exc}",
            )

    def _process(self, msg: Message) -> Outcome:
        try:
            payload = msg.payload if msg.payload is not None else parsers.decode(msg.body)
            env = parsers.open_envelope(payload, msg.attributes)
        except MessageError as exc:
            name = msg.attributes.get("event_name")
            return Outcome(msg, Kind.DEAD_LETTER, event_name=name, error=str(exc))
        self._note_renamed(msg, env)
        events = parsers.each_event(env)
        if len(events) == 1:
            return self._event(msg, env)
        return _merged(msg, env, [self._event(msg, e) for e in events])

    def _event(self, msg: Message, env: parsers.Envelope) -> Outcome:
        event_time = self._event_time(env.event_time)
        table = self.catalog.route(env.format, env.event_name)
        if table is None and self.evolver is not None and self.evolver.creates_tables:
            table = self._create_table(env)
        plan = self.plan(table) if table is not None else None
        if table is None or plan is None:
            reason = (
                "no table for this event"
                if table is None
                else f"table {table.name} is missing in the database"
            )
            return Outcome(
                msg, Kind.UNKNOWN, env.event_name, env.format, event_time=event_time, error=reason
            )
        return self._rows(msg, env, table, plan, event_time)

    def _note_renamed(self, msg: Message, env: parsers.Envelope) -> None:
        """An SQS ``event_name`` that disagrees with the body's routes by the attribute,
        as LEDbelly did; said once per pair, so a producer's mistake is seen."""
        if env.format != parsers.CANVAS or "event_name" not in msg.attributes:
            return
        inside = env.payload["metadata"].get("event_name")
        if not isinstance(inside, str) or inside == env.event_name:
            return
        pair = (env.event_name, inside)
        if pair in self._seen_renamed or len(self._seen_renamed) > 1000:
            return
        with self._lock:
            self._seen_renamed.add(pair)
        log.warning(
            "message %s: the event_name attribute %s differs from metadata.event_name %s; "
            "routed by the attribute (said once per pair)",
            safe_text(msg.message_id),
            safe_text(env.event_name),
            safe_text(inside),
        )

    def _create_table(self, env: parsers.Envelope) -> TableDef | None:
        evolver = self.evolver
        assert evolver is not None
        new = self._evolution(
            lambda: evolver.create_table(
                env.format, env.event_name, parsers.flatten(env, frozenset())
            )
        )
        if new is not None:
            with self._lock:
                self.created_tables.append(new)
        return new

    def _rows(
        self,
        msg: Message,
        env: parsers.Envelope,
        table: TableDef,
        plan: RowPlan,
        event_time: datetime | None,
    ) -> Outcome:
        collisions: list[Collision] = []
        flat = parsers.flatten(env, plan.keep, collisions)
        if collisions:
            self._log_collisions(table.name, collisions)
        if self.evolver is not None and self.evolver.adds_columns:
            table, plan, flat = self._evolve(env, table, plan, flat)
        now = self._clock.now()
        local = self._local(event_time)
        out = Outcome(
            msg, Kind.INSERTED, env.event_name, env.format, table.name, event_time=event_time
        )
        row, issues = plan.build(flat, now, local)
        if issues and self.evolver is not None and self.evolver.adds_columns:
            widened = self._widen(table, issues)
            if widened is not None:
                plan = widened
                row, issues = plan.build(flat, now, local)
        out.rows.append((table.name, row))
        self._report(table.name, issues, out)
        self._log_undefined(env.event_name, table.name, plan, flat, out)
        if self.event_rows is not None:
            self.event_rows(_BuiltEvent(self, out, plan, flat, row, issues, now, local))
        return out

    def _evolve(
        self, env: parsers.Envelope, table: TableDef, plan: RowPlan, flat: dict[str, Any]
    ) -> tuple[TableDef, RowPlan, dict[str, Any]]:
        """New fields become new columns (``schema_evolution: add_columns``)."""
        evolver = self.evolver
        assert evolver is not None
        extra = {k: flat[k] for k in plan.undefined(flat) if k not in plan.missing_in_db}
        if not extra:
            return table, plan, flat
        new = self._evolution(lambda: evolver.add_columns(table, extra))
        new_plan = self.plan(new) if new is not None else None
        if new is None or new_plan is None:
            return table, plan, flat
        return new, new_plan, parsers.flatten(env, new_plan.keep)

    def _widen(self, table: TableDef, issues: list[Issue]) -> RowPlan | None:
        """Strings widened instead of trimmed, when evolution is on."""
        evolver = self.evolver
        assert evolver is not None
        changed = None
        for issue in issues:
            if issue.kind is IssueKind.TRIM:
                widened = self._evolution(
                    partial(evolver.widen, table, issue.column, issue.supplied)
                )
                changed = widened or changed
                table = changed or table
        return self.plan(changed) if changed is not None else None

    def _evolution(self, change: Callable[[], TableDef | None]) -> TableDef | None:
        """A schema change, or None when it fails for any reason but an outage (which the
        batch's retry waits out): the row then lands as with evolution off."""
        try:
            return change()
        except TransientError:
            raise
        except Exception:
            log.exception("schema evolution failed; the row lands without the change")
            return None

    def _report(self, table: str, issues: list[Issue], out: Outcome) -> None:
        for issue in issues:
            if issue.kind is IssueKind.TRIM:
                out.truncations += 1
                self.logs.truncation(table, issue.column, issue.supplied, issue.expecting)
            else:
                self.logs.coercion(table, issue.column, issue.value, issue.reason)

    def _log_collisions(self, table: str, collisions: list[Collision]) -> None:
        """Each (table, key) collision once: the key, the path kept, the paths dropped."""
        for c in collisions:
            marker = (table, c.key)
            with self._lock:
                if marker in self._seen_collisions:
                    continue
                self._seen_collisions.add(marker)
            self.logs.collision(table, c.key, c.kept, c.dropped)

    def _log_undefined(
        self, event: str, table: str, plan: RowPlan, flat: dict[str, Any], out: Outcome
    ) -> None:
        for key in plan.new_undefined(flat):
            marker = (table, key)
            if marker in self._seen_undefined:
                continue
            with self._lock:
                if marker in self._seen_undefined:
                    continue
                self._seen_undefined.add(marker)
            out.undefined += 1
            hint = plan.missing_in_db.get(key)
            self.logs.undefined(
                event,
                table,
                key
                if not hint
                else f"{key} (column {hint} "
                "is in the schema but not in the database: run alter-tables)",
                flat[key],
            )

    def _event_time(self, raw: str | None) -> datetime | None:
        if raw is None:
            return None
        try:
            return to_datetime(raw)
        except CoercionFailed:
            return None

    def _local(self, event_time: datetime | None) -> datetime | None:
        if event_time is None:
            return None
        return self._local_times.of(event_time)


class LocalTimes:
    """Naive UTC times in one local zone (``event_time_local``; None: the server's zone).

    The zone's offset is looked up once per half hour of UTC time: offsets change (DST)
    only on whole or half hours in every zone Canvas schools are in.
    """

    def __init__(self, zone: ZoneInfo | None) -> None:
        self.zone = zone
        self._offsets: dict[int, timedelta] = {}

    def of(self, event_time: datetime) -> datetime:
        half_hour = event_time.toordinal() * 48 + event_time.hour * 2 + (event_time.minute >= 30)
        offset = self._offsets.get(half_hour)
        if offset is None:
            if len(self._offsets) > 100_000:
                self._offsets.clear()
            bucket = event_time.replace(
                minute=30 if event_time.minute >= 30 else 0, second=0, microsecond=0
            )
            local = bucket.replace(tzinfo=UTC).astimezone(self.zone)
            offset = self._offsets[half_hour] = local.utcoffset() or _NO_OFFSET
        return event_time + offset


class _MillisecondClock:
    """``processed_at``: the UTC time, read from the system once per millisecond.

    Building a datetime costs a microsecond, several percent of an event's whole cost;
    the events processed within one millisecond share one ``processed_at``.
    """

    def __init__(self) -> None:
        self._ms = -1
        self._now = datetime.now(UTC).replace(tzinfo=None)

    def now(self) -> datetime:
        ms = int(time.time() * 1000)
        if ms != self._ms:
            self._now = datetime.now(UTC).replace(tzinfo=None)
            self._ms = ms
        return self._now


_NO_OFFSET = timedelta(0)


def _merged(msg: Message, env: parsers.Envelope, parts: list[Outcome]) -> Outcome:
    """The outcome of an envelope of several events: all their rows, or, if one of them
    cannot land, the whole message parked (unknown or dead letter) to be replayed whole."""
    for kind in (Kind.DEAD_LETTER, Kind.UNKNOWN):
        failed = next((o for o in parts if o.kind == kind), None)
        if failed is not None:
            n = len(parts)
            return Outcome(
                msg,
                kind,
                failed.event_name,
                env.format,
                event_time=failed.event_time,
                error=f"event {parts.index(failed) + 1} of {n}: {failed.error}",
            )
    first = parts[0]
    return Outcome(
        msg,
        Kind.INSERTED,
        first.event_name,
        env.format,
        first.table,
        rows=[row for o in parts for row in o.rows],
        event_time=first.event_time,
        truncations=sum(o.truncations for o in parts),
        undefined=sum(o.undefined for o in parts),
    )


class _BuiltEvent:
    """An event whose own row is built, offered to the extensions (``EventRows``).

    A row added for another table is built from the values the event's row already
    converted (``RowPlan.build_after``), and its trims count as the event's.
    """

    __slots__ = ("_flat", "_issues", "_local", "_now", "_out", "_plan", "_processor", "_row")

    def __init__(
        self,
        processor: Processor,
        out: Outcome,
        plan: RowPlan,
        flat: dict[str, Any],
        row: dict[str, Any],
        issues: list[Issue],
        now: datetime,
        local: datetime | None,
    ) -> None:
        self._processor, self._out, self._plan, self._flat = processor, out, plan, flat
        self._row, self._issues, self._now, self._local = row, issues, now, local

    @property
    def format(self) -> str:
        return self._out.format or ""

    @property
    def event_name(self) -> str:
        return self._out.event_name or ""

    def add_row(self, table: TableDef) -> None:
        plan = self._processor.plan(table)
        if plan is None:
            return  # the table is not in the database: nothing to add
        row, issues = plan.build_after(
            self._plan, self._flat, self._row, self._issues, self._now, self._local
        )
        self._out.rows.append((table.name, row))
        self._processor._report(table.name, issues, self._out)

    def mark(self) -> int:
        return len(self._out.rows)

    def undo(self, mark: int) -> None:
        del self._out.rows[mark:]
