"""What the daemon is doing, as numbers: a Prometheus registry plus /metrics and /healthz.

Operators alert on a stalled consumer, a database that is down, or an HTTPS intake that
answers 503; they need series they can scrape without reading logs. Each ``Metrics``
owns a ``prometheus_client.CollectorRegistry`` (never the global one, so two daemons in
one test process do not mix their counts); the client renders the exposition text and
its WSGI/ASGI apps serve it. ``MetricsServer`` runs that WSGI app, with ``/healthz``
beside it, on a threading ``wsgiref`` server in a daemon thread. The HTTPS intake can
serve the same two paths on its own port instead (``HttpsSource(serve_metrics=True)``).

``snapshot()`` reads the same series back for the status line and systemd's STATUS=.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server
from wsgiref.types import StartResponse, WSGIApplication, WSGIEnvironment

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    make_wsgi_app,
)
from prometheus_client.core import CounterMetricFamily
from prometheus_client.metrics import MetricWrapperBase
from prometheus_client.registry import Collector
from prometheus_client.samples import Sample

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
ExtensionCounts = Callable[[], Mapping[str, Mapping[str, int]]]


def _samples(metric: MetricWrapperBase, suffix: str = "") -> Iterator[Sample]:
    """The samples of one metric whose name ends in ``suffix`` (public ``collect()``)."""
    for family in metric.collect():
        for s in family.samples:
            if s.name.endswith(suffix):
                yield s


def _value(metric: MetricWrapperBase, suffix: str = "") -> float:
    return next((s.value for s in _samples(metric, suffix)), 0.0)


def _by_label(metric: MetricWrapperBase, label: str, suffix: str = "_total") -> dict[str, int]:
    out: dict[str, int] = {}
    for s in _samples(metric, suffix):
        out[s.labels[label]] = out.get(s.labels[label], 0) + int(s.value)
    return out


class Metrics:
    """The daemon's counters, gauges and histograms; every method is thread-safe.

    ``record_message`` with ``table=None`` (an event no table is defined for) is counted
    under ``table=""``, which Prometheus treats as the label being absent.
    """

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self.registry = r = CollectorRegistry()
        self._messages = Counter(
            "ledbelly_messages",
            "Messages handled, by destination table and outcome.",
            ["table", "outcome"],
            registry=r,
        )
        self._batch_size = Histogram(
            "ledbelly_batch_size",
            "Rows per committed batch.",
            buckets=BATCH_SIZE_BUCKETS,
            registry=r,
        )
        self._insert_seconds = Histogram(
            "ledbelly_insert_seconds",
            "Seconds spent inserting and committing one batch.",
            buckets=INSERT_SECONDS_BUCKETS,
            registry=r,
        )
        self._retries = Counter(
            "ledbelly_retries",
            "Retried calls after a transient failure, by what failed.",
            ["kind"],
            registry=r,
        )
        self._database_up = Gauge(
            "ledbelly_database_up", "1 if the last database call succeeded, else 0.", registry=r
        )
        self._consuming = Gauge(
            "ledbelly_consuming",
            "1 while the daemon is receiving from its sources, else 0.",
            registry=r,
        )
        self._oldest_age = Gauge(
            "ledbelly_oldest_message_age_seconds",
            "Age of the oldest message in the last batch, from SQS SentTimestamp.",
            registry=r,
        )
        self._backlog = Gauge(
            "ledbelly_backlog_messages",
            "Messages received and held in memory, not committed.",
            registry=r,
        )
        self._last_event: str | None = None
        self._last_event_at: float | None = None
        self._https: _IntakeMetrics | None = None
        self._extensions: _ExtensionCollector | None = None

    # ----- what the daemon records ---------------------------------------------------------

    def record_message(self, table: str | None, outcome: str) -> None:
        """Count one message by where it went; an unknown outcome is a caller bug."""
        if outcome not in OUTCOMES:
            raise ValueError(f"outcome must be one of {OUTCOMES}, not {outcome!r}")
        self._messages.labels(table or "", outcome).inc()
        if table is not None:
            with self._lock:
                self._last_event, self._last_event_at = table, self._clock()

    def observe_batch(self, size: int, seconds: float) -> None:
        """One committed batch: how many rows, and how long the insert took."""
        self._batch_size.observe(float(size))
        self._insert_seconds.observe(seconds)

    def record_retry(self, kind: str) -> None:
        """One retried call, by what failed (e.g. 'database', 'sqs')."""
        self._retries.labels(kind).inc()

    def set_database_up(self, up: bool) -> None:
        self._database_up.set(1 if up else 0)

    def set_consuming(self, flag: bool) -> None:
        self._consuming.set(1 if flag else 0)

    def observe_message_age(self, seconds: float) -> None:
        """Age of the oldest message in the last batch (now minus SQS SentTimestamp)."""
        self._oldest_age.set(max(0.0, seconds))

    def set_backlog(self, n: int) -> None:
        """Messages fetched from the sources and held in memory, not yet committed."""
        self._backlog.set(n)

    def watch_extensions(self, counts: ExtensionCounts) -> None:
        """Expose the extensions' counts, read from ``counts`` at each scrape (the daemon
        passes ``ExtensionHost.snapshot``): failures, dropped batches, and each one's own
        ``stats`` (geoip: looked_up, stored, not_found, invalid)."""
        with self._lock:
            if self._extensions is None:
                self._extensions = _ExtensionCollector(counts)
                self.registry.register(self._extensions)
            else:
                self._extensions.counts = counts

    # ----- reading it back -----------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        """The numbers a status line or a STATUS= notice shows."""
        outcomes = dict.fromkeys(OUTCOMES, 0)
        for outcome, n in _by_label(self._messages, "outcome").items():
            outcomes[outcome] += n
        with self._lock:
            last_event, last_event_at = self._last_event, self._last_event_at
        return {
            "events_total": sum(outcomes.values()),
            "outcomes": outcomes,
            "dead_letters": outcomes["dead_letter"],
            "last_event": last_event,
            "last_event_at": last_event_at,
            "backlog": int(_value(self._backlog)),
            "retries": _by_label(self._retries, "kind"),
            "database_up": _value(self._database_up) == 1,
            "consuming": _value(self._consuming) == 1,
            "oldest_message_age": _value(self._oldest_age),
            "batches": int(_value(self._batch_size, "_count")),
        }

    def render(self) -> str:
        """The whole registry in the Prometheus text exposition format (0.0.4)."""
        return generate_latest(self.registry).decode("utf-8")

    # ----- the HTTPS intake: its series are registered on first use ------------------------

    @property
    def https(self) -> _IntakeMetrics:
        """The intake's series, registered the first time they are asked for; a daemon
        without the intake shows none of them."""
        with self._lock:
            if self._https is None:
                self._https = _IntakeMetrics()
                self.registry.register(self._https.registry)
            return self._https

    def record_https_request(self, status: int, seconds: float | None = None) -> None:
        """One answered POST by HTTP status; ``seconds`` from arrival to commit for 2xx."""
        self.https.record_request(status, seconds)

    def record_https_rejection(self, reason: str) -> None:
        """One request refused by verification (bad signature, expired, unknown kid...)."""
        self.https.rejections.labels(reason).inc()

    def record_jwks_fetch(self, ok: bool) -> None:
        """One fetch of the signing keys, and whether it worked."""
        self.https.jwks_fetches.labels("ok" if ok else "failed").inc()

    def https_snapshot(self) -> dict[str, Any]:
        """The intake's numbers: requests by status, rejections by reason, commit latency."""
        h = self.https
        return {
            "requests": {int(k): v for k, v in _by_label(h.requests, "status").items()},
            "rejections": _by_label(h.rejections, "reason"),
            "jwks_fetches": _by_label(h.jwks_fetches, "result"),
            "committed": int(_value(h.commit_seconds, "_count")),
            "commit_seconds_sum": _value(h.commit_seconds, "_sum"),
        }

    def render_https(self) -> str:
        """The intake's series alone in exposition format; empty when there is no intake."""
        with self._lock:
            intake = self._https
        return "" if intake is None else generate_latest(intake.registry).decode("utf-8")


