"""ledbelly: Canvas LMS Live Events from AWS SQS into SQL."""

from ledbelly.errors import (
    ConfigError,
    DatabaseUnavailable,
    LedbellyError,
    MessageError,
    PermanentError,
    RowError,
    SchemaError,
    SourceUnavailable,
    TransientError,
)
from ledbelly.message import Message
from ledbelly.outcome import Issue, IssueKind, Kind, Outcome
from ledbelly.schema.model import Catalog, ColumnDef, TableDef

__version__ = "0.1.0"

__all__ = [
    "Catalog",
    "ColumnDef",
    "ConfigError",
    "DatabaseUnavailable",
    "Issue",
    "IssueKind",
    "Kind",
    "LedbellyError",
    "Message",
    "MessageError",
    "Outcome",
    "PermanentError",
    "RowError",
    "SchemaError",
    "SourceUnavailable",
    "TableDef",
    "TransientError",
    "__version__",
]
