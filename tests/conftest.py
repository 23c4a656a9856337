"""Shared fixtures: real databases (SQLite, PostgreSQL, MariaDB), docs examples, a pipeline.

PostgreSQL and MariaDB are real servers on 127.0.0.1. Where one is down the tests for it
are skipped with the reason, except under CI (``CI=true``) or ``LEDBELLY_REQUIRE_DBS=1``,
where a missing server is a failure.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, create_engine, text

from ledbelly.db import normalize_url, open_engine
from ledbelly.message import Message
from ledbelly.pipeline import Pipeline, PipelineSettings

ROOT = Path(__file__).resolve().parent.parent
SCHEMAS = ROOT / "schemas"
SHARED = ROOT.parent / "shared"
DOCS = SHARED / "fixtures" / "canvas-docs"
REFERENCE_TSV = SHARED / "reference" / "ledbelly-schema.tsv"

PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/test"
MY_ADMIN = "mysql://root@127.0.0.1:3306/test"
PG_URL = os.environ.get("LEDBELLY_TEST_PG", "postgresql://postgres@127.0.0.1:5432/ledbelly_test")
MY_URL = os.environ.get("LEDBELLY_TEST_MYSQL", "mysql://root@127.0.0.1:3306/ledbelly_test")
REQUIRE_DBS = os.environ.get("CI") == "true" or os.environ.get("LEDBELLY_REQUIRE_DBS") == "1"
NOT_DOC_EVENTS = {"metadata", "extensions", "actor_extensions"}


def _unavailable(what: str, exc: Exception) -> None:
    message = f"{what} is not reachable ({exc.__class__.__name__}: {str(exc)[:120]})"
    if REQUIRE_DBS:
        pytest.fail(message + "; CI needs it: .ci/run starts it")
    pytest.skip(message + "; start it or run .ci/run")


def _reset_postgres() -> str:
    admin = create_engine(normalize_url(PG_ADMIN), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        if not conn.execute(text("SELECT 1 FROM pg_database WHERE datname='ledbelly_test'")).first():
            conn.execute(text("CREATE DATABASE ledbelly_test"))
    admin.dispose()
    eng = create_engine(normalize_url(PG_URL), isolation_level="AUTOCOMMIT")
    with eng.connect() as conn:
        conn.execute(text("DROP SCHEMA IF EXISTS public CASCADE"))
        conn.execute(text("CREATE SCHEMA public"))
    eng.dispose()
    return PG_URL


def _reset_mariadb() -> str:
    admin = create_engine(normalize_url(MY_ADMIN))
    with admin.connect() as conn:
        conn.execute(text("DROP DATABASE IF EXISTS ledbelly_test"))
        conn.execute(text("CREATE DATABASE ledbelly_test CHARACTER SET utf8mb4 "
                          "COLLATE utf8mb4_unicode_ci"))
    admin.dispose()
    return MY_URL


def fresh_database_url(kind: str, tmp_path: Path) -> str:
    """An empty database of ``kind`` and its URL."""
    if kind == "sqlite":
        return f"sqlite:///{tmp_path / 'ledbelly.db'}"
    try:
        return _reset_postgres() if kind == "postgresql" else _reset_mariadb()
    except Exception as exc:  # a down server shows up as many driver error types
        _unavailable(kind, exc)
        raise


@pytest.fixture(params=["sqlite", "postgresql", "mariadb"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The same test over SQLite, PostgreSQL and MariaDB."""
    return fresh_database_url(request.param, tmp_path)


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return fresh_database_url("sqlite", tmp_path)


@pytest.fixture
def make_pipeline(tmp_path: Path) -> Iterator[Any]:
    made: list[Pipeline] = []

    def make(url: str, **kwargs: Any) -> Pipeline:
        kwargs.setdefault("log_dir", tmp_path / "log")
        kwargs.setdefault("schema_dir", SCHEMAS)
        kwargs.setdefault("create_missing", True)
        p = Pipeline(PipelineSettings(url=normalize_url(url), **kwargs))
        p.prepare()
        made.append(p)
        return p

    yield make
    for p in made:
        p.close()


def engine_for(url: str) -> Engine:
    return open_engine(normalize_url(url))


def require_docs() -> Path:
    if not DOCS.is_dir():
        pytest.skip(f"Instructure's documented examples are not at {DOCS} "
                    "(the ../shared folder beside the checkout)")
    return DOCS


def doc_examples() -> list[tuple[str, str, int, dict[str, Any]]]:
    """(format, event name, example index, payload) for every documented example."""
    out = []
    for fmt in ("canvas", "caliper"):
        for path in sorted((DOCS / fmt).glob("*.json")):
            if path.stem in NOT_DOC_EVENTS:
                continue
            doc = json.loads(path.read_text(encoding="utf-8"))
            for i, ex in enumerate(doc.get("examples", [])):
                out.append((fmt, path.stem, i, ex["payload"]))
    return out


def sqs_message(message_id: str, event_name: str, payload: Any, event_time: str = "") -> Message:
    body = payload if isinstance(payload, str) else json.dumps(payload)
    attrs = {"event_name": event_name, "event_time": event_time}
    return Message(message_id, body, attrs)


def canvas_event(name: str = "asset_accessed", **body: Any) -> dict[str, Any]:
    """A small Canvas raw event of our own."""
    return {
        "metadata": {"event_name": name, "event_time": "2026-09-01T14:03:07.150Z",
                     "user_id": "21070000000000001", "root_account_id": "21070000000000001",
                     "context_id": "21070000000000144", "context_type": "Course",
                     "producer": "canvas", "hostname": "lms.example.edu"},
        "body": body or {"asset_id": "21070000000000144", "asset_type": "course",
                         "asset_subtype": "syllabus", "category": "syllabus", "role":
                         "StudentEnrollment", "level": None, "asset_name": "Biology 101"},
    }
