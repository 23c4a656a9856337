"""The command line as a user runs it: exact summaries, one-line errors, exit codes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from conftest import ROOT, SCHEMAS, canvas_event, engine_for, fresh_database_url
from helpers import scalar
from ledbelly.cli import main
from ledbelly.cli.options import EXIT_CONFIG, EXIT_DATABASE, EXIT_SOURCE


def _invoke(*args: str, input: str | None = None, env: dict[str, str] | None = None) -> Any:
    return CliRunner().invoke(main, list(args), input=input, env=env, catch_exceptions=False)


def _events_file(tmp_path: Path, n: int = 3) -> Path:
    path = tmp_path / "events.jsonl"
    path.write_text(
        "\n".join(json.dumps(canvas_event(asset_id=str(i))) for i in range(n))
        + "\nnot json at all\n"
    )
    return path


def test_ingest_prints_an_exact_summary_and_is_idempotent(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'x.db'}"
    path = _events_file(tmp_path)
    args = [
        "ingest",
        "--db",
        db,
        "--log-dir",
        str(tmp_path / "log"),
        "--schemas",
        str(SCHEMAS),
        str(path),
    ]
    first = _invoke(*args)
    assert first.exit_code == 0, first.output
    assert first.stdout.splitlines()[-1] == (
        "messages 4: rows canvas 3, caliper 0; unknown 0; dead letters 1; "
        "duplicates skipped 0; truncations 0; undefined fields 0"
    )
    assert "replay with: ledbelly replay --dead-letters" in first.stderr
    second = _invoke(*args)
    assert second.stdout.splitlines()[-1] == (
        "messages 4: rows canvas 0, caliper 0; unknown 0; dead letters 0; "
        "duplicates skipped 4; truncations 0; undefined fields 0"
    )


def test_ingest_reads_stdin_and_json_arrays(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'x.db'}"
    array = tmp_path / "events.json"
    array.write_text(json.dumps([canvas_event(asset_id="1"), canvas_event(asset_id="2")]))
    common = ["--db", db, "--log-dir", str(tmp_path / "log"), "--schemas", str(SCHEMAS)]
    assert "rows canvas 2" in _invoke("ingest", *common, str(array)).stdout
    line = json.dumps(canvas_event(asset_id="3")) + "\n"
    assert "rows canvas 1" in _invoke("ingest", *common, "-", input=line).stdout


def test_simulate_then_ingest(tmp_path: Path) -> None:
    out = _invoke("simulate", "-n", "50", "--seed", "4", "--format", "mixed")
    lines = out.stdout.splitlines()
    assert len(lines) == 50
    assert all("MessageId" in json.loads(line) for line in lines)
    db = f"sqlite:///{tmp_path / 'x.db'}"
    result = _invoke(
        "ingest",
        "--db",
        db,
        "--log-dir",
        str(tmp_path / "log"),
        "--schemas",
        str(SCHEMAS),
        "-",
        input=out.stdout,
    )
    assert result.exit_code == 0
    assert result.stdout.startswith("messages 50: rows canvas ")
    assert "dead letters 0" in result.stdout and "unknown 0" in result.stdout


def test_unreachable_database_is_one_clear_line(tmp_path: Path) -> None:
    path = _events_file(tmp_path)
    result = _invoke(
        "ingest",
        "--db",
        "postgresql://nobody:s3cret@127.0.0.1:1/none",
        "--log-dir",
        str(tmp_path / "log"),
        "--schemas",
        str(SCHEMAS),
        str(path),
    )
    assert result.exit_code == EXIT_DATABASE
    assert result.stderr.startswith("error: database unavailable:")
    assert "s3cret" not in result.output


def test_database_url_from_environment_and_yaml(tmp_path: Path, monkeypatch: Any) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "cfg").mkdir()
    (tmp_path / "cfg" / "database.yml").write_text("adapter: sqlite\ndata: from-yaml.db\n")
    path = _events_file(tmp_path, 1)
    common = ["--schemas", str(SCHEMAS), str(path)]
    assert _invoke("ingest", *common).exit_code == 0
    assert (tmp_path / "from-yaml.db").exists()
    env_db = tmp_path / "from-env.db"
    assert (
        _invoke("ingest", *common, env={"LEDBELLY_DATABASE_URL": f"sqlite:///{env_db}"}).exit_code
        == 0
    )
    assert env_db.exists()


def test_missing_tables_are_not_created_without_the_flag(
    server_db_url: str, tmp_path: Path
) -> None:
    db_url = server_db_url
    path = _events_file(tmp_path, 1)
    result = _invoke(
        "ingest",
        "--db",
        db_url,
        "--log-dir",
        str(tmp_path / "log"),
        "--schemas",
        str(SCHEMAS),
        str(path),
    )
    assert result.exit_code == 1
    assert "--create-missing" in result.stderr
    ok = _invoke(
        "ingest",
        "--db",
        db_url,
        "--create-missing",
        "--log-dir",
        str(tmp_path / "log"),
        "--schemas",
        str(SCHEMAS),
        str(path),
    )
    assert ok.exit_code == 0 and "rows canvas 1" in ok.stdout
    engine = engine_for(db_url)
    from sqlalchemy import inspect

    with engine.connect() as conn:
        assert inspect(conn).has_table("live_asset_accessed")
    engine.dispose()


def test_bad_configuration_names_the_problem(tmp_path: Path) -> None:
    cfg = tmp_path / "sqs.yml"
    cfg.write_text("queues: []\n")
    result = _invoke("run", "-c", str(cfg), "--db", f"sqlite:///{tmp_path / 'x.db'}")
    assert result.exit_code == EXIT_CONFIG
    assert "queues must list at least one SQS queue" in result.stderr
    missing = _invoke("run", "-c", str(tmp_path / "nope.yml"))
    assert missing.exit_code == EXIT_CONFIG and "cannot read" in missing.stderr


def test_every_command_is_documented_in_the_readme() -> None:
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    for name in main.commands:
        assert f"ledbelly {name}" in readme, f"README does not show 'ledbelly {name}'"


def test_ingest_says_why_it_uses_one_process(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'x.db'}"
    result = _invoke(
        "ingest",
        "--db",
        db,
        "--log-dir",
        str(tmp_path / "log"),
        "--schemas",
        str(SCHEMAS),
        "--workers",
        "2",
        str(_events_file(tmp_path)),
    )
    assert result.exit_code == 0, result.output
    assert "note: --workers 2 ignored: SQLite takes one writer at a time" in result.stderr
    assert "rows canvas 3" in result.stdout


def _unreachable_sqs(tmp_path: Path) -> Path:
    cfg = tmp_path / "sqs.yml"
    cfg.write_text(
        "queues: [canvas-live-events]\nendpoint_url: http://127.0.0.1:1\n"
        "aws: {region: us-east-1, access_key_id: AKIAX, secret_access_key: s3cret}\n"
    )
    return cfg


def test_an_unreachable_queue_is_reported_as_the_queue(tmp_path: Path) -> None:
    cfg = _unreachable_sqs(tmp_path)
    db = f"sqlite:///{tmp_path / 'x.db'}"
    result = CliRunner().invoke(main, ["run", "-c", str(cfg), "--db", db, "--log-dir",
                                       str(tmp_path / "log")])  # fmt: skip
    assert result.exit_code == EXIT_SOURCE, result.output
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert errors and errors[0].startswith("error: message source unavailable:")
    assert "endpoint_url" in result.stderr and "--db" not in result.stderr
    assert "s3cret" not in result.output


def test_a_failed_start_leaves_no_connection_open(tmp_path: Path) -> None:
    """build_daemon opened the engine before SQS failed; it must close it again."""
    from ledbelly.config import load_daemon_settings
    from ledbelly.daemon.app import build_daemon
    from ledbelly.db.engine import normalize_url
    from ledbelly.errors import SourceUnavailable

    url = fresh_database_url("postgresql", tmp_path)
    database = url.rsplit("/", 1)[1]
    count = f"SELECT COUNT(*) FROM pg_stat_activity WHERE datname = '{database}'"
    before = scalar(url, count)
    with pytest.raises(SourceUnavailable):
        build_daemon(load_daemon_settings(_unreachable_sqs(tmp_path)), normalize_url(url),
                     tmp_path / "log", create_missing=True)  # fmt: skip
    assert scalar(url, count) == before


def test_the_summary_line_comes_whole_and_before_the_note(tmp_path: Path) -> None:
    """stdout and stderr into one pipe, as a terminal or a log collector joins them."""
    path = _events_file(tmp_path)
    db = f"sqlite:///{tmp_path / 'x.db'}"
    out = subprocess.run(
        [sys.executable, "-m", "ledbelly.cli.main", "ingest", "--db", db, "--log-dir",
         str(tmp_path / "log"), "--schemas", str(SCHEMAS), str(path)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, check=True,
    ).stdout.splitlines()  # fmt: skip
    summary = out.index(
        "messages 4: rows canvas 3, caliper 0; unknown 0; dead letters 1; "
        "duplicates skipped 0; truncations 0; undefined fields 0"
    )
    assert out[summary + 1].startswith("dead letters are in ledbelly_dead_letters")


def test_the_systemd_units_run_commands_that_parse() -> None:
    """Every unit's ExecStart is a ``ledbelly`` command line the CLI accepts as written
    (the template's ``%i`` as process 1)."""
    import shlex

    from ledbelly.cli.main import main as cli

    units = sorted((ROOT / "systemd").glob("*.service"))
    assert any(u.name == "ledbelly-https@.service" for u in units)
    for unit in units:
        line = next(x for x in unit.read_text().splitlines() if x.startswith("ExecStart="))
        argv = shlex.split(line.removeprefix("ExecStart=").replace("%i", "1"))
        assert argv[0].endswith("/ledbelly"), unit.name
        with cli.make_context("ledbelly", argv[1:]) as ctx:
            command = cli.get_command(ctx, argv[1])
            assert command is not None, unit.name
            sub = command.make_context(argv[1], argv[2:], parent=ctx)
            assert sub.params["config_path"].name.endswith(".yml"), unit.name
            if "%i" in line:
                assert sub.params["metrics_port"] == 9101 and str(sub.params["log_dir"]) == "log/1"
