"""Stage three: committing outcomes to the database, exactly once per message.

Each batch is one transaction holding the event rows, the stream rows, the stored
unknown events, the dead letters and a ledger entry per message. A message already in
the ledger is skipped, so redelivery inserts nothing twice. A row the database refuses
for its content never takes its batch down: the batch is split until the bad message is
alone, and that one becomes a dead letter. A message the database will not take even as
a dead letter is reported apart (``Unstorable``) while the rest of its batch commits.

Several writers (threads, processes, daemons on other hosts) may hold the same message
at once: SQS delivers at least once. The ledger's primary key settles it. On PostgreSQL
the claim is ``ON CONFLICT DO NOTHING``; elsewhere the ledger is checked, then written
first in the transaction, and a duplicate key there means another writer committed the
message meanwhile: the transaction is tried again and the ledger now shows it as a
duplicate. Ledger rows go in message-id order, so two writers never wait on each other
in a circle (a deadlock) over the ledger.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Table, delete, insert, literal, select
from sqlalchemy import exc as sa_exc
from sqlalchemy.dialects import mssql
from sqlalchemy.engine import Dialect

from ledbelly.db.bulk import (
    SMALL_TABLE_ROWS,
    RenderedRows,
    copy_rendered,
    copy_rows,
    insert_values,
    inserter_for,
    render_ahead,
    send_together,
)
from ledbelly.db.errors import classify_db_error
from ledbelly.db.live import LiveTables
from ledbelly.db.tables import DEAD_LETTERS, LEDGER
from ledbelly.db.tables import UNKNOWN as UNKNOWN_TABLE
from ledbelly.errors import LedbellyError, PermanentError, TransientError
from ledbelly.message import Message, sqs_form
from ledbelly.ops.logs import EventLogs
from ledbelly.outcome import Kind, Outcome
from ledbelly.text import safe_text
from ledbelly.transform.coerce import clean_text

# A batch that meets other writers' messages in the ledger this many times in a row is
# retried later, as a transient fault; once is the rule, a second time is rare.
LEDGER_RACE_TRIES = 5

# After a batch met messages already in the ledger, this many batches claim first (the
# duplicates of a redelivery or a file ingested again come in runs) before the next
# batch again expects to be all new.
CLAIM_AFTER_CONFLICT = 16


@dataclass
class WriteReport:
    """What one ``Sink.write`` committed: outcomes (final kinds) and duplicates skipped.

    ``unstored``: messages the database refused even as dead letters (their error says
    why); nothing of them committed, and they are not in ``messages``.
    """

    committed: list[Outcome] = field(default_factory=list)
    duplicates: list[Message] = field(default_factory=list)
    unstored: list[Outcome] = field(default_factory=list)

    @property
    def messages(self) -> list[Message]:
        """Every message now accounted for in the database, safe to acknowledge."""
        return [o.message for o in self.committed] + self.duplicates


class Unstorable(PermanentError):
    """Some messages could not be stored even as dead letters; the rest of the batch
    committed, and ``report`` says what did (and, in ``unstored``, what did not)."""

    def __init__(self, report: WriteReport) -> None:
        first = report.unstored[0]
        super().__init__(
            f"cannot even store a dead letter for {len(report.unstored)} message(s), "
            f"e.g. {first.message.message_id}: {first.error}"
        )
        self.report = report


# A batch's COPY text by table, rendered ahead (``Sink.prepare``).
Prepared = dict[str, RenderedRows]


class _LedgerRace(Exception):
    """The ledger insert met a message id another writer committed after our check."""


class Sink:
    """Batched, transactional writes into one database's live tables."""

    def __init__(self, tables: LiveTables, logs: EventLogs) -> None:
        self.tables = tables
        self.engine = tables.engine
        self.logs = logs
        self.dialect = tables.dialect
        self._bulk = inserter_for(self.dialect, self.engine.dialect.driver)
        self._claims_with_returning = (
            self.dialect == "postgresql" and self.engine.dialect.driver == "psycopg2"
        )
        self._claim_next = 0  # batches left to claim first since the last conflict

    # ----- writing ------------------------------------------------------------------------

    def prepare(self, outcomes: Sequence[Outcome]) -> Prepared:
        """The batch's rows as COPY text, made now, in the caller's thread (PostgreSQL).

        ``ingest`` calls it where it parses, so the next batch's text is made while the
        writer's thread waits on the database for this one's, instead of the database
        waiting for the text. ``write`` uses a table's text only if it is to insert
        exactly those rows (all fresh, no rows added since); else it renders again.
        """
        if self._bulk is not copy_rows:
            return {}
        by_table: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for o in outcomes:
            if o.kind == Kind.INSERTED:
                for name, values in o.rows:
                    by_table[name].append(values)
        prepared: Prepared = {}
        for name, rows in by_table.items():
            rendered = render_ahead(self.tables.table_by_name(name), rows)
            if rendered is not None:
                prepared[name] = rendered
        return prepared

    def write(
        self, outcomes: Sequence[Outcome], replay: bool = False, prepared: Prepared | None = None
    ) -> WriteReport:
        """Commit a batch; ``TransientError`` (nothing committed) if the database is away,
        ``Unstorable`` (the rest committed; ``.report``) for what not even a dead letter holds.

        With ``replay`` a message the ledger holds as a dead letter or an unknown event is
        written again: its parked row and ledger entry are replaced, in the same
        transaction, by what it is now (rows, or parked again with one more attempt).
        Live traffic never replays: a poison message redelivered stays where it is.
        """
        report = WriteReport()
        if outcomes:
            self._write(list(outcomes), report, replay, prepared or {})
        if report.unstored:
            raise Unstorable(report)
        return report

    def _write(
        self, outcomes: list[Outcome], report: WriteReport, replay: bool, prepared: Prepared
    ) -> None:
        try:
            fresh, dups = self._transaction(outcomes, replay, prepared)
        except Exception as exc:  # classified: transient ones are retried, never dead letters
            err = classify_db_error(exc)
            if isinstance(err, TransientError):
                raise err from exc
            if len(outcomes) == 1:
                self._dead_letter_alone(outcomes[0], err, exc, report, replay)
                return
            mid = len(outcomes) // 2
            self._write(outcomes[:mid], report, replay, prepared)
            self._write(outcomes[mid:], report, replay, prepared)
            return
        report.committed.extend(fresh)
        report.duplicates.extend(dups)
        for o in fresh:
            if o.kind == Kind.DEAD_LETTER:
                self.log_dead_letter(o, None, o.rows)

    def _transaction(
        self, outcomes: list[Outcome], replay: bool, prepared: Prepared
    ) -> tuple[list[Outcome], list[Message]]:
        """The batch's one transaction: fresh outcomes written, duplicates found."""
        if self._claims_with_returning and not replay:
            if self._claim_next:
                self._claim_next -= 1
            else:
                try:
                    return self._all_new(outcomes, prepared)
                except _LedgerRace:
                    self._claim_next = CLAIM_AFTER_CONFLICT  # rolled back: claim instead
        for _ in range(LEDGER_RACE_TRIES):
            try:
                with self.engine.begin() as conn:
                    if self._claims_with_returning and not replay:
                        fresh, dups = self._claim(conn, outcomes)
                        self._insert(conn, fresh, ledger_done=True, prepared=prepared)
                    else:
                        fresh, dups, attempts = self._dedupe(conn, outcomes, replay)
                        self._insert(conn, fresh, attempts=attempts)
                return fresh, dups
            except _LedgerRace:
                continue  # rolled back; the ledger now shows the other writer's messages
        raise TransientError("the ledger kept meeting messages other writers committed")

    def _all_new(
        self, outcomes: list[Outcome], prepared: Prepared
    ) -> tuple[list[Outcome], list[Message]]:
        """PostgreSQL, expecting no message of the batch in the ledger yet (the rule):
        its ledger rows go in by plain COPY (small batches: in the one round trip of the
        rows' INSERTs), with no ``ON CONFLICT`` check per row, which cost PostgreSQL
        twice the COPY's time. A message already there fails the ledger's key, the
        transaction rolls back with nothing written, and ``_LedgerRace`` says so."""
        fresh, dups = _first_of_each(outcomes, {o.message.message_id for o in outcomes})
        with self.engine.begin() as conn:
            self._insert(conn, fresh, prepared=prepared)
        return fresh, dups

    def _claim(
        self, conn: Connection, outcomes: list[Outcome]
    ) -> tuple[list[Outcome], list[Message]]:
        """PostgreSQL: write the ledger first, ``ON CONFLICT DO NOTHING RETURNING``.

        One round trip both records the batch and finds the messages already recorded;
        a concurrent writer with the same message waits for ours and then skips it. The
        batch travels as one array per column (``unnest``), which psycopg2 quotes in C,
        not as a VALUES row per message.
        """
        now = _now()
        rows = sorted((_ledger_row(o, now) for o in outcomes), key=_by_message_id)
        raw: Any = conn.connection.dbapi_connection
        cur = raw.cursor()
        try:
            cur.execute(
                f"INSERT INTO {LEDGER} (message_id, event_name, target_table, outcome, "
                "processed_at) SELECT m, e, t, o, %s FROM unnest(%s::text[], %s::text[], "
                "%s::text[], %s::text[]) AS b(m, e, t, o) "
                "ON CONFLICT (message_id) DO NOTHING RETURNING message_id",
                (
                    now,
                    [r["message_id"] for r in rows],
                    [r["event_name"] for r in rows],
                    [r["target_table"] for r in rows],
                    [r["outcome"] for r in rows],
                ),
            )
            claimed = {r[0] for r in cur.fetchall()}
        finally:
            cur.close()
        return _first_of_each(outcomes, claimed)

    def _dedupe(
        self, conn: Connection, outcomes: list[Outcome], replay: bool = False
    ) -> tuple[list[Outcome], list[Message], dict[str, int]]:
        """Fresh outcomes, duplicates, and (replaying) the attempts of parked messages,
        whose parked rows and ledger entries are deleted here to be written anew."""
        ledger = self.tables.system[LEDGER]
        ids = list({o.message.message_id for o in outcomes})
        seen: dict[str, str] = {}
        for chunk in _chunks(ids):
            seen.update(
                conn.execute(
                    select(ledger.c.message_id, ledger.c.outcome).where(
                        ledger.c.message_id.in_(chunk)
                    )
                ).all()
            )
        parked = [m for m, kind in seen.items() if replay and kind != Kind.INSERTED.value]
        attempts = self._unpark(conn, parked) if parked else {}
        return (*_first_of_each(outcomes, set(ids) - set(seen) | set(parked)), attempts)

    def _unpark(self, conn: Connection, ids: list[str]) -> dict[str, int]:
        """Remove parked messages' rows and ledger entries; how often each was tried."""
        tried: dict[str, int] = {}
        for name in (DEAD_LETTERS, UNKNOWN_TABLE, LEDGER):
            table = self.tables.system[name]
            for chunk in _chunks(ids):
                if name != LEDGER:
                    for mid, n in conn.execute(
                        select(table.c.message_id, table.c.attempts).where(
                            table.c.message_id.in_(chunk)
                        )
                    ):
                        tried[mid] = max(tried.get(mid, 0), n or 1)
                conn.execute(delete(table).where(table.c.message_id.in_(chunk)))
        return tried

    def _insert(
        self,
        conn: Connection,
        outcomes: list[Outcome],
        ledger_done: bool = False,
        attempts: dict[str, int] | None = None,
        prepared: Prepared | None = None,
    ) -> None:
        now = _now()
        together: list[bytes] = []  # small tables' INSERTs, sent in one round trip
        if not ledger_done:  # first: a race with another writer shows before any other work
            ledger = sorted((_ledger_row(o, now) for o in outcomes), key=_by_message_id)
            ledger_table = self.tables.system[LEDGER]
            if self._bulk is copy_rows and len(ledger) < SMALL_TABLE_ROWS:
                together.extend(insert_values(conn, ledger_table, ledger))
            else:
                try:
                    self.insert_rows(conn, ledger_table, ledger)
                except Exception as exc:
                    if _duplicate_key(exc):
                        raise _LedgerRace from exc
                    raise
        tried = attempts or {}
        by_table: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for o in outcomes:
            if o.kind == Kind.UNKNOWN:
                row = _unknown_row(o, now)
            elif o.kind == Kind.DEAD_LETTER:
                row = _dead_letter_row(o, o.error or "", now)
            else:
                for name, values in o.rows:
                    by_table[name].append(values)
                continue
            row["attempts"] = tried.get(o.message.message_id, 0) + 1
            row["last_attempt_at"] = now
            by_table[UNKNOWN_TABLE if o.kind == Kind.UNKNOWN else DEAD_LETTERS].append(row)
        for name, rows in by_table.items():
            table = self.tables.table_by_name(name)
            ahead = prepared.get(name) if prepared else None
            if ahead is not None and ahead.matches(table, rows):
                copy_rendered(conn, ahead)
            elif self._bulk is copy_rows and len(rows) < SMALL_TABLE_ROWS:
                together.extend(insert_values(conn, table, rows))
            else:
                self.insert_rows(conn, table, rows)
        try:
            send_together(conn, together)
        except Exception as exc:
            if not ledger_done and _ledger_key_violated(exc):
                raise _LedgerRace from exc
            raise

    def insert_rows(self, conn: Connection, table: Table, rows: list[dict[str, Any]]) -> None:
        """One bulk insert per table (COPY on PostgreSQL); rows of one table share keys."""
        if rows:
            self._bulk(conn, table, rows)

    # ----- dead letters -------------------------------------------------------------------

    def _dead_letter_alone(
        self,
        outcome: Outcome,
        err: LedbellyError,
        exc: BaseException,
        report: WriteReport,
        replay: bool,
    ) -> None:
        """One message the database refused: store it as a dead letter, with its reason."""
        failed_rows = outcome.rows
        reason = f"database refused the row: {err}"
        dead = Outcome(
            outcome.message,
            Kind.DEAD_LETTER,
            outcome.event_name,
            outcome.format,
            outcome.table,
            event_time=outcome.event_time,
            error=reason,
        )
        attempt = races = 0
        while True:
            try:
                with self.engine.begin() as conn:
                    fresh, dups, tried = self._dedupe(conn, [dead], replay)
                    if dups:
                        report.duplicates.extend(dups)
                        return
                    if attempt:
                        dead.message = _unstorable_copy(outcome.message)
                    self._insert(conn, fresh, attempts=tried)
                break
            except _LedgerRace:
                races += 1
                if races >= LEDGER_RACE_TRIES:
                    raise TransientError("the ledger kept meeting this message") from None
            except Exception as again:
                second = classify_db_error(again)
                if isinstance(second, TransientError):
                    raise second from again
                if attempt:  # not even as a dead letter: the caller holds it back
                    dead.message = outcome.message
                    dead.error = f"{reason}; not storable as a dead letter either: {second}"
                    report.unstored.append(dead)
                    return
                attempt = 1
        dead.message = outcome.message
        report.committed.append(dead)
        self.log_dead_letter(dead, getattr(exc, "statement", None), failed_rows)

    def log_dead_letter(
        self,
        outcome: Outcome,
        statement: str | None = None,
        rows: list[tuple[str, dict[str, Any]]] | None = None,
    ) -> None:
        """The one place a dead letter is logged: its error, and its message for replay."""
        rows = rows or []
        msg = outcome.message
        sql = self._recovery_sql(rows) if rows else None
        self.logs.error(
            outcome.event_name or "?",
            outcome.error or "",
            statement,
            {name: row for name, row in rows} if rows else msg.body[:2000],
        )
        self.logs.recovery(sqs_form(msg), sql)

    def _recovery_sql(self, rows: list[tuple[str, dict[str, Any]]]) -> str:
        """The refused INSERTs as a DBA would run them in the database's own client."""
        return "\n".join(
            recovery_statement(self.tables.table_by_name(name), row, self.engine.dialect)
            for name, row in rows
        )


