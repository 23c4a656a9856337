"""The morning report over ``log/``, and emptying it safely while the daemon runs.

``summarize_logs`` replaces LEDbelly's ``reduce_logs``: it reads every log file and its
rotated copies (``name.5`` ... ``name.1``, then ``name``) and reduces thousands of lines
to one line per thing to fix, each naming the command that fixes it. ``reset_logs``
replaces ``reset_logs``: the daemon holds its files open in append mode, so each file is
truncated in place (the daemon's next line lands at the start of the emptied file) and
the rotated copies, which nobody holds open, are removed.

Both are pure functions over a directory; ``render_summary`` turns the result into text.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ledbelly.ops.logs import (
    ALL_FILES,
    COERCIONS,
    ERRORS,
    RECOVERY_JSONL,
    SCHEMA_CHANGES,
    TRUNCATIONS,
    UNDEFINED,
)

_STAMP = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?Z"
_TRUNCATION = re.compile(
    rf"^(?P<at>{_STAMP}) (?P<table>[^.\s]+)\.(?P<column>\S+) supplied (?P<supplied>\d+), "
    r"expecting (?P<expecting>\d+)\s*$"
)
_COERCION = re.compile(
    rf"^(?P<at>{_STAMP}) (?P<table>[^.\s]+)\.(?P<column>\S+) stored NULL: (?P<reason>.*?); "
    r"value (?P<value>.*)$"
)
_COLLISION = re.compile(
    rf"^(?P<at>{_STAMP}) (?P<table>[^.\s]+)\.(?P<key>\S+) collision: kept (?P<kept>.*?), "
    r"dropped (?P<dropped>.*)$"
)
_ERROR_HEAD = re.compile(rf"^---(?P<event>.*)--- (?P<at>{_STAMP})$")
_MISSING_IN_DB = re.compile(
    r"^(?P<field>\S+) \(column (?P<column>\S+) is in the schema but "
    r"not in the database"
)
_LONG_NUMBER = re.compile(r"\d{5,}")
_JSON_POSITION = re.compile(r"line \d+ column \d+ \(char \d+\)")
_SQL_TAIL = re.compile(r"\s*\[SQL: .*$|\s*\(Background on this error.*$")

SUGGEST = "ledbelly schema suggest"
ALTER = "ledbelly alter-tables --apply"


@dataclass(frozen=True)
class Truncation:
    """Strings cut to fit one column: how often, the longest value seen, the column size."""

    table: str
    column: str
    count: int
    longest: int
    expecting: int


@dataclass(frozen=True)
class UndefinedField:
    """A payload field the schema (or the database) lacks, with one value seen."""

    event_name: str
    table: str | None
    field: str
    count: int
    sample: str
    missing_column: str | None = None  # in the schema but not yet in the database


@dataclass(frozen=True)
class Coercion:
    """Values that could not become one column's type and were stored as NULL."""

    table: str
    column: str
    count: int
    reasons: tuple[str, ...]
    sample: str


@dataclass(frozen=True)
class DeadLetterGroup:
    """Dead letters with the same error, and the event types they came from."""

    error: str
    count: int
    event_names: tuple[tuple[str, int], ...]


@dataclass(frozen=True)
class UnknownType:
    """Stored unknown events of one type (read from the database, not the logs)."""

    event_name: str
    count: int


@dataclass
class LogSummary:
    """Everything ``summarize_logs`` found in one log directory."""

    directory: Path
    files: list[Path] = field(default_factory=list)
    truncations: list[Truncation] = field(default_factory=list)
    undefined: list[UndefinedField] = field(default_factory=list)
    coercions: list[Coercion] = field(default_factory=list)
    collisions: list[str] = field(default_factory=list)  # "table.key: kept X, dropped Y"
    dead_letters: list[DeadLetterGroup] = field(default_factory=list)
    recovery_messages: int = 0
    schema_changes: int = 0
    unreadable_lines: int = 0
    unknown: list[UnknownType] | None = None  # None: the database was not asked

    @property
    def dead_letter_count(self) -> int:
        return sum(g.count for g in self.dead_letters)


