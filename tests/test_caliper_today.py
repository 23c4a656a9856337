"""Caliper events shaped as Canvas builds them today land whole through the real CLI.

Each fixture in ``fixtures/caliper_today`` is our own (not a documented example) and exercises
the extension fields the ``ims_`` tables gained: the actor extensions on ``ims_grade_change``,
``actor_real_user_id`` (masquerading) and ``job_id``/``job_tag`` (events emitted by a job).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import MetaData, Table, select

from conftest import SCHEMAS, engine_for
from ledbelly.cli import main
from ledbelly.parsers.caliper_routes import event_name
from ledbelly.parsers.flatten import flatten_caliper

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "caliper_today"
# The extension fields whose stored value is checked against the event.
EXTENSION_COLUMNS = (
    "client_ip",
    "hostname",
    "job_id",
    "job_tag",
    "request_id",
    "request_url",
    "user_agent",
    "version",
    "actor_entity_id",
    "actor_root_account_id",
    "actor_root_account_lti_guid",
    "actor_root_account_uuid",
    "actor_user_login",
    "actor_user_sis_id",
    "actor_real_user_id",
)
URN_DIGITS = re.compile(r"^urn:instructure:canvas:.*:(\d+)$")
QUIET_LOGS = ("ddl-undefined.log", "sql-truncations.log", "data-coercions.log")


def _fixtures() -> list[Path]:
    return sorted(FIXTURES.glob("*.json"))


def _load(path: Path) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return doc


def test_there_are_fixtures() -> None:
    assert _fixtures(), f"no fixtures in {FIXTURES}"


@pytest.mark.parametrize("path", _fixtures(), ids=lambda p: p.stem)
def test_fixture_is_well_formed_and_routes_by_content(path: Path) -> None:
    doc = _load(path)
    assert doc["event_name"] == path.stem
    assert "@" in doc["source"]
    payload = doc["payload"]
    assert set(payload) == {"sensor", "sendTime", "dataVersion", "data"}
    assert event_name(payload["data"][0]) == doc["event_name"]


@pytest.mark.parametrize("path", _fixtures(), ids=lambda p: p.stem)
def test_fixture_lands_whole_through_the_cli(path: Path, db_url: str, tmp_path: Path) -> None:
    doc = _load(path)
    name: str = doc["event_name"]
    payload: dict[str, Any] = doc["payload"]
    event: dict[str, Any] = payload["data"][0]
    line = {
        "MessageId": f"caliper-today-{name}",
        "Body": json.dumps(payload),
        "MessageAttributes": {"event_name": {"StringValue": name, "DataType": "String"}},
    }
    source = tmp_path / f"{name}.jsonl"
    source.write_text(json.dumps(line) + "\n", encoding="utf-8")
    log_dir = tmp_path / "log"
    args = ["ingest", "--db", db_url, "--log-dir", str(log_dir), "--create-missing"]
    args += ["--schemas", str(SCHEMAS), str(source)]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output + repr(result.exception)

    for log in QUIET_LOGS:
        logged = log_dir / log
        assert not logged.exists() or not logged.read_text().strip(), logged.read_text()

    flat: dict[str, Any] = {}
    flatten_caliper(event, "", flat)
    engine = engine_for(db_url)
    try:
        with engine.connect() as conn:
            table = Table(f"ims_{name}", MetaData(), autoload_with=conn)
            rows = conn.execute(select(table)).mappings().all()
    finally:
        engine.dispose()
    assert len(rows) == 1, rows
    row = rows[0]
    assert row["uuid"] == event["id"]
    assert row["action"] == event["action"]
    assert row["actor_id"] == event["actor"]["id"]
    checked = [c for c in EXTENSION_COLUMNS if c in flat]
    assert "version" in checked
    for column in checked:
        assert column in row, f"ims_{name} has no column {column}"
        assert str(row[column]) == str(flat[column]), (column, row[column], flat[column])
    # ``urn_id`` twins (``<URN column without _id>_canvas_id``), where the schema has them
    for column in (c for c in row if c.endswith("_canvas_id")):
        base = column[: -len("_canvas_id")]
        urn = flat.get(base + "_id", flat.get(base))
        match = URN_DIGITS.match(urn) if isinstance(urn, str) else None
        expected = int(match.group(1)) if match else None
        assert row[column] == expected, (column, row[column], urn)
