"""Extensions: the host's isolation and queueing, the configuration, and geoip end to end.

geoip runs against a small ``.mmdb`` that each test writes with mmdb-writer, shaped like
GeoLite2-City (IPv4 and IPv6 networks), over SQLite, PostgreSQL and MariaDB.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import mmdb_writer
import netaddr
import pytest
from sqlalchemy import Engine, MetaData, Table, func, select

from conftest import SCHEMAS, canvas_event, engine_for, sqs_message
from helpers import count as count_rows
from helpers import ingest_all
from ledbelly.db.engine import normalize_url
from ledbelly.errors import ConfigError
from ledbelly.extensions import (
    Extension,
    ExtensionContext,
    ExtensionHost,
    ExtensionSettings,
    configured_extensions,
    extensions_from_dict,
    load_extension,
)
from ledbelly.extensions.geoip import GeoIp, utc_offset
from ledbelly.outcome import EventRows, Outcome
from ledbelly.pipeline import Pipeline
from ledbelly.schema.model import Catalog

# ----- a small GeoLite2-City ------------------------------------------------------------------


def _names(en: str) -> dict[str, Any]:
    return {"names": {"en": en, "de": en + " (de)"}}


CITY_RECORDS: dict[str, dict[str, Any]] = {
    "216.160.83.0/24": {
        "city": {"geoname_id": 5803556, **_names("Milton")},
        "continent": {"code": "NA", "geoname_id": 6255149, **_names("North America")},
        "country": {"iso_code": "US", "geoname_id": 6252001, **_names("United States")},
        "location": {
            "accuracy_radius": 22,
            "latitude": 47.2513,
            "longitude": -122.3149,
            "metro_code": 819,
            "time_zone": "America/Los_Angeles",
        },
        "postal": {"code": "98354"},
        "subdivisions": [{"iso_code": "WA", "geoname_id": 5815135, **_names("Washington")}],
    },
    "89.160.20.0/24": {
        "city": {"geoname_id": 2694762, **_names("Linköping")},
        "continent": {"code": "EU", "geoname_id": 6255148, **_names("Europe")},
        "country": {"iso_code": "SE", "is_in_european_union": True, **_names("Sweden")},
        "location": {
            "accuracy_radius": 76,
            "latitude": 58.4167,
            "longitude": 15.6167,
            "time_zone": "Europe/Stockholm",
        },
        "postal": {"code": "58225"},
        "subdivisions": [{"iso_code": "E", **_names("Östergötland County")}],
    },
    "2001:480::/32": {
        "city": _names("San Diego"),
        "continent": {"code": "NA", **_names("North America")},
        "country": {"iso_code": "US", **_names("United States")},
        "location": {
            "accuracy_radius": 100,
            "latitude": 32.7203,
            "longitude": -117.1552,
            "time_zone": "America/Los_Angeles",
        },
        "postal": {"code": "92101"},
        "subdivisions": [{"iso_code": "CA", **_names("California")}],
    },
    "2a02:d300::/29": {  # a country-level record: no city, postal or subdivision
        "continent": {"code": "EU", **_names("Europe")},
        "country": {"iso_code": "NO", **_names("Norway")},
        "location": {
            "accuracy_radius": 100,
            "latitude": 62.0,
            "longitude": 10.0,
            "time_zone": "Europe/Oslo",
        },
    },
}


def write_mmdb(path: Path, records: dict[str, dict[str, Any]], kind: str = "GeoLite2-City") -> Path:
    writer = mmdb_writer.MMDBWriter(
        ip_version=6,
        database_type=kind,
        languages=["en", "de"],
        description="ledbelly test database",
        ipv4_compatible=True,
    )
    for network, record in records.items():
        writer.insert_network(netaddr.IPSet([network]), record)
    writer.to_db_file(str(path))
    return path


@pytest.fixture
def mmdb(tmp_path: Path) -> Path:
    return write_mmdb(tmp_path / "GeoLite2-City.mmdb", CITY_RECORDS)


def _message(n: int, ip: str | None) -> Any:
    event = canvas_event()
    if ip is not None:
        event["metadata"]["client_ip"] = ip
    return sqs_message(f"m-{n}", "asset_accessed", event)


def run_batch(
    pipeline: Pipeline, host: ExtensionHost, ips: Sequence[str | None], start: int
) -> list[Outcome]:
    """One batch the way the writer runs it: process, before_insert, commit, after_commit."""
    outcomes = [pipeline.processor.process(_message(start + i, ip)) for i, ip in enumerate(ips)]
    host.before_insert(outcomes)
    report = pipeline.sink.write(outcomes)
    host.after_commit(report.committed)
    return report.committed


def context_for(pipeline: Pipeline, tmp_path: Path, **options: Any) -> ExtensionContext:
    return ExtensionContext(
        url=pipeline.settings.url,
        catalog=pipeline.catalog,
        log_dir=tmp_path / "log",
        create_missing=True,
        options=options,
    )


def geo_rows(engine: Engine) -> dict[str, dict[str, Any]]:
    table = Table("led_geo_maxmind", MetaData(), autoload_with=engine)
    with engine.connect() as conn:
        rows = [dict(r._mapping) for r in conn.execute(select(table))]
    by_ip: dict[str, dict[str, Any]] = {}
    for row in rows:
        assert row["ip"] not in by_ip, f"{row['ip']} stored twice"
        by_ip[row["ip"]] = row
    return by_ip


def count(engine: Engine, table_name: str) -> int:
    table = Table(table_name, MetaData(), autoload_with=engine)
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())


# ----- geoip end to end -----------------------------------------------------------------------


def test_geoip_fills_led_geo_maxmind_once_per_ip(
    db_url: str, make_pipeline: Any, mmdb: Path, tmp_path: Path
) -> None:
    pipeline = make_pipeline(db_url)
    # LEDbelly's cfg/ledbelly.yml form, with ledbelly's options for the same extension
    settings = extensions_from_dict(
        {"services": ["maxmind"], "extensions": {"geoip": {"database": str(mmdb)}}}
    )
    assert settings == (ExtensionSettings("geoip", {"database": str(mmdb)}),)
    host = ExtensionHost.load(settings, context_for(pipeline, tmp_path))
    host.start()
    try:
        run_batch(
            pipeline, host, ["216.160.83.56", "216.160.83.56", "89.160.20.112", None, "10.0.0.1"], 0
        )
        run_batch(
            pipeline,
            host,
            [
                "2001:480::1",
                "216.160.83.56",
                "2a02:d300::5",
                "::ffff:89.160.20.9",
                "2001:db8::1",
                "not-an-ip",
            ],
            10,
        )
        assert host.drain(30)
        assert host.snapshot() == {
            "geoip": {
                "failures": 0,
                "dropped": 0,
                "looked_up": 7,
                "stored": 5,
                "not_found": 2,
                "invalid": 1,
            }
        }
    finally:
        host.stop()
    engine = engine_for(db_url)
    try:
        rows = geo_rows(engine)
        assert count(engine, "live_stream") == 11  # ingestion complete
        assert count(engine, "ledbelly_messages") == 11
    finally:
        engine.dispose()
    # one row per IP the database knows; unknown IPs and non-IPs get none
    assert set(rows) == {
        "216.160.83.56",
        "89.160.20.112",
        "2001:480::1",
        "2a02:d300::5",
        "::ffff:89.160.20.9",
    }
    milton = rows["216.160.83.56"]
    assert (milton["city"], milton["region_name"], milton["region_code"]) == (
        "Milton",
        "Washington",
        "WA",
    )
    assert (milton["country_code"], milton["country_name"], milton["continent_code"]) == (
        "US",
        "United States",
        "NA",
    )
    assert float(milton["latitude"]) == pytest.approx(47.2513)
    assert float(milton["longitude"]) == pytest.approx(-122.3149)
    assert (milton["postal"], milton["timezone"], milton["utc_offset"], milton["in_eu"]) == (
        "98354",
        "America/Los_Angeles",
        "-08:00",
        "0",
    )
    assert milton["asn"] is None and milton["org"] is None and milton["currency"] is None
    sweden = rows["89.160.20.112"]
    assert (sweden["city"], sweden["region_name"], sweden["in_eu"], sweden["utc_offset"]) == (
        "Linköping",
        "Östergötland County",
        "1",
        "+01:00",
    )
    assert rows["::ffff:89.160.20.9"]["city"] == "Linköping"  # IPv4-mapped IPv6
    san_diego = rows["2001:480::1"]
    assert (san_diego["city"], san_diego["region_code"], san_diego["postal"]) == (
        "San Diego",
        "CA",
        "92101",
    )
    assert float(san_diego["latitude"]) == pytest.approx(32.7203)
    norway = rows["2a02:d300::5"]
    assert norway["city"] is None and norway["postal"] is None and norway["region_name"] is None
    assert (norway["country_code"], norway["in_eu"], norway["timezone"]) == (
        "NO",
        "0",
        "Europe/Oslo",
    )


def test_geoip_after_a_restart_adds_no_second_row(
    sqlite_url: str, make_pipeline: Any, mmdb: Path, tmp_path: Path
) -> None:
    pipeline = make_pipeline(sqlite_url)
    ctx = context_for(pipeline, tmp_path)
    options = {"database": str(mmdb), "locale": "de"}
    first = ExtensionHost.load([ExtensionSettings("geoip", options)], ctx)
    first.start()
    run_batch(pipeline, first, ["216.160.83.56"], 0)
    first.stop()
    second = ExtensionHost.load([ExtensionSettings("maxmind", options)], ctx)
    second.start()  # seeded from the table: nothing looked up again
    run_batch(pipeline, second, ["216.160.83.56", "89.160.20.112"], 10)
    second.stop()
    engine = engine_for(sqlite_url)
    try:
        rows = geo_rows(engine)
    finally:
        engine.dispose()
    assert set(rows) == {"216.160.83.56", "89.160.20.112"}
    assert rows["89.160.20.112"]["city"] == "Linköping (de)"  # the locale's names


def test_geoip_checks_the_table_before_inserting(
    sqlite_url: str, make_pipeline: Any, mmdb: Path, tmp_path: Path
) -> None:
    """Two instances over one database (two processes): the table is asked, not only memory."""
    pipeline = make_pipeline(sqlite_url)
    ctx = context_for(pipeline, tmp_path, database=str(mmdb))
    a, b = GeoIp(), GeoIp()
    a.start(ctx)
    b.start(ctx)
    try:
        assert a.record(["216.160.83.56", "10.0.0.1"]) == 1
        assert b.record(["216.160.83.56", "2001:480::1"]) == 1
        assert b.stats == {"looked_up": 2, "stored": 1, "not_found": 0, "invalid": 0}
        assert a.stats["not_found"] == 1
    finally:
        a.stop()
        b.stop()


def test_geoip_missing_database_is_one_clear_error_at_start(
    sqlite_url: str, make_pipeline: Any, tmp_path: Path
) -> None:
    pipeline = make_pipeline(sqlite_url)
    missing = tmp_path / "nowhere" / "GeoLite2-City.mmdb"
    host = ExtensionHost.load(
        [ExtensionSettings("geoip", {"database": str(missing)})], context_for(pipeline, tmp_path)
    )
    with pytest.raises(ConfigError, match=f"MaxMind database {missing} does not exist"):
        host.start()
    run_batch(pipeline, host, ["216.160.83.56"], 0)  # nothing runs
    host.stop()
    assert host.failures == {}

    garbage = tmp_path / "garbage.mmdb"
    garbage.write_bytes(b"not a MaxMind database" * 100)
    bad = ExtensionHost.load(
        [ExtensionSettings("geoip", {"database": str(garbage)})], context_for(pipeline, tmp_path)
    )
    with pytest.raises(ConfigError, match=str(garbage)):
        bad.start()

    typo = ExtensionHost.load(
        [ExtensionSettings("geoip", {"databse": "x.mmdb"})], context_for(pipeline, tmp_path)
    )
    with pytest.raises(ConfigError, match="unknown options"):
        typo.start()


def test_geoip_without_the_table_and_without_create_missing(server_db_url: str, mmdb: Path) -> None:
    ctx = ExtensionContext(
        url=normalize_url(server_db_url),
        catalog=Catalog.load(SCHEMAS),
        create_missing=False,
        options={"database": str(mmdb)},
    )
    host = ExtensionHost.load([ExtensionSettings("geoip", ctx.options)], ctx)
    with pytest.raises(ConfigError, match="led_geo_maxmind is missing"):
        host.start()


def test_utc_offset_is_the_standard_offset() -> None:
    assert utc_offset("America/Los_Angeles") == "-08:00"
    assert utc_offset("Asia/Kolkata") == "+05:30"
    assert utc_offset("UTC") == "+00:00"
    assert utc_offset("Not/AZone") is None


# ----- the host: isolation, throttled logging, counting, queueing -----------------------------


class Failing(Extension):
    """Raises in every hook but start; appends a row for a table that does not exist first."""

    def __init__(self) -> None:
        self.after_calls = 0

    def before_insert(self, outcomes: list[Outcome]) -> None:
        for o in outcomes:
            o.rows.append(("no_such_table", {"x": 1}))
        raise RuntimeError("before_insert is broken")

    def after_commit(self, committed: Sequence[Outcome]) -> None:
        self.after_calls += 1
        raise RuntimeError("after_commit is broken")

    def stop(self) -> None:
        raise RuntimeError("stop is broken")


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_failing_extension_leaves_ingestion_complete(
    db_url: str, make_pipeline: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    pipeline = make_pipeline(db_url)
    failing = Failing()
    failing.name = "failing"
    clock = Clock()
    host = ExtensionHost([(failing, context_for(pipeline, tmp_path))], log_interval=60, clock=clock)
    caplog.set_level(logging.ERROR, logger="ledbelly.extensions")
    host.start()
    committed = 0
    for b in range(3):
        committed += len(run_batch(pipeline, host, [f"216.160.83.{b}"] * 4, 10 * b))
    assert host.drain(30)
    assert failing.after_calls == 3
    clock.now += 61  # the interval is over: the next failure is reported again
    committed += len(run_batch(pipeline, host, ["10.0.0.1"], 100))
    assert host.drain(30)
    host.stop()
    assert committed == 13
    assert host.failures["failing"] == 3 + 3 + 1 + 1 + 1  # before, after x3, then x1 each, stop
    reports = [
        r
        for r in caplog.records
        if r.name == "ledbelly.extensions" and "extension failing failed" in r.getMessage()
    ]
    assert len(reports) == 2, [r.getMessage() for r in reports]
    assert "before_insert is broken" in reports[0].getMessage()
    assert reports[0].exc_info is not None  # the first one with its traceback
    assert "5 more failures since the last report" in reports[1].getMessage()
    engine = engine_for(db_url)
    try:
        assert count(engine, "live_asset_accessed") == 13
        assert count(engine, "live_stream") == 13
        assert count(engine, "ledbelly_messages") == 13
        assert count(engine, "ledbelly_dead_letters") == 0  # its rows were taken back out
    finally:
        engine.dispose()


class Blocking(Extension):
    def __init__(self) -> None:
        self.entered = threading.Event()
        self.release = threading.Event()
        self.batches: list[int] = []

    def after_commit(self, committed: Sequence[Outcome]) -> None:
        self.entered.set()
        assert self.release.wait(30)
        self.batches.append(len(committed))


def test_a_slow_extension_never_blocks_the_writer(
    sqlite_url: str, make_pipeline: Any, tmp_path: Path
) -> None:
    pipeline = make_pipeline(sqlite_url)
    slow = Blocking()
    slow.name = "slow"
    host = ExtensionHost([(slow, context_for(pipeline, tmp_path))], queue_size=1)
    host.start()
    run_batch(pipeline, host, [None], 0)
    assert slow.entered.wait(30)  # the thread holds batch 1
    run_batch(pipeline, host, [None, None], 10)  # queued
    run_batch(pipeline, host, [None, None, None], 20)  # queue full: dropped, counted
    assert host.dropped == {"slow": 1}
    slow.release.set()
    host.stop()
    assert slow.batches == [1, 2]


class Tagger(Extension):
    """Adds a row of its own table to every inserted outcome, in the batch's transaction."""

    def start(self, context: ExtensionContext) -> None:
        engine = context.open_engine()
        try:
            context.table("led_geo_maxmind", engine)
        finally:
            engine.dispose()

    def before_insert(self, outcomes: list[Outcome]) -> None:
        for i, o in enumerate(outcomes):
            o.rows.append(("led_geo_maxmind", {"ip": f"192.0.2.{i}", "city": "tagged"}))


