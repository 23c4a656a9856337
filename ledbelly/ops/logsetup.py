"""Process logging for the daemon: text or JSON lines, to stderr or a rotated file."""

from __future__ import annotations

import logging
import logging.handlers
import sys
from datetime import UTC, datetime
from pathlib import Path

from ledbelly.ops.logs import OwnerOnlyFileHandler
from ledbelly.text import safe_text
from ledbelly.transform.coerce import json_text


class LineFormatter(logging.Formatter):
    """Text lines whose message cannot hold a line break: no payload forges a log line."""

    def formatMessage(self, record: logging.LogRecord) -> str:
        record.message = safe_text(record.message)
        return super().formatMessage(record)


class JsonFormatter(logging.Formatter):
    """One JSON object per line, for log shippers."""

    def format(self, record: logging.LogRecord) -> str:
        doc = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "thread": record.threadName,
            "message": record.getMessage(),
        }
        if record.exc_info:
            doc["traceback"] = self.formatException(record.exc_info)
        return json_text(doc)


def configure_logging(fmt: str = "text", level: str = "INFO", log_file: Path | None = None) -> None:
    """Configure the ``ledbelly`` logger once for this process."""
    logger = logging.getLogger("ledbelly")
    for h in list(logger.handlers):
        logger.removeHandler(h)
    handler: logging.Handler
    if log_file is not None:
        log_file.parent.mkdir(parents=True, exist_ok=True)
        handler = OwnerOnlyFileHandler(
            log_file, maxBytes=20 * 1024 * 1024, backupCount=5, encoding="utf-8"
        )
    else:
        handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(
            LineFormatter("%(asctime)s %(levelname)s %(name)s [%(threadName)s] %(message)s")
        )
    logger.addHandler(handler)
    logger.setLevel(level)
    logger.propagate = False
