"""What every command shares: database, schema and log options, and how errors end."""

from __future__ import annotations

import sys
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import Any, TypeVar

import click

from ledbelly.errors import (
    ConfigError,
    LedbellyError,
    OperatorError,
    SchemaError,
    SourceUnavailable,
    TransientError,
)

EXIT_ERROR = 1
EXIT_CONFIG = 2
EXIT_DATABASE = 3
EXIT_SOURCE = 4

F = TypeVar("F", bound=Callable[..., Any])


def reports_errors(func: F) -> F:
    """Turn library errors into one line on stderr and a named exit code."""

    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except SourceUnavailable as exc:
            click.echo(
                f"error: message source unavailable: {exc}\n"
                "hint: check the queue's endpoint_url, region and credentials in the "
                "run configuration (-c), and the network to SQS",
                err=True,
            )
            sys.exit(EXIT_SOURCE)
        except OperatorError as exc:
            click.echo(
                f"error: the database refuses writes: {exc}\n"
                "hint: grant ledbelly's user what it needs, or bring the tables up to "
                "the schemas with 'ledbelly alter-tables --apply'; nothing of the failed "
                "batch was committed, and running the command again finishes the job",
                err=True,
            )
            sys.exit(EXIT_DATABASE)
        except TransientError as exc:
            click.echo(
                f"error: database unavailable: {exc}\n"
                "hint: check that the server is up and the URL (--db) is right; "
                "nothing partial was committed",
                err=True,
            )
            sys.exit(EXIT_DATABASE)
        except (ConfigError, SchemaError) as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(EXIT_CONFIG)
        except LedbellyError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(EXIT_ERROR)

    return wrapper  # type: ignore[return-value]


db_option = click.option(
    "--db",
    "db_url",
    metavar="URL",
    help="SQLAlchemy URL (else $LEDBELLY_DATABASE_URL, cfg/database.yml, sqlite:///ledbelly.db).",
)
log_dir_option = click.option(
    "--log-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("log"),
    show_default=True,
    help="Where truncation, undefined-field, error and recovery logs go.",
)
create_option = click.option(
    "--create-missing/--no-create-missing",
    default=None,
    help="Create missing tables (default: only on SQLite).",
)
schemas_option = click.option(
    "--schemas",
    "schema_dir",
    type=click.Path(file_okay=False, exists=True, path_type=Path),
    help="Schema directory (default ./schemas).",
)
