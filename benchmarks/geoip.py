"""What the geoip extension costs ``ledbelly ingest``: the same events with it off and on.

Usage: .venv/bin/python benchmarks/geoip.py [--events 20000] [--runs 3] [--db URL]

Each run is the command a user runs (a subprocess, wall clock) into a fresh PostgreSQL
database, from a working directory whose ``cfg/ledbelly.yml`` turns geoip on (LEDbelly's
``services: [maxmind]``) or not. The ``.mmdb`` is built here with mmdb-writer and holds a
city for every documentation prefix the simulator draws client IPs from, so every event
has an IP to look up. geoip works in its own thread after each commit (it never delays
an acknowledgement), so its cost is CPU taken from the parsers on a 2-core machine.
The target (issue 13): ingest with geoip within 10% of without.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import mmdb_writer
import netaddr
from sqlalchemy import create_engine, text

ROOT = Path(__file__).resolve().parent.parent
LEDBELLY = ROOT / ".venv" / "bin" / "ledbelly"
ADMIN = "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres"
CITY = {
    "city": {"geoname_id": 1, "names": {"en": "Springfield"}},
    "continent": {"code": "NA", "geoname_id": 2, "names": {"en": "North America"}},
    "country": {"iso_code": "US", "geoname_id": 3, "names": {"en": "United States"}},
    "location": {"latitude": 39.8, "longitude": -89.6, "time_zone": "America/Chicago"},
    "postal": {"code": "62701"},
    "subdivisions": [{"iso_code": "IL", "geoname_id": 4, "names": {"en": "Illinois"}}],
}


def build_mmdb(path: Path) -> None:
    writer = mmdb_writer.MMDBWriter(
        ip_version=6, database_type="GeoLite2-City", languages=["en"], ipv4_compatible=True
    )
    for network in ("192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24"):
        writer.insert_network(netaddr.IPSet([network]), CITY)
    writer.to_db_file(str(path))


def fresh_database(name: str) -> str:
    engine = create_engine(ADMIN, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    engine.dispose()
    return f"postgresql://postgres@127.0.0.1:5432/{name}"


def one_run(workdir: Path, events: Path, url: str) -> float:
    started = time.monotonic()
    subprocess.run(
        [str(LEDBELLY), "ingest", "--db", url, "--create-missing", str(events)],
        cwd=workdir,
        check=True,
        capture_output=True,
    )
    return time.monotonic() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="ledbelly-geoip-") as tmp:
        work = Path(tmp)
        events = work / "events.jsonl"
        with events.open("wb") as out:
            subprocess.run(
                [str(LEDBELLY), "simulate", "-n", str(args.events), "--seed", "5"],
                stdout=out,
                check=True,
            )
        build_mmdb(work / "city.mmdb")
        off, on = work / "off", work / "on"
        for folder in (off, on):
            (folder / "cfg").mkdir(parents=True)
        (on / "cfg" / "ledbelly.yml").write_text(
            f"services: [maxmind]\nextensions:\n  geoip:\n    database: {work / 'city.mmdb'}\n"
        )
        times: dict[str, list[float]] = {"off": [], "on": []}
        for run in range(args.runs):
            for label, folder in (("off", off), ("on", on)):  # alternate: drift hits both
                url = fresh_database(f"ledbelly_bench_geoip_{label}")
                times[label].append(one_run(folder, events, url))
                print(
                    f"run {run + 1} geoip {label}: {args.events / times[label][-1]:,.0f} events/s",
                    flush=True,
                )
        rate = {k: args.events / statistics.median(v) for k, v in times.items()}
        print(
            f"\nmedian of {args.runs}: geoip off {rate['off']:,.0f} events/s, "
            f"on {rate['on']:,.0f} events/s, ratio {rate['on'] / rate['off']:.2f} "
            f"(target >= 0.90)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