@dataclass
class ResetResult:
    """What ``reset_logs`` did: files emptied in place, rotated copies removed."""

    truncated: list[Path] = field(default_factory=list)
    removed: list[Path] = field(default_factory=list)
    freed_bytes: int = 0


# ----- reading ---------------------------------------------------------------------------


def log_paths(directory: Path, name: str) -> list[Path]:
    """A log file's existing copies, oldest first: ``name.5`` ... ``name.1``, ``name``."""
    rotated = [p for p in directory.glob(name + ".*") if p.suffix[1:].isdigit()]
    rotated.sort(key=lambda p: -int(p.suffix[1:]))
    current = directory / name
    return [p for p in [*rotated, current] if p.is_file()]


def _lines(paths: Iterable[Path]) -> Iterator[str]:
    for path in paths:
        with path.open(encoding="utf-8", errors="replace") as f:
            for line in f:
                yield line.rstrip("\n")


def summarize_logs(directory: Path, unknown: Sequence[UnknownType] | None = None) -> LogSummary:
    """Reduce every log in ``directory`` (with rotated copies) to what needs fixing.

    ``unknown`` is the count of stored unknown events by type, which only the database
    holds (``db_report.unknown_event_counts``); None says it was not read.
    """
    summary = LogSummary(directory=directory, unknown=None if unknown is None else list(unknown))
    for name in ALL_FILES:
        summary.files += log_paths(directory, name)
    summary.truncations = _truncations(log_paths(directory, TRUNCATIONS), summary)
    summary.undefined = _undefined(log_paths(directory, UNDEFINED), summary)
    summary.coercions = _coercions(log_paths(directory, COERCIONS), summary)
    summary.dead_letters = _dead_letters(log_paths(directory, ERRORS))
    summary.recovery_messages = sum(
        1 for line in _lines(log_paths(directory, RECOVERY_JSONL)) if line.strip()
    )
    summary.schema_changes = sum(
        1 for line in _lines(log_paths(directory, SCHEMA_CHANGES)) if line.strip()
    )
    return summary


def _truncations(paths: list[Path], summary: LogSummary) -> list[Truncation]:
    seen: dict[tuple[str, str], list[int]] = {}  # count, longest, expecting
    for line in _lines(paths):
        m = _TRUNCATION.match(line)
        if m is None:
            summary.unreadable_lines += bool(line.strip())
            continue
        entry = seen.setdefault((m["table"], m["column"]), [0, 0, 0])
        entry[0] += 1
        entry[1] = max(entry[1], int(m["supplied"]))
        entry[2] = int(m["expecting"])  # the newest line tells the column's size now
    return [
        Truncation(t, c, n, longest, expecting)
        for (t, c), (n, longest, expecting) in sorted(seen.items())
    ]


def _undefined(paths: list[Path], summary: LogSummary) -> list[UndefinedField]:
    seen: dict[tuple[str, str | None, str], list[object]] = {}  # count, sample, missing
    for line in _lines(paths):
        try:
            entry = json.loads(line)
            event, table, raw_field = (
                str(entry["event_name"]),
                entry.get("table"),
                str(entry["field"]),
            )
        except (ValueError, KeyError, TypeError):
            summary.unreadable_lines += bool(line.strip())
            continue
        missing = _MISSING_IN_DB.match(raw_field)
        name = missing["field"] if missing else raw_field
        item = seen.setdefault((event, None if table is None else str(table), name), [0, "", None])
        item[0] = int(str(item[0])) + 1
        sample = entry.get("sample")
        item[1] = sample if isinstance(sample, str) else json.dumps(sample)
        if missing:
            item[2] = missing["column"]
    return [
        UndefinedField(
            event, table, name, int(str(n)), str(sample), None if missing is None else str(missing)
        )
        for (event, table, name), (n, sample, missing) in sorted(
            seen.items(), key=lambda kv: (kv[0][0], str(kv[0][1]), kv[0][2])
        )
    ]


