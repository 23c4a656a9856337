"""The metrics registry, read the way Prometheus reads it: a real HTTP GET of /metrics,
parsed by prometheus_client's own text parser; /healthz on the same socket. The HTTPS
intake serves the same two paths on its own port when asked to."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from ledbelly.ops.metrics import Metrics, MetricsServer

Scraped = dict[str, dict[str, Any]]


class Health:
    def __init__(self) -> None:
        self.state: tuple[bool, str] = (True, "fine")

    def __call__(self) -> tuple[bool, str]:
        return self.state


def get(port: int, path: str, host: str = "127.0.0.1") -> tuple[int, str, str]:
    url = f"http://{host}:{port}{path}"
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.headers["Content-Type"], response.read().decode()
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, exc.headers["Content-Type"], exc.read().decode()


def parse(text: str) -> Scraped:
    """Families by name: their type, help, and samples keyed by (name, sorted labels)."""
    out: Scraped = {}
    for family in text_string_to_metric_families(text):
        assert family.name not in out, f"family {family.name} twice"
        samples = {(s.name, tuple(sorted(s.labels.items()))): s.value for s in family.samples}
        out[family.name] = {"type": family.type, "help": family.documentation, "samples": samples}
    return out


def value(families: Scraped, name: str, **labels: str) -> float:
    """One sample, found by its sample name (``x_total``, ``x_bucket``) and labels."""
    key = (name, tuple(sorted(labels.items())))
    for family in families.values():
        if key in family["samples"]:
            return float(family["samples"][key])
    raise KeyError(f"no sample {name}{labels}")


@pytest.fixture
def serve() -> Iterator[Callable[..., MetricsServer]]:
    started: list[MetricsServer] = []

    def start(
        metrics: Metrics, health: Callable[[], tuple[bool, str]] | None = None
    ) -> MetricsServer:
        srv = MetricsServer(metrics, "127.0.0.1", 0, health or Health())
        srv.start()
        started.append(srv)
        return srv

    yield start
    for srv in started:
        srv.stop()


def scrape(srv: MetricsServer) -> Scraped:
    status, content_type, body = get(srv.port, "/metrics")
    assert status == 200
    assert content_type.startswith("text/plain; version=0.0.4")
    return parse(body)


def busy_metrics() -> Metrics:
    metrics = Metrics(clock=lambda: 1_700_000_000.0)
    for _ in range(12):
        metrics.record_message("live_asset_accessed", "inserted")
    metrics.record_message(None, "unknown")
    metrics.record_message("live_submission_created", "dead_letter")
    metrics.record_message("live_submission_created", "duplicate")
    metrics.observe_batch(10, 0.02)
    metrics.observe_batch(3, 1.5)
    metrics.record_retry("database")
    metrics.record_retry("sqs")
    metrics.record_retry("sqs")
    metrics.set_database_up(True)
    metrics.set_consuming(True)
    metrics.observe_message_age(42.5)
    metrics.set_backlog(7)
    return metrics


# ----- the series, scraped over HTTP -------------------------------------------------------


def test_the_documented_series(serve: Callable[..., MetricsServer]) -> None:
    m = scrape(serve(busy_metrics()))
    inserted = value(m, "ledbelly_messages_total", table="live_asset_accessed", outcome="inserted")
    assert inserted == 12
    assert value(m, "ledbelly_messages_total", table="", outcome="unknown") == 1
    assert value(m, "ledbelly_retries_total", kind="sqs") == 2
    assert value(m, "ledbelly_database_up") == 1
    assert value(m, "ledbelly_consuming") == 1
    assert value(m, "ledbelly_oldest_message_age_seconds") == 42.5
    assert value(m, "ledbelly_backlog_messages") == 7
    types = {name: f["type"] for name, f in m.items() if not name.endswith("_created")}
    assert types == {
        "ledbelly_messages": "counter",
        "ledbelly_batch_size": "histogram",
        "ledbelly_insert_seconds": "histogram",
        "ledbelly_retries": "counter",
        "ledbelly_database_up": "gauge",
        "ledbelly_consuming": "gauge",
        "ledbelly_oldest_message_age_seconds": "gauge",
        "ledbelly_backlog_messages": "gauge",
    }
    assert all(f["help"] for f in m.values())


def test_histograms_are_cumulative_and_end_in_inf(serve: Callable[..., MetricsServer]) -> None:
    m = scrape(serve(busy_metrics()))
    for name in ("ledbelly_batch_size", "ledbelly_insert_seconds"):
        buckets = sorted(
            (float(dict(labels)["le"]), v)
            for (sample, labels), v in m[name]["samples"].items()
            if sample == name + "_bucket"
        )
        counts = [v for _, v in buckets]
        assert counts == sorted(counts)
        assert buckets[-1] == (float("inf"), 2)
        assert value(m, name + "_count") == 2
    assert value(m, "ledbelly_batch_size_bucket", le="5.0") == 1
    assert value(m, "ledbelly_batch_size_bucket", le="10.0") == 2
    assert value(m, "ledbelly_batch_size_sum") == 13
    assert value(m, "ledbelly_insert_seconds_bucket", le="0.025") == 1
    assert value(m, "ledbelly_insert_seconds_bucket", le="1.0") == 1
    assert value(m, "ledbelly_insert_seconds_sum") == pytest.approx(1.52)


def test_an_empty_registry_scrapes(serve: Callable[..., MetricsServer]) -> None:
    m = scrape(serve(Metrics()))
    assert value(m, "ledbelly_database_up") == 0
    assert value(m, "ledbelly_batch_size_count") == 0
    assert not [name for name in m if "https" in name or "extension" in name]


def test_label_values_survive_the_round_trip(serve: Callable[..., MetricsServer]) -> None:
    metrics = Metrics()
    metrics.record_retry('we"ird\\kind\n')
    assert value(scrape(serve(metrics)), "ledbelly_retries_total", kind='we"ird\\kind\n') == 1


def test_a_scrape_sees_what_came_after_the_last(serve: Callable[..., MetricsServer]) -> None:
    metrics = Metrics()
    srv = serve(metrics)
    metrics.record_message("live_asset_accessed", "inserted")
    before = scrape(srv)
    metrics.record_message("live_asset_accessed", "inserted")
    metrics.observe_batch(2, 0.1)
    after = parse(get(srv.port, "/metrics?ignored=1")[2])
    labels = {"table": "live_asset_accessed", "outcome": "inserted"}
    assert value(before, "ledbelly_messages_total", **labels) == 1
    assert value(after, "ledbelly_messages_total", **labels) == 2
    assert value(after, "ledbelly_insert_seconds_count") == 1


def test_the_https_intake_series(serve: Callable[..., MetricsServer]) -> None:
    metrics = Metrics()
    srv = serve(metrics)
    for _ in range(3):
        metrics.record_https_request(200, 0.04)
    metrics.record_https_request(503)
    metrics.record_https_request(401)
    metrics.record_https_rejection("signature")
    metrics.record_jwks_fetch(True)
    m = scrape(srv)
    assert value(m, "ledbelly_https_requests_total", status="200") == 3
    assert value(m, "ledbelly_https_requests_total", status="503") == 1
    assert value(m, "ledbelly_https_rejections_total", reason="signature") == 1
    assert value(m, "ledbelly_https_jwks_fetches_total", result="ok") == 1
    assert value(m, "ledbelly_https_commit_seconds_count") == 3
    assert value(m, "ledbelly_https_commit_seconds_bucket", le="0.05") == 3
    assert m["ledbelly_https_commit_seconds"]["type"] == "histogram"
    snap = metrics.https_snapshot()
    assert snap["requests"] == {200: 3, 503: 1, 401: 1}
    assert snap["committed"] == 3
    assert "ledbelly_messages_total" not in metrics.render_https()


def test_the_extensions_series_are_read_at_each_scrape(
    serve: Callable[..., MetricsServer],
) -> None:
    counts = {"geoip": {"failures": 0, "dropped": 1, "looked_up": 5, "stored": 2}}
    metrics = Metrics()
    metrics.watch_extensions(lambda: counts)
    srv = serve(metrics)
    m = scrape(srv)
    assert value(m, "ledbelly_extension_failures_total", extension="geoip") == 0
    assert value(m, "ledbelly_extension_dropped_batches_total", extension="geoip") == 1
    assert value(m, "ledbelly_extension_events_total", extension="geoip", result="stored") == 2
    counts["geoip"]["looked_up"] = 9
    m = scrape(srv)
    assert value(m, "ledbelly_extension_events_total", extension="geoip", result="looked_up") == 9


# ----- snapshot and threads ----------------------------------------------------------------


def test_unknown_outcome_is_rejected() -> None:
    with pytest.raises(ValueError, match="outcome"):
        Metrics().record_message("t", "inserted_ok")


def test_snapshot() -> None:
    snap = busy_metrics().snapshot()
    assert snap["events_total"] == 15
    assert snap["dead_letters"] == 1
    assert snap["outcomes"] == {"inserted": 12, "unknown": 1, "dead_letter": 1, "duplicate": 1}
    assert snap["last_event"] == "live_submission_created"
    assert snap["last_event_at"] == 1_700_000_000.0
    assert snap["backlog"] == 7
    assert snap["retries"] == {"database": 1, "sqs": 2}
    assert snap["database_up"] is True
    assert snap["consuming"] is True
    assert snap["oldest_message_age"] == 42.5
    assert snap["batches"] == 2


def test_each_metrics_has_its_own_registry() -> None:
    a, b = Metrics(), Metrics()
    a.record_message("t", "inserted")
    assert b.snapshot()["events_total"] == 0


def test_counts_survive_concurrent_writers(serve: Callable[..., MetricsServer]) -> None:
    metrics = Metrics()
    srv = serve(metrics)

    def work() -> None:
        for _ in range(1000):
            metrics.record_message("t", "inserted")
            metrics.observe_batch(1, 0.001)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert metrics.snapshot()["events_total"] == 8000
    assert value(scrape(srv), "ledbelly_batch_size_count") == 8000


# ----- /healthz and the server --------------------------------------------------------------


def test_healthz(serve: Callable[..., MetricsServer]) -> None:
    health = Health()
    srv = serve(Metrics(), health)
    assert get(srv.port, "/healthz")[::2] == (200, "ok\n")
    health.state = (False, "database unreachable")
    assert get(srv.port, "/healthz")[::2] == (503, "database unreachable\n")


def test_a_failing_health_check_is_unhealthy(serve: Callable[..., MetricsServer]) -> None:
    def broken() -> tuple[bool, str]:
        raise RuntimeError("boom")

    status, _, body = get(serve(Metrics(), broken).port, "/healthz")
    assert status == 503
    assert "boom" in body


def test_other_paths_are_404(serve: Callable[..., MetricsServer]) -> None:
    srv = serve(Metrics())
    assert get(srv.port, "/")[0] == 404
    assert get(srv.port, "/metrics/extra")[0] == 404


def test_requests_are_not_logged_to_stderr(
    serve: Callable[..., MetricsServer], capfd: pytest.CaptureFixture[str]
) -> None:
    srv = serve(Metrics())
    get(srv.port, "/metrics")
    get(srv.port, "/nowhere")
    assert capfd.readouterr().err == ""


def test_stop_is_prompt_and_frees_the_port() -> None:
    srv = MetricsServer(Metrics(), "127.0.0.1", 0, lambda: (True, ""))
    srv.start()
    port = srv.port
    started = time.monotonic()
    srv.stop()
    assert time.monotonic() - started < 1.0
    srv.stop()  # idempotent
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2)


def test_start_twice_is_an_error(serve: Callable[..., MetricsServer]) -> None:
    with pytest.raises(RuntimeError):
        serve(Metrics()).start()


def test_ipv6(serve: Callable[..., MetricsServer]) -> None:
    try:
        socket.create_server(("::1", 0), family=socket.AF_INET6).close()
    except OSError:
        pytest.skip("no IPv6 loopback here")
    srv = MetricsServer(Metrics(), "::1", 0, lambda: (True, ""))
    srv.start()
    try:
        assert get(srv.port, "/healthz", host="[::1]")[0] == 200
    finally:
        srv.stop()


# ----- on the HTTPS intake's own port -------------------------------------------------------


def test_the_https_intake_serves_metrics_on_its_own_port_when_asked() -> None:
    pytest.importorskip("uvicorn")
    from ledbelly.config import HttpsSettings
    from ledbelly.sources.https import HttpsSource

    metrics, health = busy_metrics(), Health()
    settings = HttpsSettings(host="127.0.0.1", port=0, require_signature=False)
    plain = HttpsSource(settings, Metrics())
    shared = HttpsSource(settings, metrics, serve_metrics=True, health=health)
    for source in (plain, shared):
        source.start()
    try:
        assert get(plain.port, "/metrics")[0] == 404
        status, content_type, body = get(shared.port, "/metrics")
        assert status == 200 and content_type.startswith("text/plain; version=0.0.4")
        labels = {"table": "live_asset_accessed", "outcome": "inserted"}
        assert value(parse(body), "ledbelly_messages_total", **labels) == 12
        assert get(shared.port, "/healthz")[::2] == (200, "ok\n")
        health.state = (False, "a writer thread died")
        assert get(shared.port, "/healthz")[::2] == (503, "a writer thread died\n")
        assert get(shared.port, "/live-events")[0] == 405  # GET on the POST path
    finally:
        for source in (plain, shared):
            source.close()


def test_ledbelly_run_serves_metrics_on_the_intake_port_when_metrics_port_is_it(
    tmp_path: Path,
) -> None:
    """``metrics_port`` equal to the https listen port: one port, no second server."""
    pytest.importorskip("uvicorn")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    config = tmp_path / "cfg.yml"
    config.write_text(
        f"https:\n  listen: 127.0.0.1:{port}\n  require_signature: false\n"
        f"  allow_from: [127.0.0.1]\nmetrics_port: {port}\nshutdown_timeout: 3\n"
    )
    db = f"sqlite:///{tmp_path / 'run.db'}"
    args = ["run", "-c", str(config), "--db", db, "--create-missing"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "ledbelly.cli.main", *args, "--log-dir", str(tmp_path / "log")],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        until = time.monotonic() + 30
        while True:
            try:
                status, _, body = get(port, "/healthz")
            except (urllib.error.URLError, ConnectionError):
                status, body = 0, ""
            if status == 200 or time.monotonic() > until or proc.poll() is not None:
                break
            time.sleep(0.1)
        assert (status, body) == (200, "ok\n")
        m = parse(get(port, "/metrics")[2])
        assert value(m, "ledbelly_consuming") == 1
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert f"metrics on the HTTPS intake's port: 127.0.0.1:{port}/metrics" in err
