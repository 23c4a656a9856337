"""``ingest`` over several processes: shares cover the input exactly, rows land exactly once."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import text

from conftest import SCHEMAS, canvas_event, engine_for
from helpers import scalar
from ledbelly.db.engine import normalize_url
from ledbelly.errors import LedbellyError, TransientError
from ledbelly.ingest import parallel
from ledbelly.ingest.parallel import choose_workers, ingest_paths, plan_shares
from ledbelly.pipeline import PipelineSettings
from ledbelly.simulate import generate_messages
from ledbelly.sources.files import read_path

line_texts = st.text(
    alphabet=st.characters(blacklist_categories=["Cs"], blacklist_characters="\n\r"), max_size=40
)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(line_texts, max_size=40),
    st.integers(1, 7),
    st.booleans(),
    st.sampled_from(["\n", "\r\n"]),
)
def test_shares_read_every_line_once_wherever_they_cut(
    tmp_path_factory: Any, lines: list[str], workers: int, last_newline: bool, eol: str
) -> None:
    path = tmp_path_factory.mktemp("shares") / "in.jsonl"
    body = eol.join(json.dumps({"n": i, "s": s}) for i, s in enumerate(lines))
    path.write_bytes((body + (eol if last_newline and lines else "")).encode("utf-8"))
    original = parallel.MIN_SHARE_BYTES
    parallel.MIN_SHARE_BYTES = 1  # cut even tiny files, anywhere
    try:
        plan = plan_shares([str(path)], workers)
    finally:
        parallel.MIN_SHARE_BYTES = original
    assert 1 <= len(plan) <= workers
    read = [m.body for shares in plan for share in shares for m in share.messages()]
    assert sorted(read) == sorted(m.body for m in read_path(str(path)))


def _settings(url: str, tmp_path: Path, **kw: Any) -> PipelineSettings:
    return PipelineSettings(
        url=normalize_url(url),
        log_dir=tmp_path / "log",
        schema_dir=SCHEMAS,
        create_missing=True,
        **kw,
    )


def test_one_process_where_several_cannot_help(tmp_path: Path, sqlite_url: str) -> None:
    big = tmp_path / "big.jsonl"
    big.write_bytes(b"{}\n" * (parallel.MIN_SHARE_BYTES // 3 * 5))
    small = tmp_path / "small.jsonl"
    small.write_text("{}\n")
    pg = _settings("postgresql://u@h/db", tmp_path)
    assert choose_workers(_settings(sqlite_url, tmp_path), [str(big)], 4).count == 1
    assert "SQLite" in (choose_workers(_settings(sqlite_url, tmp_path), [str(big)], 4).note or "")
    assert choose_workers(pg, ["-"], 3) == parallel.WorkerChoice(
        1, "--workers 3 ignored: standard input is read by one process"
    )
    evolving = _settings("postgresql://u@h/db", tmp_path, schema_evolution="add_columns")
    assert choose_workers(evolving, [str(big)], None).count == 1
    assert choose_workers(pg, [str(small)], None).count == 1
    assert choose_workers(pg, [str(big)], 3).count == 3
    by_size = big.stat().st_size // parallel.MIN_SHARE_BYTES
    assert choose_workers(pg, [str(big)], None).count == min(by_size, parallel.available_cpus())


def _workload(tmp_path: Path, n: int) -> tuple[Path, int]:
    """``n`` simulated messages, the first three repeated at the end (so in another
    share), one line that is not JSON and one unknown event: what a real export holds."""
    raw = list(generate_messages(n, seed=11, fmt="mixed"))
    lines = [
        orjson.dumps(
            {
                "MessageId": m["MessageId"],
                "Body": m["Body"],
                "MessageAttributes": m["MessageAttributes"],
            }
        )
        for m in raw
    ]
    lines += lines[:3]
    lines.append(b"{not json")
    lines.append(orjson.dumps(canvas_event("no_such_event_anywhere")))
    path = tmp_path / "export.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    return path, len(lines)


def _counts(url: str) -> dict[str, int]:
    engine = engine_for(url)
    try:
        with engine.connect() as conn:
            return {
                t: conn.execute(text(f"SELECT COUNT(*) FROM {t}")).scalar_one()
                for t in (
                    "ledbelly_messages",
                    "live_stream",
                    "live_asset_accessed",
                    "ims_asset_accessed",
                    "ledbelly_dead_letters",
                    "ledbelly_unknown_events",
                )
            }
    finally:
        engine.dispose()


def test_several_workers_land_every_message_exactly_once(
    server_db_url: str, tmp_path: Path, monkeypatch: Any
) -> None:
    path, lines = _workload(tmp_path, 400)
    monkeypatch.setattr(parallel, "MIN_SHARE_BYTES", 4096)
    settings_ = _settings(server_db_url, tmp_path, batch_size=50)
    plan = plan_shares([str(path)], 3)
    assert len(plan) == 3

    stats = ingest_paths(settings_, [str(path)], 3)
    assert stats.messages == lines
    assert stats.duplicates == 3
    assert stats.dead_letters == 1
    assert stats.unknown == 1
    counts = _counts(server_db_url)
    assert counts["ledbelly_messages"] == lines - 3
    assert counts["ledbelly_dead_letters"] == 1
    assert counts["ledbelly_unknown_events"] == 1
    canvas = sum(
        1 for m in generate_messages(400, seed=11, fmt="mixed") if '"metadata"' in m["Body"]
    )
    assert counts["live_stream"] == canvas
    expected = Counter(
        m["MessageAttributes"]["event_name"]["StringValue"]
        for m in generate_messages(400, seed=11, fmt="mixed")
    )
    assert (
        counts["live_asset_accessed"] + counts["ims_asset_accessed"] == expected["asset_accessed"]
    )

    # The workers' log lines arrive in this process's files, each undefined field once.
    errors = (tmp_path / "log" / "sql-errors.log").read_text()
    assert "invalid JSON" in errors
    recovered = (tmp_path / "log" / "sql-recovery.jsonl").read_text().splitlines()
    assert [json.loads(r)["Body"] for r in recovered] == ["{not json"]
    undefined_log = (tmp_path / "log" / "ddl-undefined.log").read_text().splitlines()
    seen = [(e["table"], e["field"]) for e in map(json.loads, undefined_log)]
    assert len(seen) == len(set(seen)) == stats.undefined > 0

    again = ingest_paths(settings_, [str(path)], 3)
    assert again.duplicates == lines
    assert _counts(server_db_url) == counts


def test_a_failing_worker_fails_the_ingest_with_its_error(
    server_db_url: str, tmp_path: Path, monkeypatch: Any
) -> None:
    path, _ = _workload(tmp_path, 60)
    monkeypatch.setattr(parallel, "MIN_SHARE_BYTES", 1024)

    def database_gone(*args: Any, **kwargs: Any) -> Any:
        raise TransientError("the database went away")

    monkeypatch.setattr(parallel, "ingest", database_gone)  # workers are forked: they see it
    with pytest.raises(TransientError, match="went away"):
        ingest_paths(_settings(server_db_url, tmp_path), [str(path)], 2)


def test_a_worker_that_dies_is_reported(
    server_db_url: str, tmp_path: Path, monkeypatch: Any
) -> None:
    path, _ = _workload(tmp_path, 60)
    monkeypatch.setattr(parallel, "MIN_SHARE_BYTES", 1024)
    monkeypatch.setattr(parallel, "ingest", lambda *a, **k: os._exit(9))
    with pytest.raises(LedbellyError, match=r"died \(exit code 9\)"):
        ingest_paths(_settings(server_db_url, tmp_path), [str(path)], 2)


def _worker_processes(marker: str) -> list[int]:
    """Processes still running whose command line names ``marker``."""
    found = []
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
            except OSError:
                continue
            if marker.encode() in cmdline:
                found.append(int(pid))
    return found


@pytest.mark.slow
@pytest.mark.parametrize("stop", ["ctrl-c", "sigterm"])
def test_a_stop_ends_every_worker_and_a_rerun_finishes_the_job(
    server_db_url: str, tmp_path: Path, stop: str
) -> None:
    """Ctrl-C reaches the whole process group; systemd's or kill's SIGTERM only ingest."""
    path, lines = _workload(tmp_path, 6000)
    cmd = [
        sys.executable,
        "-m",
        "ledbelly.cli.main",
        "ingest",
        "--db",
        server_db_url,
        "--create-missing",
        "--schemas",
        str(SCHEMAS),
        "--log-dir",
        str(tmp_path / "log"),
        "--workers",
        "2",
        "--batch-size",
        "200",
        str(path),
    ]
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True
    )  # its own process group, like a terminal's
    until = time.monotonic() + 120
    while scalar(server_db_url, "SELECT COUNT(*) FROM ledbelly_messages", missing=-1) < 400:
        assert proc.poll() is None and time.monotonic() < until, "ingest never got going"
        time.sleep(0.05)
    if stop == "ctrl-c":
        os.killpg(proc.pid, signal.SIGINT)
    else:
        proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=30)
    assert proc.returncode != 0
    committed = scalar(server_db_url, "SELECT COUNT(*) FROM ledbelly_messages", missing=-1)
    assert committed < lines - 3, "the test must interrupt ingest mid-run"
    time.sleep(0.5)
    assert _worker_processes(str(path)) == [], "a worker outlived the interrupt"

    again = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    summary = again.stdout.splitlines()[-1]
    assert summary.startswith(f"messages {lines}:")
    assert f"duplicates skipped {committed + 3}" in summary
    assert scalar(server_db_url, "SELECT COUNT(*) FROM ledbelly_messages", missing=-1) == lines - 3
    assert scalar(server_db_url, "SELECT COUNT(*) FROM live_stream", missing=-1) == sum(
        1 for m in generate_messages(6000, seed=11, fmt="mixed") if '"metadata"' in m["Body"]
    )
