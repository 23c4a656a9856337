"""The metrics registry, its exposition text, and the HTTP endpoint on a real socket."""

from __future__ import annotations

import re
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest

from ledbelly.ops.metrics import CONTENT_TYPE, Metrics, MetricsServer, escape_label, format_value

# One sample line of format 0.0.4: name, optional labels with escaped values, a value.
LABEL = r'[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\[\\"n])*"'
SAMPLE = re.compile(
    rf"^(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)(?P<labels>\{{{LABEL}(?:,{LABEL})*\}})?"
    r" (?P<value>[+-]?(?:\d+(?:\.\d*)?(?:[eE][+-]?\d+)?|Inf)|NaN)$"
)
META = re.compile(
    r"^# (?:HELP [a-zA-Z_:][a-zA-Z0-9_:]* .*|TYPE [a-zA-Z_:][a-zA-Z0-9_:]* "
    r"(?:counter|gauge|histogram|summary|untyped))$"
)


def parse(text: str) -> dict[str, float]:
    """Every line must be a comment or a well-formed sample; returns samples by full key."""
    assert text.endswith("\n")
    samples: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("#"):
            assert META.match(line), line
            continue
        match = SAMPLE.match(line)
        assert match, f"not a valid sample line: {line!r}"
        key = match["name"] + (match["labels"] or "")
        assert key not in samples, f"duplicate sample {key}"
        samples[key] = float(match["value"])
    return samples


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


def test_render_is_valid_exposition_text() -> None:
    samples = parse(busy_metrics().render())
    assert samples['ledbelly_messages_total{table="live_asset_accessed",outcome="inserted"}'] == 12
    assert samples['ledbelly_messages_total{table="",outcome="unknown"}'] == 1
    assert samples['ledbelly_retries_total{kind="sqs"}'] == 2
    assert samples["ledbelly_database_up"] == 1
    assert samples["ledbelly_consuming"] == 1
    assert samples["ledbelly_oldest_message_age_seconds"] == 42.5
    assert samples["ledbelly_backlog_messages"] == 7


def test_histograms_are_cumulative_and_end_in_inf() -> None:
    samples = parse(busy_metrics().render())
    for name in ("ledbelly_batch_size", "ledbelly_insert_seconds"):
        buckets = [(k, v) for k, v in samples.items() if k.startswith(name + "_bucket")]
        counts = [v for _, v in buckets]
        assert counts == sorted(counts)
        assert buckets[-1][0] == name + '_bucket{le="+Inf"}'
        assert buckets[-1][1] == samples[name + "_count"] == 2
    assert samples['ledbelly_batch_size_bucket{le="5"}'] == 1
    assert samples['ledbelly_batch_size_bucket{le="10"}'] == 2
    assert samples["ledbelly_batch_size_sum"] == 13
    assert samples['ledbelly_insert_seconds_bucket{le="0.025"}'] == 1
    assert samples['ledbelly_insert_seconds_bucket{le="1"}'] == 1
    assert samples["ledbelly_insert_seconds_sum"] == pytest.approx(1.52)


def test_every_metric_has_help_and_type() -> None:
    text = busy_metrics().render()
    types = dict(re.findall(r"^# TYPE (\S+) (\S+)$", text, re.M))
    assert types == {
        "ledbelly_messages_total": "counter",
        "ledbelly_batch_size": "histogram",
        "ledbelly_insert_seconds": "histogram",
        "ledbelly_retries_total": "counter",
        "ledbelly_database_up": "gauge",
        "ledbelly_consuming": "gauge",
        "ledbelly_oldest_message_age_seconds": "gauge",
        "ledbelly_backlog_messages": "gauge",
    }
    assert set(re.findall(r"^# HELP (\S+) ", text, re.M)) == set(types)


def test_empty_registry_renders() -> None:
    samples = parse(Metrics().render())
    assert samples["ledbelly_database_up"] == 0
    assert samples["ledbelly_batch_size_count"] == 0


def test_label_values_are_escaped() -> None:
    assert escape_label('a\\b"c\nd') == 'a\\\\b\\"c\\nd'
    metrics = Metrics()
    metrics.record_retry('we"ird\\kind\n')
    samples = parse(metrics.render())
    assert samples['ledbelly_retries_total{kind="we\\"ird\\\\kind\\n"}'] == 1


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (12, "12"),
        (0.5, "0.5"),
        (float("inf"), "+Inf"),
        (float("-inf"), "-Inf"),
        (float("nan"), "NaN"),
        (1e20, "1e+20"),
    ],
)
def test_format_value(value: float, text: str) -> None:
    assert format_value(value) == text


