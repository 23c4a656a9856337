"""What the daemon is doing, as numbers: a registry plus an optional /metrics endpoint.

Operators alert on a stalled consumer or a database that is down; they need counters
they can scrape without reading logs. The registry is one lock over plain numbers (the
writers are a handful of threads, a scrape is rare), and the text it renders is
Prometheus exposition format 0.0.4, so any Prometheus-compatible scraper reads it with
no client library. The HTTP server is stdlib ``ThreadingHTTPServer`` in a daemon
thread; ``/healthz`` answers from a callback so a load balancer or systemd check sees
the same health the daemon acts on.
"""

from __future__ import annotations

import bisect
import math
import socket
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

PREFIX = "ledbelly_"
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
OUTCOMES = ("inserted", "unknown", "dead_letter", "duplicate")
# SQS hands out at most 10 messages a receive, but the sink groups several receives.
BATCH_SIZE_BUCKETS = (1.0, 2.0, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0)
INSERT_SECONDS_BUCKETS = (
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
)

Health = Callable[[], tuple[bool, str]]


def format_value(value: float) -> str:
    """A sample value as Prometheus writes it: integers bare, +Inf/-Inf/NaN spelled out."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if float(value).is_integer() and abs(value) < 1e15:
        return str(int(value))
    return repr(float(value))


def escape_label(value: str) -> str:
    """Label values escape backslash, double quote and newline (format 0.0.4)."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def escape_help(text: str) -> str:
    """HELP text escapes only backslash and newline."""
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def sample(name: str, value: float, labels: Sequence[tuple[str, str]] = ()) -> str:
    """One exposition line: ``name{k="v",...} value``."""
    if labels:
        inner = ",".join(f'{key}="{escape_label(val)}"' for key, val in labels)
        return f"{name}{{{inner}}} {format_value(value)}"
    return f"{name} {format_value(value)}"


def header(name: str, kind: str, help_text: str) -> list[str]:
    return [f"# HELP {name} {escape_help(help_text)}", f"# TYPE {name} {kind}"]


class Histogram:
    """A Prometheus histogram: per-bucket counts, rendered cumulatively. Not locked."""

    def __init__(self, buckets: Iterable[float]) -> None:
        self.bounds = tuple(sorted(set(buckets)))
        self.counts = [0] * (len(self.bounds) + 1)  # the last one is +Inf
        self.sum = 0.0
        self.count = 0

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(self.bounds, value)] += 1
        self.sum += value
        self.count += 1

    def lines(self, name: str) -> list[str]:
        out, running = [], 0
        for bound, count in zip((*self.bounds, math.inf), self.counts, strict=True):
            running += count
            out.append(sample(f"{name}_bucket", running, [("le", format_value(bound))]))
        out.append(sample(f"{name}_sum", self.sum))
        out.append(sample(f"{name}_count", self.count))
        return out


