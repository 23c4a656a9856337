"""Inventory of the event types a canvas-lms checkout emits, per format, against schemas/.

Usage: .venv/bin/python scripts/canvas_inventory.py /path/to/canvas-lms [--schemas schemas]

Canvas raw: every ``post_event_stringified("name", ...)`` call found in the checkout's
Ruby sources (lib/ and app/), where it is, the ledbelly table it routes to and whether
that table exists; then the tables in schemas/canvas whose event the checkout no longer
posts. Caliper: every documented event type (``doc/api/data_services/json/caliper/
event-types/<name>.json``), its ``ims_`` table, and whether ledbelly's routing by content
(``ledbelly.parsers.caliper_routes``) sends the documented example there. Run it against
each Canvas release and diff the output with schemas/CANVAS.md.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import yaml

POST = re.compile(r"""post_event_stringified\(\s*["']([A-Za-z0-9_.\-]+)["']""")
EVENT_LINE = re.compile(r"^event:\s*(\S+)\s*$", re.MULTILINE)
SEARCHED = ("lib", "app")


@dataclass(frozen=True)
class Posted:
    event: str
    path: str
    line: int


def table_for(event: str) -> str:
    """The ledbelly table of a Canvas raw event (see schemas/README.md)."""
    return "live_" + re.sub(r"[^A-Za-z0-9_]", "_", event)


def posted_events(checkout: Path) -> list[Posted]:
    """Every literal event name passed to post_event_stringified, first place it appears."""
    found: dict[str, Posted] = {}
    files: list[Path] = []
    for top in SEARCHED:
        if (checkout / top).is_dir():
            files.extend(sorted((checkout / top).rglob("*.rb")))
    main_file = checkout / "lib" / "canvas" / "live_events.rb"
    if main_file in files:  # the helpers file first, so its lines are the ones cited
        files.remove(main_file)
        files.insert(0, main_file)
    for path in files:
        text = path.read_text(encoding="utf-8", errors="replace")
        for match in POST.finditer(text):
            name = match.group(1)
            if name not in found:
                line = text.count("\n", 0, match.start()) + 1
                found[name] = Posted(name, str(path.relative_to(checkout)), line)
    return sorted(found.values(), key=lambda p: p.event)


def schema_events(schema_dir: Path) -> dict[str, str]:
    """Event name -> table name of every Canvas raw schema file."""
    out: dict[str, str] = {}
    for path in sorted((schema_dir / "canvas").glob("live_*.yml")):
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
        if isinstance(doc, dict) and doc.get("format") == "canvas" and doc.get("event"):
            out[str(doc["event"])] = str(doc["table"])
    return out


def commit_of(checkout: Path) -> str:
    try:
        done = subprocess.run(
            ["git", "-C", str(checkout), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        )
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return done.stdout.strip() or "unknown"


def inventory(checkout: Path, schema_dir: Path) -> str:
    commit = commit_of(checkout)
    posted = posted_events(checkout)
    tables = schema_events(schema_dir)
    lines = [
        f"Canvas checkout at commit `{commit}`.",
        "",
        "| event | posted from | table | status |",
        "|---|---|---|---|",
    ]
    for p in posted:
        status = "existing" if p.event in tables else "new"
        lines.append(f"| `{p.event}` | {p.path}:{p.line} | `{table_for(p.event)}` | {status} |")
    names = {p.event for p in posted}
    gone = [(event, table) for event, table in sorted(tables.items()) if event not in names]
    if gone:
        lines += [
            "",
            "Tables whose event this checkout does not post with a literal name "
            "(emitted elsewhere, e.g. by Quizzes.Next, or no longer emitted):",
            "",
            "| event | table |",
            "|---|---|",
        ]
        lines += [f"| `{event}` | `{table}` |" for event, table in gone]
    return "\n".join(lines) + "\n"


CALIPER_DOCS = Path("doc/api/data_services/json/caliper/event-types")


def caliper_inventory(checkout: Path, schema_dir: Path) -> str:
    """The documented Caliper event types, their tables, and where routing sends them."""
    from ledbelly.parsers.caliper_routes import event_name

    tables = {p.stem for p in (schema_dir / "caliper").glob("ims_*.yml")}
    lines = [
        "| event | documented in | table | status | routed by content |",
        "|---|---|---|---|---|",
    ]
    for doc in sorted((checkout / CALIPER_DOCS).glob("*.json")):
        name, table = doc.stem, "ims_" + re.sub(r"[^A-Za-z0-9_]", "_", doc.stem)
        routed = set()
        for example in json.loads(doc.read_text(encoding="utf-8")).get("examples", []):
            for event in example.get("payload", {}).get("data", []):
                routed.add(event_name(event) or "(none)")
        status = "existing" if table in tables else "new"
        shown = ", ".join(sorted(routed)) or "(no example)"
        lines.append(f"| `{name}` | {CALIPER_DOCS / doc.name} | `{table}` | {status} | {shown} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("checkout", type=Path, help="a local canvas-lms checkout")
    parser.add_argument(
        "--schemas",
        type=Path,
        default=Path(__file__).resolve().parent.parent / "schemas",
        help="the ledbelly schema directory (default: ./schemas)",
    )
    args = parser.parse_args(argv)
    checkout: Path = args.checkout
    if not (checkout / "lib" / "canvas" / "live_events.rb").is_file():
        print(
            f"{checkout} has no lib/canvas/live_events.rb: not a canvas-lms checkout",
            file=sys.stderr,
        )
        return 2
    sys.stdout.write(inventory(checkout, args.schemas))
    sys.stdout.write("\nCaliper:\n\n" + caliper_inventory(checkout, args.schemas))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