class _IntakeMetrics:
    """The HTTPS intake's series, in a registry of their own inside the daemon's."""

    def __init__(self) -> None:
        self.registry = r = CollectorRegistry()
        self.requests = Counter(
            "ledbelly_https_requests",
            "Requests to the HTTPS intake, by the HTTP status answered.",
            ["status"],
            registry=r,
        )
        self.rejections = Counter(
            "ledbelly_https_rejections",
            "Requests refused by verification or allow_from, by reason.",
            ["reason"],
            registry=r,
        )
        self.jwks_fetches = Counter(
            "ledbelly_https_jwks_fetches", "Fetches of the JWKS, by result.", ["result"], registry=r
        )
        self.commit_seconds = Histogram(
            "ledbelly_https_commit_seconds",
            "Seconds from a POST's arrival to its commit, for 2xx answers.",
            buckets=INSERT_SECONDS_BUCKETS,
            registry=r,
        )
        self._by_status: dict[int, Any] = {}

    def record_request(self, status: int, seconds: float | None) -> None:
        child = self._by_status.get(status)
        if child is None:  # labels() takes a lock and formats; the few statuses are cached
            child = self._by_status.setdefault(status, self.requests.labels(str(status)))
        child.inc()
        if seconds is not None:
            self.commit_seconds.observe(seconds)