class Metrics:
    """The daemon's counters and gauges; every method is safe to call from any thread.

    ``record_message`` with ``table=None`` (an event no table is defined for) is counted
    under ``table=""``, which Prometheus treats as the label being absent.
    """

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._messages: dict[tuple[str, str], int] = {}
        self._retries: dict[str, int] = {}
        self._batch_size = Histogram(BATCH_SIZE_BUCKETS)
        self._insert_seconds = Histogram(INSERT_SECONDS_BUCKETS)
        self._database_up = False
        self._consuming = False
        self._oldest_age = 0.0
        self._backlog = 0
        self._last_event: str | None = None
        self._last_event_at: float | None = None

    def record_message(self, table: str | None, outcome: str) -> None:
        """Count one message by where it went; an unknown outcome is a caller bug."""
        if outcome not in OUTCOMES:
            raise ValueError(f"outcome must be one of {OUTCOMES}, not {outcome!r}")
        key = (table or "", outcome)
        with self._lock:
            self._messages[key] = self._messages.get(key, 0) + 1
            if table is not None:
                self._last_event, self._last_event_at = table, self._clock()

    def observe_batch(self, size: int, seconds: float) -> None:
        """One committed batch: how many rows, and how long the insert took."""
        with self._lock:
            self._batch_size.observe(float(size))
            self._insert_seconds.observe(seconds)

    def record_retry(self, kind: str) -> None:
        """One retried call, by what failed (e.g. 'database', 'sqs')."""
        with self._lock:
            self._retries[kind] = self._retries.get(kind, 0) + 1

    def set_database_up(self, up: bool) -> None:
        with self._lock:
            self._database_up = up

    def set_consuming(self, flag: bool) -> None:
        with self._lock:
            self._consuming = flag

    def observe_message_age(self, seconds: float) -> None:
        """Age of the oldest message in the last batch (now minus SQS SentTimestamp)."""
        with self._lock:
            self._oldest_age = max(0.0, seconds)

    def set_backlog(self, n: int) -> None:
        """Messages fetched from the queue and held in memory, not yet committed."""
        with self._lock:
            self._backlog = n

    def snapshot(self) -> dict[str, Any]:
        """A consistent copy of the numbers a status line or a STATUS= notice shows."""
        with self._lock:
            outcomes = dict.fromkeys(OUTCOMES, 0)
            for (_, outcome), n in self._messages.items():
                outcomes[outcome] += n
            return {
                "events_total": sum(outcomes.values()),
                "outcomes": outcomes,
                "dead_letters": outcomes["dead_letter"],
                "last_event": self._last_event,
                "last_event_at": self._last_event_at,
                "backlog": self._backlog,
                "retries": dict(self._retries),
                "database_up": self._database_up,
                "consuming": self._consuming,
                "oldest_message_age": self._oldest_age,
                "batches": self._batch_size.count,
            }

    def render(self) -> str:
        """The whole registry in Prometheus text exposition format 0.0.4."""
        with self._lock:
            lines = header(
                f"{PREFIX}messages_total",
                "counter",
                "Messages handled, by destination table and outcome.",
            )
            for (table, outcome), n in sorted(self._messages.items()):
                lines.append(
                    sample(f"{PREFIX}messages_total", n, [("table", table), ("outcome", outcome)])
                )
            lines += header(f"{PREFIX}batch_size", "histogram", "Rows per committed batch.")
            lines += self._batch_size.lines(f"{PREFIX}batch_size")
            lines += header(
                f"{PREFIX}insert_seconds",
                "histogram",
                "Seconds spent inserting and committing one batch.",
            )
            lines += self._insert_seconds.lines(f"{PREFIX}insert_seconds")
            lines += header(
                f"{PREFIX}retries_total",
                "counter",
                "Retried calls after a transient failure, by what failed.",
            )
            for kind, n in sorted(self._retries.items()):
                lines.append(sample(f"{PREFIX}retries_total", n, [("kind", kind)]))
            gauges = (
                (
                    "database_up",
                    "1 if the last database call succeeded, else 0.",
                    float(self._database_up),
                ),
                (
                    "consuming",
                    "1 while the daemon is receiving from its queues, else 0.",
                    float(self._consuming),
                ),
                (
                    "oldest_message_age_seconds",
                    "Age of the oldest message in the last batch, from SQS SentTimestamp.",
                    self._oldest_age,
                ),
                (
                    "backlog_messages",
                    "Messages received and held in memory, not committed.",
                    float(self._backlog),
                ),
            )
            for name, help_text, value in gauges:
                lines += header(PREFIX + name, "gauge", help_text)
                lines.append(sample(PREFIX + name, value))
        return "\n".join(lines) + "\n"

    # ----- the HTTPS intake: its numbers live apart, made on first use -------------------

    def _intake(self) -> _IntakeCounters:
        """The intake's counters (call with the lock held); a daemon without it has none."""
        counters: _IntakeCounters | None = self.__dict__.get("_intake_counters")
        if counters is None:
            counters = self.__dict__["_intake_counters"] = _IntakeCounters()
        return counters

    def record_https_request(self, status: int, seconds: float | None = None) -> None:
        """One answered POST by HTTP status; ``seconds`` from arrival to commit for 2xx."""
        with self._lock:
            counters = self._intake()
            counters.requests[status] = counters.requests.get(status, 0) + 1
            if seconds is not None:
                counters.commit_seconds.observe(seconds)

    def record_https_rejection(self, reason: str) -> None:
        """One request refused by verification (bad signature, expired, unknown kid...)."""
        with self._lock:
            counters = self._intake()
            counters.rejections[reason] = counters.rejections.get(reason, 0) + 1

    def record_jwks_fetch(self, ok: bool) -> None:
        """One fetch of the signing keys, and whether it worked."""
        with self._lock:
            counters = self._intake()
            key = "ok" if ok else "failed"
            counters.jwks_fetches[key] = counters.jwks_fetches.get(key, 0) + 1

    def https_snapshot(self) -> dict[str, Any]:
        """The intake's numbers: requests by status, rejections by reason, commit latency."""
        with self._lock:
            c = self._intake()
            return {
                "requests": dict(c.requests),
                "rejections": dict(c.rejections),
                "jwks_fetches": dict(c.jwks_fetches),
                "committed": c.commit_seconds.count,
                "commit_seconds_sum": c.commit_seconds.sum,
            }

    def render_https(self) -> str:
        """The intake's series in exposition format; empty when there is no intake."""
        with self._lock:
            c: _IntakeCounters | None = self.__dict__.get("_intake_counters")
            if c is None:
                return ""
            lines = header(
                f"{PREFIX}https_requests_total",
                "counter",
                "POSTs to the HTTPS intake, by the HTTP status answered.",
            )
            for status, n in sorted(c.requests.items()):
                lines.append(sample(f"{PREFIX}https_requests_total", n, [("status", str(status))]))
            lines += header(
                f"{PREFIX}https_rejections_total",
                "counter",
                "Requests refused by signature verification, by reason.",
            )
            for reason, n in sorted(c.rejections.items()):
                lines.append(sample(f"{PREFIX}https_rejections_total", n, [("reason", reason)]))
            lines += header(
                f"{PREFIX}https_jwks_fetches_total", "counter", "Fetches of the JWKS, by result."
            )
            for result, n in sorted(c.jwks_fetches.items()):
                lines.append(sample(f"{PREFIX}https_jwks_fetches_total", n, [("result", result)]))
            lines += header(
                f"{PREFIX}https_commit_seconds",
                "histogram",
                "Seconds from a POST's arrival to its commit, for 2xx answers.",
            )
            lines += c.commit_seconds.lines(f"{PREFIX}https_commit_seconds")
        return "\n".join(lines) + "\n"