class Broken(Extension):
    def start(self, context: ExtensionContext) -> None:
        raise RuntimeError("cannot start")

    def before_insert(self, outcomes: list[Outcome]) -> None:
        raise AssertionError("never called: it did not start")


def test_before_insert_rows_commit_with_the_batch(
    sqlite_url: str, make_pipeline: Any, tmp_path: Path
) -> None:
    pipeline = make_pipeline(sqlite_url)
    tagger, broken = Tagger(), Broken()
    tagger.name, broken.name = "tagger", "broken"
    ctx = context_for(pipeline, tmp_path)
    host = ExtensionHost([(broken, ctx), (tagger, ctx)])
    host.start()
    assert host.active == ["tagger"] and host.failures == {"broken": 1}
    run_batch(pipeline, host, [None, None, None], 0)
    host.stop()
    engine = engine_for(sqlite_url)
    try:
        assert count(engine, "led_geo_maxmind") == 3
        assert count(engine, "live_asset_accessed") == 3
    finally:
        engine.dispose()


# ----- loading and configuration --------------------------------------------------------------


def test_extensions_load_by_entry_point_name() -> None:
    assert isinstance(load_extension("geoip"), GeoIp)
    maxmind = load_extension("maxmind")
    assert isinstance(maxmind, GeoIp) and maxmind.name == "maxmind"
    with pytest.raises(ConfigError, match="unknown extension 'nope'; available: geoip"):
        load_extension("nope")


