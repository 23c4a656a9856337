"""What ``synchronous=FULL`` costs the daemon on SQLite, the embedded default.

Usage: .venv/bin/python benchmarks/sqlite_sync.py [--events 20000] [--runs 3]

The daemon deletes a message from SQS once its batch has committed; with SQLite's WAL at
``synchronous=NORMAL`` a power cut can still lose the last commits, and with them
messages SQS no longer has. So the daemon runs at FULL (the WAL is on disk when a commit
returns) and ``ingest``, whose input is still there to rerun, at NORMAL. This times the
real daemon, fed by the in-memory source (no SQS server in the way), with the same
simulated messages into a fresh SQLite file each way.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

from ledbelly.daemon.worker import Binding, Daemon, WorkerOptions
from ledbelly.db.engine import normalize_url
from ledbelly.message import Message
from ledbelly.pipeline import Pipeline, PipelineSettings
from ledbelly.simulate import generate_messages
from ledbelly.sources.memory import MemorySource

ROOT = Path(__file__).resolve().parent.parent


def messages(events: int) -> list[Message]:
    out = []
    for raw in generate_messages(events, seed=9, fmt="mixed"):
        attrs = {k: v["StringValue"] for k, v in raw.get("MessageAttributes", {}).items()}
        out.append(Message(str(raw["MessageId"]), str(raw["Body"]), attrs))
    return out


def one_run(workdir: Path, batch: list[Message], durable: bool) -> float:
    """Seconds from the daemon's start until every message is committed and acked."""
    db = workdir / f"{'full' if durable else 'normal'}-{time.monotonic_ns()}.db"
    settings = PipelineSettings(url=normalize_url(f"sqlite:///{db}"), log_dir=workdir / "log",
                                schema_dir=ROOT / "schemas", create_missing=True,
                                durable=durable)  # fmt: skip
    pipeline = Pipeline(settings)
    pipeline.prepare()
    fresh = [Message(m.message_id, m.body, dict(m.attributes)) for m in batch]
    daemon = Daemon(pipeline, [Binding(MemorySource(fresh), 2, 0.1)],
                    WorkerOptions(batch_size=500, max_batch_wait=1.0))  # fmt: skip
    started = time.monotonic()
    daemon.start()
    try:
        if not daemon.wait_until_consumed(len(batch), 600):
            raise SystemExit("the daemon did not finish in 600 s")
        return time.monotonic() - started
    finally:
        daemon.stop()
        daemon.wait()
        pipeline.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    batch = messages(args.events)
    times: dict[str, list[float]] = {"FULL": [], "NORMAL": []}
    with tempfile.TemporaryDirectory(prefix="ledbelly-sqlite-sync-") as tmp:
        for run in range(args.runs):
            for label, durable in (("FULL", True), ("NORMAL", False)):  # alternated
                times[label].append(one_run(Path(tmp), batch, durable))
                print(f"run {run + 1} synchronous={label}: "
                      f"{args.events / times[label][-1]:,.0f} messages/s", flush=True)  # fmt: skip
    rate = {k: args.events / statistics.median(v) for k, v in times.items()}
    print(f"\nmedian of {args.runs}: FULL {rate['FULL']:,.0f} messages/s, NORMAL "
          f"{rate['NORMAL']:,.0f} messages/s; FULL costs "
          f"{1 - rate['FULL'] / rate['NORMAL']:.0%}")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