class _IntakeCounters:
    """The HTTPS intake's counters; guarded by ``Metrics._lock``."""

    def __init__(self) -> None:
        self.requests: dict[int, int] = {}
        self.rejections: dict[str, int] = {}
        self.jwks_fetches: dict[str, int] = {}
        self.commit_seconds = Histogram(INSERT_SECONDS_BUCKETS)


class _Server(ThreadingHTTPServer):
    daemon_threads = True  # a slow scraper must not hold up stop()

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler]) -> None:
        self.address_family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        super().__init__(address, handler)


def _handler(metrics: Metrics, health: Health) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "ledbelly"

        def do_GET(self) -> None:
            path = urlsplit(self.path).path
            if path == "/metrics":
                self._reply(200, metrics.render(), CONTENT_TYPE)
            elif path == "/healthz":
                ok, reason = self._health()
                self._reply(200 if ok else 503, "ok\n" if ok else reason.rstrip("\n") + "\n")
            else:
                self._reply(404, "not found; try /metrics or /healthz\n")

        def _health(self) -> tuple[bool, str]:
            try:
                return health()
            except Exception as exc:  # a broken check is unhealthy, not a dead server
                return False, f"health check failed: {exc.__class__.__name__}: {exc}"

        def _reply(
            self, code: int, body: str, content_type: str = "text/plain; charset=utf-8"
        ) -> None:
            data = body.encode("utf-8")
            self.send_response(code)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            """Silent: a scrape every 15 s would otherwise flood stderr."""

    return Handler


class MetricsServer:
    """Serves ``/metrics`` and ``/healthz`` from a daemon thread until ``stop()``."""

    POLL_INTERVAL = 0.2  # how soon serve_forever notices shutdown()

    def __init__(self, metrics: Metrics, host: str, port: int, health: Health) -> None:
        self.metrics = metrics
        self.host = host
        self._port = port
        self.health = health
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        """The bound port once started (the one the OS picked for port 0)."""
        if self._server is not None:
            return int(self._server.server_address[1])
        return self._port

    def start(self) -> None:
        """Bind and serve; an address in use raises OSError here, not in the thread."""
        if self._server is not None:
            raise RuntimeError("MetricsServer is already started")
        self._server = _Server((self.host, self._port), _handler(self.metrics, self.health))
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": self.POLL_INTERVAL},
            name="ledbelly-metrics",
            daemon=True,
        )
        self._thread.start()

    def stop(self) -> None:
        """Stop serving and close the socket; returns within about a second."""
        server, thread = self._server, self._thread
        self._server = self._thread = None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        if thread is not None:
            thread.join(timeout=1.0)