def test_configuration_forms(tmp_path: Path) -> None:
    assert extensions_from_dict({}) == ()
    assert extensions_from_dict({"services": ["maxmind"]}) == (ExtensionSettings("geoip"),)
    assert extensions_from_dict({"services": "maxmind"}) == (ExtensionSettings("geoip"),)
    assert extensions_from_dict({"extensions": ["geoip", {"other": {"a": 1}}]}) == (
        ExtensionSettings("geoip"),
        ExtensionSettings("other", {"a": 1}),
    )
    assert extensions_from_dict({"services": ["maxmind"], "extensions": {"geoip": False}}) == ()
    with pytest.raises(ConfigError, match="mapping of options"):
        extensions_from_dict({"extensions": {"geoip": "x.mmdb"}})
    with pytest.raises(ConfigError, match="services must be a list"):
        extensions_from_dict({"services": {"maxmind": 1}})

    ledbelly_yml = tmp_path / "ledbelly.yml"
    ledbelly_yml.write_text("services:\n  - maxmind\n", encoding="utf-8")
    assert configured_extensions(None, ledbelly_yml) == (ExtensionSettings("geoip"),)
    assert configured_extensions(
        {"extensions": {"maxmind": {"database": "a.mmdb"}}}, ledbelly_yml
    ) == (ExtensionSettings("geoip", {"database": "a.mmdb"}),)
    assert configured_extensions({"extensions": {"geoip": False}}, ledbelly_yml) == ()
    assert configured_extensions({}, tmp_path / "absent.yml") == ()