def test_unknown_outcome_is_rejected() -> None:
    with pytest.raises(ValueError, match="outcome"):
        Metrics().record_message("t", "inserted_ok")


def test_snapshot() -> None:
    metrics = busy_metrics()
    snap = metrics.snapshot()
    assert snap["events_total"] == 15
    assert snap["dead_letters"] == 1
    assert snap["outcomes"] == {"inserted": 12, "unknown": 1, "dead_letter": 1, "duplicate": 1}
    assert snap["last_event"] == "live_submission_created"
    assert snap["last_event_at"] == 1_700_000_000.0
    assert snap["backlog"] == 7
    assert snap["retries"] == {"database": 1, "sqs": 2}
    assert snap["database_up"] is True


def test_counts_survive_concurrent_writers() -> None:
    metrics = Metrics()

    def work() -> None:
        for _ in range(1000):
            metrics.record_message("t", "inserted")
            metrics.observe_batch(1, 0.001)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    samples = parse(metrics.render())
    assert metrics.snapshot()["events_total"] == 8000
    assert samples["ledbelly_batch_size_count"] == 8000


# --- the HTTP endpoint -------------------------------------------------------------


class Health:
    def __init__(self) -> None:
        self.state: tuple[bool, str] = (True, "fine")

    def __call__(self) -> tuple[bool, str]:
        return self.state


@pytest.fixture
def server() -> Iterator[tuple[MetricsServer, Metrics, Health]]:
    metrics, health = Metrics(), Health()
    srv = MetricsServer(metrics, "127.0.0.1", 0, health)
    srv.start()
    try:
        yield srv, metrics, health
    finally:
        srv.stop()


def get(srv: MetricsServer, path: str) -> tuple[int, str, str]:
    url = f"http://127.0.0.1:{srv.port}{path}"
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.headers["Content-Type"], response.read().decode()
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, exc.headers["Content-Type"], exc.read().decode()


def test_metrics_endpoint(server: tuple[MetricsServer, Metrics, Health]) -> None:
    srv, metrics, _ = server
    assert srv.port != 0
    metrics.record_message("live_asset_accessed", "inserted")
    status, content_type, body = get(srv, "/metrics")
    assert status == 200
    assert content_type == CONTENT_TYPE
    assert content_type.startswith("text/plain; version=0.0.4")
    before = parse(body)
    key = 'ledbelly_messages_total{table="live_asset_accessed",outcome="inserted"}'
    assert before[key] == 1
    metrics.record_message("live_asset_accessed", "inserted")
    metrics.observe_batch(2, 0.1)
    after = parse(get(srv, "/metrics?ignored=1")[2])
    assert after[key] > before[key]
    assert after["ledbelly_insert_seconds_count"] > before["ledbelly_insert_seconds_count"]


def test_healthz(server: tuple[MetricsServer, Metrics, Health]) -> None:
    srv, _, health = server
    assert get(srv, "/healthz")[::2] == (200, "ok\n")
    health.state = (False, "database unreachable")
    assert get(srv, "/healthz")[::2] == (503, "database unreachable\n")


def test_a_failing_health_check_is_unhealthy() -> None:
    def broken() -> tuple[bool, str]:
        raise RuntimeError("boom")

    srv = MetricsServer(Metrics(), "127.0.0.1", 0, broken)
    srv.start()
    try:
        status, _, body = get(srv, "/healthz")
    finally:
        srv.stop()
    assert status == 503
    assert "boom" in body


def test_other_paths_are_404(server: tuple[MetricsServer, Metrics, Health]) -> None:
    srv = server[0]
    assert get(srv, "/")[0] == 404
    assert get(srv, "/metrics/extra")[0] == 404


def test_requests_are_not_logged_to_stderr(
    server: tuple[MetricsServer, Metrics, Health], capfd: pytest.CaptureFixture[str]
) -> None:
    get(server[0], "/metrics")
    get(server[0], "/nowhere")
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


def test_start_twice_is_an_error(server: tuple[MetricsServer, Metrics, Health]) -> None:
    with pytest.raises(RuntimeError):
        server[0].start()
