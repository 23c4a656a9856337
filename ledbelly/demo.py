"""``ledbelly demo``: the real daemon, a local SQS (moto's server) and simulated traffic.

A new user sees the whole path, SQS message to SQL row, without an AWS account or a
database server. ``demo --https`` shows Canvas's HTTPS delivery instead: a signing key
made at run time, its JWKS on a local port, and each simulated event signed RS256 and
POSTed to the daemon's HTTPS intake, which answers 200 once the event has committed.
"""

from __future__ import annotations

import asyncio
import json
import math
import socket
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from sqlalchemy import text

from ledbelly.config import (
    AwsSettings,
    DaemonSettings,
    HttpsSettings,
    QueueSettings,
    WorkerOptions,
)
from ledbelly.db.engine import normalize_url
from ledbelly.errors import ConfigError

FEED_DEPTH = 150  # moto slows down as its queue fills; keep it shallow
ISSUER = "https://live-events.demo.invalid"
DEMO_CLIENTS = 16  # POSTs in flight at once, as Canvas's delivery fleet would have
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


# ----- demo --https -----------------------------------------------------------------------


class LocalSigner:
    """An RSA key made now, standing in for Instructure's: signs events as Canvas does."""

    def __init__(self, kid: str = "demo-key") -> None:
        from cryptography.hazmat.primitives.asymmetric import rsa

        self.kid = kid
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)

    def jwks(self) -> bytes:
        """The public half as a JWKS document, the form Canvas publishes its keys in."""
        from jwt.algorithms import RSAAlgorithm

        jwk: dict[str, Any] = RSAAlgorithm.to_jwk(self.key.public_key(), as_dict=True)
        jwk.update(kid=self.kid, alg="RS256", use="sig")
        return json.dumps({"keys": [jwk]}).encode()

    def sign(self, event: dict[str, Any], lifetime: int = 3600) -> str:
        """A compact RS256 JWT whose claims are the event plus iss, iat and exp."""
        import jwt

        now = int(time.time())
        claims = {**event, "iss": ISSUER, "iat": now, "exp": now + lifetime}
        return jwt.encode(claims, self.key, algorithm="RS256", headers={"kid": self.kid})


class JwksServer:
    """Serves one JWKS document on 127.0.0.1 from a daemon thread."""

    def __init__(self, document: bytes) -> None:
        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(document)))
                self.end_headers()
                self.wfile.write(document)

            def log_message(self, format: str, *args: Any) -> None:
                """Quiet."""

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/jwks"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def simulated_events(count: int, seed: int) -> list[dict[str, Any]]:
    """``count`` events from ``ledbelly.simulate``, as Canvas puts them in a JWT's claims."""
    from ledbelly.simulate import generate_messages

    return [json.loads(m["Body"]) for m in generate_messages(count, seed=seed, fmt="mixed")]


@dataclass
class Delivery:
    """One POST's answer and how long it took to come."""

    status: int
    seconds: float


def post_all(
    url: str, bodies: Sequence[str], clients: int, timeout: float = 30.0
) -> list[Delivery]:
    """POST every body with ``clients`` connections in flight at once (httpx, keep-alive);
    the answers in the order of ``bodies``. A connection error counts as status 0."""
    import httpx

    answers: list[Delivery | None] = [None] * len(bodies)
    todo = iter(range(len(bodies)))

    async def client(http: httpx.AsyncClient) -> None:
        for i in todo:
            started = time.perf_counter()
            try:
                status = (await http.post(url, content=bodies[i])).status_code
            except httpx.HTTPError:
                status = 0
            answers[i] = Delivery(status, time.perf_counter() - started)

    async def main() -> None:
        limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
        async with httpx.AsyncClient(limits=limits, timeout=timeout) as http:
            await asyncio.gather(*(client(http) for _ in range(clients)))

    asyncio.run(main())
    return [a if a is not None else Delivery(0, 0.0) for a in answers]


def https_settings(port: int, jwks_url: str, **worker: Any) -> DaemonSettings:
    """The run configuration of a daemon whose only source is a local HTTPS intake."""
    options = {"batch_size": 500, "max_batch_wait": 0.5, "shutdown_timeout": 10, **worker}
    return DaemonSettings(
        https=HttpsSettings(
            host="127.0.0.1", port=port, jwks_url=jwks_url, issuer=ISSUER, max_pending=5000
        ),
        worker=WorkerOptions(**options),
    )


def run_https_demo(count: int, db_url: str, seed: int, echo: Callable[[str], None]) -> None:
    """``demo --https``: sign simulated events, POST them to the real daemon, show rows."""
    try:
        import httpx  # noqa: F401
        import jwt  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError as exc:
        raise ConfigError(
            f"demo --https needs the https extra ({exc.name} is missing): "
            "pip install 'ledbelly[https]'"
        ) from None
    from ledbelly.daemon.app import build_daemon
    from ledbelly.ops.logsetup import configure_logging

    configure_logging(level="WARNING")
    signer = LocalSigner()
    jwks = JwksServer(signer.jwks())
    try:
        settings = https_settings(free_port(), jwks.url)
        assert settings.https is not None
        tokens = [signer.sign(event) for event in simulated_events(count, seed)]
        daemon = build_daemon(settings, normalize_url(db_url), Path("log"), create_missing=True)
        source = daemon.bindings[0].source
        intake = f"http://127.0.0.1:{getattr(source, 'port', 0)}{settings.https.path}"
        echo(
            f"demo: HTTPS intake at {intake}, JWKS at {jwks.url}, {count} simulated events "
            f"signed RS256 and POSTed by {DEMO_CLIENTS} clients, writing to {db_url}"
        )
        started = time.monotonic()
        daemon.start()
        try:
            answers = post_all(intake, tokens, DEMO_CLIENTS)
            daemon.wait_until_consumed(count, timeout=10.0)
        finally:
            daemon.stop()
            daemon.wait()
        elapsed = time.monotonic() - started
        echo(
            f"\ndone: {daemon.stats.messages} messages in {elapsed:.1f} s "
            f"({daemon.stats.dead_letters} dead letters, {daemon.stats.unknown} unknown)"
        )
        echo(f"answers: {_statuses(answers)}; {_latency(answers)}")
        _report(daemon, echo)
        daemon.pipeline.close()
    finally:
        jwks.close()


def _statuses(answers: Iterable[Delivery]) -> str:
    counts: dict[int, int] = {}
    for a in answers:
        counts[a.status] = counts.get(a.status, 0) + 1
    return ", ".join(f"{n} x {status or 'no answer'}" for status, n in sorted(counts.items()))


def percentile(values: Sequence[float], p: float) -> float:
    """The nearest-rank percentile (``p`` in 0..100) of ``values``; 0 for none."""
    if not values:
        return 0.0
    ranked = sorted(values)
    return ranked[min(len(ranked) - 1, max(0, math.ceil(p / 100 * len(ranked)) - 1))]


def _latency(answers: Sequence[Delivery]) -> str:
    ok = [a.seconds for a in answers if 200 <= a.status < 300]
    return (
        f"time to 2xx p50 {percentile(ok, 50) * 1000:.0f} ms, "
        f"p99 {percentile(ok, 99) * 1000:.0f} ms"
    )