class _BrokenRows(Extension):
    """Adds a row for live_stream, then fails: its row must not survive."""

    def event_rows(self, event: EventRows) -> None:
        event.add_row(self.table)
        raise RuntimeError("event_rows is broken")

    def start(self, context: ExtensionContext) -> None:
        self.table = context.catalog.tables["live_stream"]


def test_live_stream_is_an_extension_on_by_default(sqlite_url: str, make_pipeline: Any) -> None:
    on = make_pipeline(sqlite_url)
    assert on.extensions is not None and on.extensions.active == ["live_stream"]
    message = sqs_message("ls-1", "asset_accessed", canvas_event())
    ingest_all(on, [message])
    assert count_rows(sqlite_url, "live_stream") == 1
    off = make_pipeline(sqlite_url, live_stream=False)
    assert off.extensions is not None and off.extensions.active == []
    ingest_all(off, [sqs_message("ls-2", "asset_accessed", canvas_event())])
    assert (
        count_rows(sqlite_url, "live_stream") == 1
        and count_rows(sqlite_url, "live_asset_accessed") == 2
    )


def test_a_failing_row_hook_loses_only_its_own_rows(sqlite_url: str, make_pipeline: Any) -> None:
    pipeline = make_pipeline(sqlite_url, live_stream=False)
    broken = _BrokenRows()
    broken.name = "broken"
    context = ExtensionContext(url=pipeline.settings.url, catalog=pipeline.catalog)
    host = ExtensionHost([(broken, context)])
    host.start()
    pipeline.processor.event_rows = host.event_rows
    ingest_all(
        pipeline, [sqs_message(f"b-{i}", "asset_accessed", canvas_event()) for i in range(3)]
    )
    assert count_rows(sqlite_url, "live_asset_accessed") == 3
    assert count_rows(sqlite_url, "live_stream") == 0 and host.failures["broken"] == 3
