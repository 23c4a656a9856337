"""``ledbelly demo --https`` through the CLI: a local key and JWKS, signed POSTs over a real
socket to the real daemon, rows in SQLite, and the same summary as the SQS demo."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import create_engine, text

from ledbelly.cli.main import main


def test_demo_https_stores_every_signed_event(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("uvicorn")
    monkeypatch.chdir(tmp_path)  # the demo writes its log/ where it runs
    db = tmp_path / "demo.db"
    result = CliRunner().invoke(main, ["demo", "--https", "-n", "200", "--db", f"sqlite:///{db}"])
    assert result.exit_code == 0, result.output
    out = result.output
    assert re.search(r"HTTPS intake at http://127\.0\.0\.1:\d+/live-events", out)
    assert "signed RS256" in out
    assert re.search(r"done: 200 messages in [\d.]+ s \(0 dead letters, 0 unknown\)", out)
    assert "answers: 200 x 200;" in out
    assert "rows per table:" in out and "sample query:" in out
    engine = create_engine(f"sqlite:///{db}")
    try:
        with engine.connect() as conn:
            stored = conn.execute(text("SELECT COUNT(*) FROM ledbelly_messages")).scalar()
            assets = conn.execute(text("SELECT COUNT(*) FROM live_asset_accessed")).scalar()
            dead = conn.execute(text("SELECT COUNT(*) FROM ledbelly_dead_letters")).scalar()
            ids = conn.execute(text("SELECT message_id FROM ledbelly_messages")).scalars().all()
    finally:
        engine.dispose()
    assert stored == 200 and dead == 0
    assert assets and "  live_asset_accessed" in out and str(assets) in out
    # Keys from the events themselves: a Caliper event's id, else a hash of the event.
    assert all(i.startswith(("sha256:", "urn:uuid:")) for i in ids)
