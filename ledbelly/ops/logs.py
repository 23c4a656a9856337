"""The operator's log files under ``log/``: bounded, rotated, one concern each.

LEDbelly appended to these without bound; here every file rotates by size and keeps a
fixed number of old copies. Each ``EventLogs`` owns its handlers (no global loggers), so
two pipelines with different log directories never mix lines.
"""

from __future__ import annotations

import logging
import logging.handlers
import os
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ledbelly.text import safe_text
from ledbelly.transform.coerce import json_text

TRUNCATIONS = "sql-truncations.log"
UNDEFINED = "ddl-undefined.log"
COERCIONS = "data-coercions.log"
ERRORS = "sql-errors.log"
RECOVERY_JSONL = "sql-recovery.jsonl"
RECOVERY_SQL = "sql-recovery.sql"
SCHEMA_CHANGES = "schema-changes.log"
ALL_FILES = (
    TRUNCATIONS,
    UNDEFINED,
    COERCIONS,
    ERRORS,
    RECOVERY_JSONL,
    RECOVERY_SQL,
    SCHEMA_CHANGES,
)


class OwnerOnlyFileHandler(logging.handlers.RotatingFileHandler):
    """Rotating files created 0600: they hold students' events, IP addresses, bodies."""

    def _open(self) -> Any:
        fd = os.open(self.baseFilename, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        return open(fd, self.mode, encoding=self.encoding, errors=self.errors)


class LogFile:
    """One size-rotated append-only file; lines are written whole, thread-safely.

    Text that is not valid UTF-8 (a lone surrogate from a broken body) is written with
    backslash escapes instead of failing the line.
    """

    def __init__(self, path: Path, max_bytes: int, backups: int) -> None:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.path = path
        self._handler = OwnerOnlyFileHandler(
            path,
            maxBytes=max_bytes,
            backupCount=backups,
            encoding="utf-8",
            delay=True,
            errors="backslashreplace",
        )
        self._handler.setFormatter(logging.Formatter("%(message)s"))
        self._lock = threading.Lock()

    def write(self, text: str) -> None:
        record = logging.LogRecord("ledbelly", logging.INFO, "", 0, text, None, None)
        with self._lock:
            self._handler.emit(record)

    def close(self) -> None:
        self._handler.close()


def _stamp() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class ForwardedLogFile:
    """A log file written by another process: lines go to ``send`` as (file name, line).

    Size rotation is only safe from one process, so worker processes hand their lines to
    the process that owns the files (``EventLogs.write_forwarded``).
    """

    def __init__(self, name: str, send: Callable[[tuple[str, str]], None]) -> None:
        self.name = name
        self._send = send

    def write(self, text: str) -> None:
        self._send((self.name, text))

    def close(self) -> None:
        pass


class EventLogs:
    """The files an operator tails: truncations, undefined fields, errors, recovery.

    With ``forward`` the lines are not written here but passed to that callable, for the
    process that owns the files to write (see ``ForwardedLogFile``).
    """

    def __init__(
        self,
        directory: Path,
        max_bytes: int = 20 * 1024 * 1024,
        backups: int = 5,
        forward: Callable[[tuple[str, str]], None] | None = None,
    ):
        self.directory = directory
        self._files: dict[str, LogFile | ForwardedLogFile] = {
            name: (
                ForwardedLogFile(name, forward)
                if forward is not None
                else LogFile(directory / name, max_bytes, backups)
            )
            for name in ALL_FILES
        }

    def write_forwarded(self, line: tuple[str, str]) -> None:
        """Write a line a ``ForwardedLogFile`` in another process sent."""
        name, text = line
        self._files[name].write(text)

    def truncation(self, table: str, column: str, supplied: int, expecting: int) -> None:
        self._files[TRUNCATIONS].write(
            f"{_stamp()} {safe_text(table)}.{safe_text(column)} supplied {supplied}, "
            f"expecting {expecting}"
        )

    def undefined(self, event_name: str, table: str | None, field: str, sample: Any) -> None:
        sample_text = json_text(sample)
        if len(sample_text) > 500:
            sample_text = sample_text[:500] + "..."
        self._files[UNDEFINED].write(
            json_text(
                {
                    "at": _stamp(),
                    "event_name": event_name,
                    "table": table,
                    "field": field,
                    "sample": sample_text,
                }
            )
        )

    def collision(self, table: str, key: str, kept: str, dropped: tuple[str, ...]) -> None:
        """Payload paths that flattened to one key: which one's value was stored."""
        self._files[COERCIONS].write(
            f"{_stamp()} {safe_text(table)}.{safe_text(key)} collision: kept "
            f"{safe_text(kept)}, dropped {', '.join(safe_text(d) for d in dropped)}"
        )

    def coercion(self, table: str, column: str, value: Any, reason: str) -> None:
        shown = json_text(value)
        if len(shown) > 200:
            shown = shown[:200] + "..."
        self._files[COERCIONS].write(
            f"{_stamp()} {safe_text(table)}.{safe_text(column)} stored NULL: "
            f"{safe_text(reason, 300)}; value {safe_text(shown)}"
        )

    def error(self, event_name: str, error: str, sql: str | None, data: Any) -> None:
        """LEDbelly's block: each part one escaped line, so no payload can end a block."""
        name = safe_text(event_name, 255)
        self._files[ERRORS].write(
            f"---{name}--- {_stamp()}\n{safe_text(error)}\n------ sql\n"
            f"{safe_text(sql or '(none)')}\n------ data\n{json_text(data)}\n/---{name}---\n"
        )

    def recovery(self, message: dict[str, Any], sql: str | None) -> None:
        """The raw message, replayable with ``ledbelly ingest log/sql-recovery.jsonl``."""
        self._files[RECOVERY_JSONL].write(json_text(message))
        self._files[RECOVERY_SQL].write(
            sql if sql else f"-- {message.get('MessageId')}: no statement (message not parsed)"
        )

    def schema_change(self, text: str) -> None:
        self._files[SCHEMA_CHANGES].write(f"{_stamp()} {safe_text(text)}")

    def close(self) -> None:
        for f in self._files.values():
            f.close()
