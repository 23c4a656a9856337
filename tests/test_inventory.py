"""scripts/canvas_inventory.py: the next Canvas release is a diff, per format."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from conftest import ROOT, SCHEMAS, require_docs

SCRIPT = ROOT / "scripts" / "canvas_inventory.py"
NOT_EVENTS = ("metadata.json", "extensions.json", "actor_extensions.json")


def test_the_inventory_lists_both_formats_and_routes_each_documented_caliper_event(
    tmp_path: Path,
) -> None:
    docs = require_docs()
    checkout = tmp_path / "canvas-lms"
    (checkout / "lib" / "canvas").mkdir(parents=True)
    (checkout / "lib" / "canvas" / "live_events.rb").write_text(
        "post_event_stringified('asset_accessed', data)\n"
        'post_event_stringified("brand_new_event", data)\n'
    )
    caliper = checkout / "doc" / "api" / "data_services" / "json" / "caliper" / "event-types"
    caliper.mkdir(parents=True)
    for path in (docs / "caliper").glob("*.json"):
        if path.name not in NOT_EVENTS:
            shutil.copy(path, caliper / path.name)
    out = subprocess.run(
        [sys.executable, str(SCRIPT), str(checkout), "--schemas", str(SCHEMAS)],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    assert (
        "| `asset_accessed` | lib/canvas/live_events.rb:1 | `live_asset_accessed` | existing |"
        in out
    )
    assert (
        "| `brand_new_event` | lib/canvas/live_events.rb:2 | `live_brand_new_event` | new |" in out
    )
    rows = [line for line in out.split("Caliper:")[1].splitlines() if line.startswith("| `")]
    assert len(rows) == len(list(caliper.glob("*.json")))
    for row in rows:
        cells = [c.strip() for c in row.strip("|").split("|")]
        assert cells[3] == "existing" and cells[4] == cells[0].strip("`"), row