def _coercions(paths: list[Path], summary: LogSummary) -> list[Coercion]:
    seen: dict[tuple[str, str], tuple[int, Counter[str], str]] = {}
    for line in _lines(paths):
        m = _COERCION.match(line)
        if m is None:
            hit = _COLLISION.match(line)
            if hit is not None:
                text = f"{hit['table']}.{hit['key']}: kept {hit['kept']}, dropped {hit['dropped']}"
                if text not in summary.collisions:
                    summary.collisions.append(text)
            else:
                summary.unreadable_lines += bool(line.strip())
            continue
        key = (m["table"], m["column"])
        count, reasons, _sample = seen.get(key, (0, Counter(), ""))
        reasons[m["reason"]] += 1
        seen[key] = (count + 1, reasons, m["value"])
    return [
        Coercion(t, c, n, tuple(r for r, _ in reasons.most_common()), sample)
        for (t, c), (n, reasons, sample) in sorted(seen.items())
    ]


def error_kind(error: str) -> str:
    """An error's first line without the statement and the ids that differ per message."""
    # sql-errors.log writes each part as one escaped line: a newline in it reads "\\n".
    first = error.strip().splitlines()[0].split("\\n")[0] if error.strip() else "(no error text)"
    first = _SQL_TAIL.sub("", first)
    first = _JSON_POSITION.sub("line N column N (char N)", _LONG_NUMBER.sub("N", first))
    return first if len(first) <= 160 else first[:157] + "..."


def _dead_letters(paths: list[Path]) -> list[DeadLetterGroup]:
    groups: dict[str, Counter[str]] = {}
    event: str | None = None
    error_lines: list[str] = []
    for line in _lines(paths):
        head = _ERROR_HEAD.match(line)
        if head is not None:
            event, error_lines = head["event"], []
        elif event is not None and line == "------ sql":
            groups.setdefault(error_kind("\n".join(error_lines)), Counter())[event] += 1
            event = None
        elif event is not None:
            error_lines.append(line)
    ordered = sorted(groups.items(), key=lambda kv: (-sum(kv[1].values()), kv[0]))
    return [
        DeadLetterGroup(
            error,
            sum(events.values()),
            tuple(sorted(events.items(), key=lambda kv: (-kv[1], kv[0]))),
        )
        for error, events in ordered
    ]


# ----- rendering -------------------------------------------------------------------------


def _quote(text: str, limit: int = 60) -> str:
    one_line = " ".join(text.split())
    return one_line if len(one_line) <= limit else one_line[: limit - 3] + "..."


