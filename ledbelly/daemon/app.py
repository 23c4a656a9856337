"""Running the daemon as a process: build the parts, handle signals, exit with a code."""

from __future__ import annotations

import logging
import os
import signal
import sys
from pathlib import Path
from types import FrameType

from sqlalchemy import URL

from ledbelly.config import DaemonSettings
from ledbelly.daemon.worker import Binding, Daemon
from ledbelly.db.engine import safe_url
from ledbelly.errors import ConfigError
from ledbelly.ops.metrics import Health, Metrics, MetricsServer
from ledbelly.ops.notify import Notifier
from ledbelly.ops.status import StatusLine, is_tty
from ledbelly.ops.tuning import tune_gc, tune_threads
from ledbelly.pipeline import Pipeline, PipelineSettings
from ledbelly.sources.sqs import SqsSource, sqs_client

log = logging.getLogger("ledbelly.daemon")
EXIT_FORCED = 130


def build_daemon(
    settings: DaemonSettings,
    url: URL,
    log_dir: Path,
    create_missing: bool | None,
    schema_dir: Path | None = None,
    status: bool | None = None,
    pool_size: int | None = None,
) -> Daemon:
    """Everything ``ledbelly run`` needs, wired, not yet started."""
    writers = settings.worker.writer_count(url.get_backend_name())
    pipeline = Pipeline(
        PipelineSettings(
            url=url,
            log_dir=log_dir,
            schema_dir=schema_dir,
            create_missing=create_missing,
            live_stream=settings.live_stream,
            time_zone=settings.time_zone,
            batch_size=settings.worker.batch_size,
            pool_size=pool_size or max(2, writers + 1),
            schema_evolution=settings.schema_evolution,
            extensions=settings.extensions,
        )
    )
    missing = pipeline.prepare()
    if missing:
        log.warning(
            "%d event tables are missing in %s; their events are stored in "
            "ledbelly_unknown_events (use --create-missing)",
            len(missing),
            safe_url(url),
        )
    metrics = Metrics()
    metrics.watch_extensions(lambda: _extension_counts(pipeline))
    built: list[Daemon] = []  # the health of a daemon not built yet: "starting"

    def health() -> tuple[bool, str]:
        return built[0].healthy() if built else (False, "starting")

    bindings: list[Binding] = []
    try:
        pipeline.start_extensions()
        bindings += sqs_bindings(settings)
        bindings += https_bindings(settings, metrics, health)
    except BaseException:
        for b in bindings:
            b.source.close()
        pipeline.close()  # the engine and log files were opened for a daemon that never ran
        raise
    show_status = is_tty(sys.stderr) if status is None else status
    daemon = Daemon(
        pipeline,
        bindings,
        settings.worker,
        metrics=metrics,
        notifier=Notifier.from_env(),
        status=StatusLine(sys.stderr) if show_status else None,
    )
    built.append(daemon)
    return daemon


def _extension_counts(pipeline: Pipeline) -> dict[str, dict[str, int]]:
    """The extensions' counts for /metrics, from whatever host the pipeline runs now."""
    return pipeline.extensions.snapshot() if pipeline.extensions is not None else {}


def metrics_on_intake(settings: DaemonSettings) -> bool:
    """``metrics_port`` equal to the https listen port: one port serves both, the intake
    answering ``/metrics`` and ``/healthz`` beside its POST path (behind ``allow_from``)."""
    return (
        settings.https is not None
        and settings.metrics_port is not None
        and settings.metrics_port != 0
        and settings.metrics_port == settings.https.port
    )


def sqs_bindings(settings: DaemonSettings) -> list[Binding]:
    """One binding per configured queue, over one shared SQS client."""
    if not settings.queues:
        return []
    longest_wait = max(q.wait_time_seconds for q in settings.queues)
    client = sqs_client(settings.aws, read_timeout=longest_wait + 10)
    return [
        Binding(
            SqsSource(client, q), q.concurrency, q.wait_time_seconds, q.visibility_timeout or None
        )
        for q in settings.queues
    ]


def https_bindings(
    settings: DaemonSettings, metrics: Metrics, health: Health | None = None
) -> list[Binding]:
    """The HTTPS intake, listening already, when the configuration has an ``https:`` section.

    One poller suffices: it only moves requests from memory to the writers. There is no
    visibility to extend: a request waits for its commit, bounded by ``response_timeout``.
    """
    if settings.https is None:
        return []
    try:
        from ledbelly.sources.https import HttpsSource
    except ImportError as exc:
        raise ConfigError(
            f"the https section needs the https extra ({exc.name} is missing): "
            "pip install 'ledbelly[https]'"
        ) from None
    source = HttpsSource(
        settings.https, metrics, serve_metrics=metrics_on_intake(settings), health=health
    )
    source.start()
    return [Binding(source, concurrency=1, wait_seconds=1, visibility_timeout=None)]


def run_daemon(daemon: Daemon, settings: DaemonSettings) -> int:
    """Run until SIGTERM/SIGINT; a second signal exits at once. Returns the exit code."""
    server = None
    if metrics_on_intake(settings):
        assert settings.https is not None
        log.info("metrics on the HTTPS intake's port: %s/metrics", settings.https.listen)
    elif settings.metrics_port is not None:
        server = MetricsServer(
            daemon.metrics, settings.metrics_host, settings.metrics_port, daemon.healthy
        )
        server.start()
        log.info("metrics on http://%s:%d/metrics", settings.metrics_host, server.port)

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        if daemon.stopping:
            log.warning(
                "second signal: exiting now; uncommitted messages return after "
                "their visibility timeout"
            )
            os._exit(EXIT_FORCED)
        log.info("received %s", signal.Signals(signum).name)
        for b in daemon.bindings:  # the HTTPS intake stops listening at once
            stop_accepting = getattr(b.source, "stop_accepting", None)
            if stop_accepting is not None:
                stop_accepting()
        daemon.stop()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    tune_gc()
    tune_threads()
    try:
        daemon.start()
        clean = daemon.wait()
    finally:
        if server is not None:
            server.stop()
        daemon.pipeline.close()
    if not clean:
        # A poller is still inside a long poll; what it receives returns to the queue
        # after its visibility timeout. Do not wait for it past shutdown_timeout.
        log.info("exiting with a poller still in a long poll")
        logging.shutdown()
        os._exit(0)
    return 0
