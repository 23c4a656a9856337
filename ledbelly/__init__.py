"""ledbelly: Canvas LMS Live Events from AWS SQS into SQL."""

from ledbelly.errors import (
    ConfigError,
    DatabaseUnavailable,
    LedbellyError,
    MessageError,
    PermanentError,
    RowError,
    SchemaError,
    TransientError,
)
from ledbelly.message import Message
from ledbelly.schema.model import Catalog, ColumnDef, TableDef

__version__ = "0.1.0"

__all__ = [
    "Catalog",
    "ColumnDef",
    "ConfigError",
    "DatabaseUnavailable",
    "LedbellyError",
    "Message",
    "MessageError",
    "PermanentError",
    "RowError",
    "SchemaError",
    "TableDef",
    "TransientError",
    "__version__",
]