def recovery_statement(table: Table, row: dict[str, Any], dialect: Dialect) -> str:
    """One INSERT with its values written out, executable as it stands.

    SQLAlchemy writes ``%`` as ``%%`` for drivers that use ``%s`` parameters; a client
    running the file has no parameters, so it is undone (Canvas URLs are full of ``%``).
    MSSQL reads a plain ``'...'`` literal in the server's code page, so strings are
    written ``N'...'``.
    """
    if dialect.name == "mssql":
        row = {k: literal(v, mssql.NVARCHAR()) if isinstance(v, str) else v for k, v in row.items()}
    try:
        sql = str(
            insert(table)
            .values(**row)
            .compile(dialect=dialect, compile_kwargs={"literal_binds": True})
        )
    except (sa_exc.SQLAlchemyError, NotImplementedError, TypeError, ValueError):
        return f"-- {table.name}: {safe_text(repr(row))}"
    if dialect.paramstyle in ("format", "pyformat"):
        sql = sql.replace("%%", "%")
    return sql + ";"


def _by_message_id(row: dict[str, Any]) -> str:
    return str(row["message_id"])


def _duplicate_key(exc: BaseException) -> bool:
    """A unique-key violation, in any driver's words (the ledger's only key is its id)."""
    orig = getattr(exc, "orig", None) or exc
    code = getattr(orig, "pgcode", None) or getattr(orig, "sqlstate", None)
    if isinstance(code, str) and code:
        return code == "23505"  # PostgreSQL's unique_violation
    args = getattr(orig, "args", ())
    if args and isinstance(args[0], int) and not isinstance(args[0], bool):
        return args[0] in (1062, 1586)  # MySQL/MariaDB: duplicate entry for key
    text = str(orig).lower()  # SQLite, MSSQL, Oracle (ORA-00001: unique constraint)
    return "unique constraint" in text or "duplicate key" in text