def _n(count: int, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


def render_summary(summary: LogSummary, log_dir: str | None = None) -> str:
    """The report as text: a heading per kind, one line per thing with the command to run.

    ``log_dir`` is the directory as the user named it, for the commands shown.
    """
    where = log_dir if log_dir is not None else str(summary.directory)
    opt = "" if where in ("log", "log/") else f" --log-dir {where}"
    out = [f"log summary of {where}: {_n(len(summary.files), 'file')} read"]

    cuts = sum(t.count for t in summary.truncations)
    out.append(f"truncations: {_n(cuts, 'value')} cut in {_n(len(summary.truncations), 'column')}")
    for t in summary.truncations:
        out.append(
            f"  {t.table}.{t.column}: {t.count} cut, longest {t.longest}, column holds "
            f"{t.expecting}; fix: {SUGGEST}{opt} (then schema apply, {ALTER})"
        )

    events = sorted({u.event_name for u in summary.undefined})
    out.append(
        f"undefined fields: {_n(len(summary.undefined), 'field')} in "
        f"{_n(len(events), 'event type')}"
    )
    for event in events:
        fields = [u for u in summary.undefined if u.event_name == event]
        table = fields[0].table or "no table"
        out.append(f"  {event} ({table}): {_n(len(fields), 'field')}")
        for u in fields:
            seen = f"seen in {_n(u.count, 'run')}"
            if u.missing_column:
                fix = (
                    f"column {u.missing_column} is in schemas/ but not in the database; "
                    f"fix: {ALTER}"
                )
            else:
                fix = f"fix: {SUGGEST}{opt}"
            out.append(f"    {u.field} = {_quote(u.sample)} ({seen}); {fix}")

    nulls = sum(c.count for c in summary.coercions)
    out.append(
        f"coercions: {_n(nulls, 'value')} stored as NULL in {_n(len(summary.coercions), 'column')}"
    )
    for c in summary.coercions:
        out.append(
            f"  {c.table}.{c.column}: {c.count} NULL ({'; '.join(c.reasons[:2])}), "
            f"e.g. {_quote(c.sample, 40)}; fix: if the column's type is wrong, change "
            f"it in schemas/ and run {ALTER}"
        )

    if summary.collisions:
        out.append(
            f"key collisions: {_n(len(summary.collisions), 'key')} where two payload "
            "paths flatten to one column"
        )
        out += [
            f"  {c}; fix: give one path its own column in schemas/ (source:)"
            for c in summary.collisions
        ]

    if summary.unknown is None:
        out.append("unknown event types: not in the logs; add --db URL to count the stored ones")
    else:
        total = sum(u.count for u in summary.unknown)
        out.append(
            f"unknown event types: {_n(total, 'event')} of "
            f"{_n(len(summary.unknown), 'type')} stored in ledbelly_unknown_events"
        )
        for kind in summary.unknown:
            out.append(
                f"  {kind.event_name}: {kind.count}; fix: {SUGGEST}{opt} (proposes a table "
                f"for it; then schema apply, {ALTER})"
            )

    out.append(
        f"dead letters: {summary.dead_letter_count} in {ERRORS}, "
        f"{summary.recovery_messages} replayable in {RECOVERY_JSONL}"
    )
    replay = "ledbelly replay --dead-letters"
    for g in summary.dead_letters:
        names = ", ".join(f"{n} {k}" for n, k in g.event_names[:5])
        more = f", {len(g.event_names) - 5} more types" if len(g.event_names) > 5 else ""
        out.append(f"  {g.count} x {g.error} ({names}{more}); fix the cause, then replay: {replay}")
    if summary.schema_changes:
        out.append(
            f"schema changes: {summary.schema_changes} made by schema evolution "
            f"({SCHEMA_CHANGES}); review schemas.local/ with {SUGGEST}{opt}"
        )
    if summary.unreadable_lines:
        out.append(f"note: {summary.unreadable_lines} lines in an unknown format were skipped")
    return "\n".join(out) + "\n"


# ----- reset -----------------------------------------------------------------------------


def reset_logs(directory: Path) -> ResetResult:
    """Empty the logs while the daemon may be writing them.

    The daemon keeps each file open in append mode, so unlinking it would send the
    daemon's lines to a file nobody can see. Each current file is truncated in place
    instead (an O_APPEND writer's next line lands at offset 0 of the emptied file); the
    rotated copies ``name.1`` ... are closed files and are removed.
    """
    result = ResetResult()
    for name in ALL_FILES:
        for path in log_paths(directory, name):
            size = path.stat().st_size
            if path.name == name:
                with path.open("r+b") as f:
                    f.truncate(0)
                result.truncated.append(path)
            else:
                path.unlink(missing_ok=True)
                result.removed.append(path)
            result.freed_bytes += size
    return result


def render_reset(result: ResetResult) -> str:
    lines = [f"emptied {p}" for p in result.truncated]
    lines += [f"removed {p}" for p in result.removed]
    lines.append(f"freed {result.freed_bytes:,} bytes" if lines else "no log files to reset")
    return "\n".join(lines) + "\n"
