"""Shared fixtures: real databases (SQLite, PostgreSQL, MariaDB), docs examples, a pipeline.

PostgreSQL and MariaDB are real servers on 127.0.0.1. Where one is down the tests for it
are skipped with the reason, except under CI (``CI=true``) or ``LEDBELLY_REQUIRE_DBS=1``,
where a missing server is a failure.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from sqlalchemy import Engine, create_engine, text

from ledbelly.db.engine import normalize_url, open_engine
from ledbelly.message import Message
from ledbelly.pipeline import Pipeline, PipelineSettings

ROOT = Path(__file__).resolve().parent.parent
# The property tests check what comes out, not how fast. On a busy 2-core machine a
# flattener's twin test failed with a hypothesis error, not an assertion, and passed
# when run alone: the mark of its 200 ms per-example deadline.
settings.register_profile("ledbelly", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("ledbelly")
# The parsed-schemas cache of this run, not the user's (~/.cache/ledbelly).
os.environ.setdefault("LEDBELLY_CACHE_DIR", tempfile.mkdtemp(prefix="ledbelly-test-cache-"))
SCHEMAS = ROOT / "schemas"
SHARED = ROOT.parent / "shared"
DOCS = SHARED / "fixtures" / "canvas-docs"
REFERENCE_TSV = SHARED / "reference" / "ledbelly-schema.tsv"

PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/test"
MY_ADMIN = "mysql://root@127.0.0.1:3306/test"
# One database per test run; set LEDBELLY_TEST_DBNAME to run two suites side by side.
TEST_DB = os.environ.get("LEDBELLY_TEST_DBNAME", "ledbelly_test")
PG_URL = f"postgresql://postgres@127.0.0.1:5432/{TEST_DB}"
MY_URL = f"mysql://root@127.0.0.1:3306/{TEST_DB}"
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
        exists = conn.execute(
            text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": TEST_DB}
        ).first()
        if not exists:
            conn.execute(text(f'CREATE DATABASE "{TEST_DB}"'))
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
        conn.execute(text(f"DROP DATABASE IF EXISTS `{TEST_DB}`"))
        conn.execute(
            text(f"CREATE DATABASE `{TEST_DB}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci")
        )
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


@pytest.fixture(params=["postgresql", "mariadb"])
def server_db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The database servers only, for behaviour SQLite does not share."""
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
        pytest.skip(
            f"Instructure's documented examples are not at {DOCS} "
            "(the ../shared folder beside the checkout)"
        )
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
        "metadata": {
            "event_name": name,
            "event_time": "2026-09-01T14:03:07.150Z",
            "user_id": "21070000000000001",
            "root_account_id": "21070000000000001",
            "context_id": "21070000000000144",
            "context_type": "Course",
            "producer": "canvas",
            "hostname": "lms.example.edu",
        },
        "body": body
        or {
            "asset_id": "21070000000000144",
            "asset_type": "course",
            "asset_subtype": "syllabus",
            "category": "syllabus",
            "role": "StudentEnrollment",
            "level": None,
            "asset_name": "Biology 101",
        },
    }


# ----- SQS: moto's real server over HTTP ------------------------------------------------------


@pytest.fixture(scope="session")
def sqs_endpoint() -> Iterator[str]:
    from ledbelly.demo import start_local_sqs

    server, endpoint = start_local_sqs()
    yield endpoint
    server.stop()


@pytest.fixture
def sqs_queue(sqs_endpoint: str, request: pytest.FixtureRequest) -> Iterator[tuple[Any, str]]:
    """A fresh queue on the moto server: (boto3 client, queue URL)."""
    import re

    from ledbelly.config import AwsSettings
    from ledbelly.sources.sqs import sqs_client

    client = sqs_client(
        AwsSettings(
            region="us-east-1",
            access_key_id="testing",
            secret_access_key="testing",
            endpoint_url=sqs_endpoint,
        )
    )
    name = re.sub(r"[^A-Za-z0-9_-]", "-", request.node.name)[:70]
    url = client.create_queue(QueueName=name)["QueueUrl"]
    yield client, url
    client.delete_queue(QueueUrl=url)


def send_all(client: Any, url: str, messages: list[Message]) -> None:
    for i in range(0, len(messages), 10):
        client.send_message_batch(
            QueueUrl=url,
            Entries=[
                {
                    "Id": str(n),
                    "MessageBody": m.body,
                    "MessageAttributes": {
                        k: {"DataType": "String", "StringValue": v or "-"}
                        for k, v in m.attributes.items()
                    },
                }
                for n, m in enumerate(messages[i : i + 10])
            ],
        )


def queue_depth(client: Any, url: str) -> int:
    attrs = client.get_queue_attributes(
        QueueUrl=url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return int(attrs["ApproximateNumberOfMessages"]) + int(
        attrs["ApproximateNumberOfMessagesNotVisible"]
    )
