"""One exception hierarchy for ledbelly.

Driver errors (botocore, SQLAlchemy/DBAPI) are mapped into these at one boundary
each (``sink.classify_db_error``, ``sources.sqs``) so the rest of the code decides
between *retry* and *dead letter* by type alone.
"""

from __future__ import annotations


class LedbellyError(Exception):
    """Base class for every error ledbelly raises on purpose."""


class ConfigError(LedbellyError):
    """The configuration is missing, unreadable or inconsistent."""


class SchemaError(LedbellyError):
    """A YAML schema file is malformed."""


class TransientError(LedbellyError):
    """A fault that goes away by itself (connection lost, deadlock, throttling).

    Work that fails this way is retried with backoff and never becomes a dead letter.
    """


class DatabaseUnavailable(TransientError):
    """The database cannot be reached at all."""


class OperatorError(DatabaseUnavailable):
    """The database refuses writes for a reason an operator must fix: a revoked grant, a
    dropped table or column, a read-only database.

    Not the data's fault, so nothing becomes a dead letter: the daemon waits as for an
    outage (and re-reads the tables, in case a column went for good), ``ingest`` stops.
    """


class SourceUnavailable(TransientError):
    """The message source (SQS) cannot be reached or is throttling."""


class PermanentError(LedbellyError):
    """A fault in the data itself: retrying the same input fails the same way."""


class MessageError(PermanentError):
    """A message that cannot be parsed into an event."""


class RowError(PermanentError):
    """A row that the database refused for its content."""
