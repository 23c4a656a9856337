"""``ledbelly demo``: the real daemon, a local SQS (moto's server) and simulated traffic.

A new user sees the whole path, SQS message to SQL row, without an AWS account or a
database server.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import text

from ledbelly.config import AwsSettings, DaemonSettings, QueueSettings, WorkerOptions
from ledbelly.db.engine import normalize_url
from ledbelly.errors import ConfigError

FEED_DEPTH = 150  # moto slows down as its queue fills; keep it shallow
SAMPLE_QUERY = (
    "SELECT asset_type, COUNT(*) AS events FROM live_asset_accessed "
    "GROUP BY asset_type ORDER BY events DESC, asset_type LIMIT 5"
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_local_sqs() -> tuple[Any, str]:
    """moto's SQS server on 127.0.0.1 and a free port; returns (server, endpoint URL)."""
    try:
        from moto.server import ThreadedMotoServer
    except ImportError:
        raise ConfigError("the demo needs moto's server: pip install 'ledbelly[demo]'") from None
    import logging

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    return server, f"http://127.0.0.1:{port}"


def feed(
    client: Any, queue_url: str, messages: list[dict[str, Any]], stop: threading.Event
) -> None:
    """Send simulated messages, keeping the queue shallow the way real traffic does."""
    i = 0
    while i < len(messages) and not stop.is_set():
        attrs = client.get_queue_attributes(
            QueueUrl=queue_url, AttributeNames=["ApproximateNumberOfMessages"]
        )["Attributes"]
        if int(attrs["ApproximateNumberOfMessages"]) > FEED_DEPTH:
            time.sleep(0.2)
            continue
        chunk = messages[i : i + 10]
        client.send_message_batch(
            QueueUrl=queue_url,
            Entries=[
                {
                    "Id": str(n),
                    "MessageBody": m["Body"],
                    "MessageAttributes": {
                        k: {"DataType": "String", "StringValue": v["StringValue"]}
                        for k, v in m["MessageAttributes"].items()
                    },
                }
                for n, m in enumerate(chunk)
            ],
        )
        i += len(chunk)


def run_demo(count: int, db_url: str, seed: int, echo: Callable[[str], None]) -> None:
    from ledbelly.daemon.app import build_daemon
    from ledbelly.ops.logsetup import configure_logging
    from ledbelly.simulate import generate_messages
    from ledbelly.sources.sqs import sqs_client

    configure_logging(level="WARNING")
    server, endpoint = start_local_sqs()
    stop_feed = threading.Event()
    try:
        aws = AwsSettings(
            region="us-east-1",
            access_key_id="demo",
            secret_access_key="demo",
            endpoint_url=endpoint,
        )
        client = sqs_client(aws)
        queue_url = client.create_queue(QueueName="canvas-live-events-demo")["QueueUrl"]
        messages = list(generate_messages(count, seed=seed, fmt="mixed"))
        feeder = threading.Thread(
            target=feed, args=(client, queue_url, messages, stop_feed), daemon=True
        )
        feeder.start()
        settings = DaemonSettings(
            queues=(QueueSettings(queue_url, 2, 1, 60),),
            aws=aws,
            worker=WorkerOptions(batch_size=200, max_batch_wait=0.5, shutdown_timeout=10),
        )
        url = normalize_url(db_url)
        daemon = build_daemon(settings, url, Path("log"), create_missing=True)
        echo(f"demo: local SQS at {endpoint}, {count} simulated events, writing to {db_url}")
        started = time.monotonic()
        daemon.start()
        try:
            daemon.wait_until_consumed(count, timeout=max(120.0, count / 10))
        finally:
            daemon.stop()
            daemon.wait()
        elapsed = time.monotonic() - started
        echo(
            f"\ndone: {daemon.stats.messages} messages in {elapsed:.1f} s "
            f"({daemon.stats.dead_letters} dead letters, {daemon.stats.unknown} unknown)"
        )
        _report(daemon, echo)
        daemon.pipeline.close()
    finally:
        stop_feed.set()
        server.stop()


def _report(daemon: Any, echo: Callable[[str], None]) -> None:
    echo("rows per table:")
    for table, n in sorted(daemon.stats.tables.items(), key=lambda kv: (-kv[1], kv[0]))[:15]:
        echo(f"  {table:<40} {n:>7}")
    echo(f"\nsample query: {SAMPLE_QUERY}")
    with daemon.pipeline.engine.connect() as conn:
        for row in conn.execute(text(SAMPLE_QUERY)):
            echo(f"  {row[0]!s:<24} {row[1]:>7}")