class _ExtensionCollector(Collector):
    """The extensions' counts, read from ``ExtensionHost.snapshot()`` at each scrape."""

    def __init__(self, counts: ExtensionCounts) -> None:
        self.counts = counts

    def describe(self) -> Iterable[Any]:
        return []  # registering must not call an extension host that is not up yet

    def collect(self) -> Iterator[CounterMetricFamily]:
        failures = CounterMetricFamily(
            "ledbelly_extension_failures",
            "Exceptions raised by an extension's hooks (the batch went on without it).",
            labels=["extension"],
        )
        dropped = CounterMetricFamily(
            "ledbelly_extension_dropped_batches",
            "Committed batches not handed to an extension because its queue was full.",
            labels=["extension"],
        )
        events = CounterMetricFamily(
            "ledbelly_extension_events",
            "What an extension counts itself, by result (geoip: looked_up, stored, "
            "not_found, invalid).",
            labels=["extension", "result"],
        )
        for name, counts in sorted(self.counts().items()):
            for key, n in sorted(counts.items()):
                if key == "failures":
                    failures.add_metric([name], n)
                elif key == "dropped":
                    dropped.add_metric([name], n)
                else:
                    events.add_metric([name, key], n)
        yield from (failures, dropped, events)


# ----- serving it ------------------------------------------------------------------------


def health_text(health: Health) -> tuple[int, str]:
    """The /healthz answer: 200 "ok", or 503 with the reason; a check that raises is 503."""
    try:
        ok, reason = health()
    except Exception as exc:  # a broken check is unhealthy, not a dead server
        ok, reason = False, f"health check failed: {exc.__class__.__name__}: {exc}"
    return (200, "ok\n") if ok else (503, reason.rstrip("\n") + "\n")


def wsgi_app(metrics: Metrics, health: Health) -> WSGIApplication:
    """``/metrics`` by prometheus_client's WSGI app, ``/healthz`` from ``health``, else 404."""
    exporter = make_wsgi_app(metrics.registry)

    def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path == "/metrics":
            return exporter(environ, start_response)  # type: ignore[no-any-return]
        if path == "/healthz":
            status, body = health_text(health)
            reason = "OK" if status == 200 else "Service Unavailable"
        else:
            status, reason, body = 404, "Not Found", "not found; try /metrics or /healthz\n"
        data = body.encode("utf-8")
        start_response(
            f"{status} {reason}",
            [("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", str(len(data)))],
        )
        return [data]

    return app


class _ThreadingWSGIServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True  # a slow scraper must not hold up stop()


class _ThreadingWSGIServerV6(_ThreadingWSGIServer):
    address_family = socket.AF_INET6


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """Silent: a scrape every 15 s would otherwise flood stderr."""


class MetricsServer:
    """Serves ``/metrics`` and ``/healthz`` from a daemon thread until ``stop()``."""

    POLL_INTERVAL = 0.2  # how soon serve_forever notices shutdown()

    def __init__(self, metrics: Metrics, host: str, port: int, health: Health) -> None:
        self.metrics = metrics
        self.host = host
        self._port = port
        self.health = health
        self._server: _ThreadingWSGIServer | None = None
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
        server_class = _ThreadingWSGIServerV6 if ":" in self.host else _ThreadingWSGIServer
        self._server = make_server(
            self.host,
            self._port,
            wsgi_app(self.metrics, lambda: self.health()),
            server_class=server_class,
            handler_class=_QuietHandler,
        )
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