def _ledger_key_violated(exc: BaseException) -> bool:
    """A duplicate in the ledger, not in an event table (psycopg2 names the table)."""
    orig = getattr(exc, "orig", None) or exc
    diag = getattr(orig, "diag", None)
    return _duplicate_key(exc) and getattr(diag, "table_name", None) == LEDGER


def _chunks(ids: list[str], size: int = 900) -> list[list[str]]:
    """Lists short enough for an ``IN (...)`` on every database (SQLite allows 999)."""
    return [ids[i : i + size] for i in range(0, len(ids), size)]


def _first_of_each(
    outcomes: list[Outcome], new_ids: set[str]
) -> tuple[list[Outcome], list[Message]]:
    """Split a batch: the first outcome of each id in ``new_ids`` is fresh, all else a
    duplicate (already in the ledger, or repeated within the batch)."""
    fresh: list[Outcome] = []
    dups: list[Message] = []
    for o in outcomes:
        mid = o.message.message_id
        if mid in new_ids:
            new_ids.discard(mid)
            fresh.append(o)
        else:
            dups.append(o.message)
    return fresh, dups


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def _name(value: str | None) -> str | None:
    return None if value is None else clean_text(value)[:255]


def _ledger_row(o: Outcome, now: datetime) -> dict[str, Any]:
    return {
        "message_id": o.message.message_id,
        "event_name": _name(o.event_name),
        "target_table": o.table if o.kind != Kind.UNKNOWN else None,
        "outcome": o.kind.value,
        "processed_at": now,
    }


def _unknown_row(o: Outcome, now: datetime) -> dict[str, Any]:
    return {
        "message_id": o.message.message_id,
        "event_name": _name(o.event_name),
        "format": o.format,
        "event_time": o.event_time,
        "received_at": now,
        "reason": _name(o.error),
        "raw_body": clean_text(o.message.body),
    }


def _dead_letter_row(o: Outcome, error: str, now: datetime) -> dict[str, Any]:
    return {
        "message_id": o.message.message_id,
        "event_name": _name(o.event_name),
        "error": clean_text(error),
        "raw_body": clean_text(o.message.body),
        "failed_at": now,
    }


def _unstorable_copy(msg: Message) -> Message:
    """A stand-in body for a dead letter whose own body the database will not take."""
    from ledbelly.message import body_hash

    note = f"(body not storable; {body_hash(msg.body)}; see log/sql-recovery.jsonl)"
    return Message(
        msg.message_id,
        note,
        dict(msg.attributes),
        handle=msg.handle,
        queue=msg.queue,
        received_at=msg.received_at,
    )
