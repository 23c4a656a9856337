"""Configuration: LEDbelly's keys, the example file, and clear errors."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from ledbelly.config import _TOP_KEYS, daemon_settings_from_dict, load_daemon_settings
from ledbelly.db.engine import normalize_url, resolve_url, safe_url, url_from_yaml
from ledbelly.errors import ConfigError

ROOT = Path(__file__).resolve().parent.parent


def test_ledbelly_sqs_yml_keeps_working() -> None:
    s = daemon_settings_from_dict(
        {
            "aws": {"region": "us-west-2", "access_key_id": "AKIA", "secret_access_key": "s3cr3t"},
            "logfile": "./shoryuken.log",
            "pidfile": "./shoryuken.pid",
            "concurrency": 20,
            "delay": 0,
            "queues": ["canvas-live-events-edu"],
        }
    )
    assert s.queues[0].name == "canvas-live-events-edu" and s.queues[0].concurrency == 20
    assert s.aws.region == "us-west-2" and "s3cr3t" not in repr(s.aws)


def test_example_documents_every_key_and_loads() -> None:
    example = (ROOT / "cfg" / "sqs.yml.example").read_text()
    for key in _TOP_KEYS:
        assert re.search(rf"^#? ?{key}:", example, re.M), f"{key} is not in the example"
    settings = load_daemon_settings(ROOT / "cfg" / "sqs.yml.example")
    assert settings.queues[0].wait_time_seconds == 20


def test_per_queue_settings_and_urls() -> None:
    s = daemon_settings_from_dict(
        {
            "queues": [
                "a",
                {
                    "name": "https://sqs.us-east-1.amazonaws.com/1/b",
                    "concurrency": 2,
                    "visibility_timeout": 300,
                },
            ],
            "concurrency": 5,
        }
    )
    assert [(q.name, q.concurrency, q.visibility_timeout) for q in s.queues] == [
        ("a", 5, 120),
        ("https://sqs.us-east-1.amazonaws.com/1/b", 2, 300),
    ]
    assert s.queues[1].is_url and not s.queues[0].is_url


@pytest.mark.parametrize(
    "doc, message",
    [
        ({"queues": []}, "queues must list"),
        ({"queues": ["a"], "wait_time_seconds": 30}, "wait_time_seconds must be"),
        ({"queues": ["a"], "dead_letter_policy": "drop"}, "dead_letter_policy must be one of"),
        ({"queues": ["a"], "bogus": 1}, "unknown settings ['bogus']"),
        ({"queues": ["a"], "aws": {"access_key_id": "x"}}, "go together"),
    ],
)
def test_bad_settings_say_what_is_wrong(doc: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        daemon_settings_from_dict(doc)


def test_urls_pick_installed_drivers_and_hide_passwords() -> None:
    assert normalize_url("postgresql://u:p@h/d").drivername == "postgresql+psycopg2"
    my = normalize_url("mysql://u:p@h/d")
    assert my.drivername == "mysql+mysqldb" and my.query["charset"] == "utf8mb4"
    assert "p@" not in safe_url(normalize_url("postgresql://u:p@h/d"))


def test_ledbelly_database_yml(tmp_path: Path) -> None:
    path = tmp_path / "database.yml"
    path.write_text(
        "adapter: mysql2\nhost: db\ndata: canvas\nuser: led\npass: secret\nmax_connections: 8\n"
    )
    url = url_from_yaml(path)
    assert (url.drivername, url.host, url.database, url.username, url.password) == (
        "mysql+mysqldb",
        "db",
        "canvas",
        "led",
        "secret",
    )
    path.write_text("adapter: tinytds\nhost: sql\ndata: canvas\nuser: sa\npass: x\n")
    assert url_from_yaml(path).drivername == "mssql+pyodbc"
    path.write_text("adapter: nope\n")
    with pytest.raises(ConfigError, match="adapter must be one of"):
        url_from_yaml(path)


def test_resolution_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("LEDBELLY_DATABASE_URL", raising=False)
    assert resolve_url(None).render_as_string() == "sqlite:///ledbelly.db"
    (tmp_path / "cfg").mkdir()
    (tmp_path / "cfg" / "database.yml").write_text("url: sqlite:///yaml.db\n")
    assert resolve_url(None).database == "yaml.db"
    monkeypatch.setenv("LEDBELLY_DATABASE_URL", "sqlite:///env.db")
    assert resolve_url(None).database == "env.db"
    assert resolve_url("sqlite:///cli.db").database == "cli.db"


def test_max_connections_sizes_the_pool_only_for_database_yml(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ledbelly.db.engine import pool_size_for

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("LEDBELLY_DATABASE_URL", raising=False)
    assert pool_size_for(None) is None
    (tmp_path / "cfg").mkdir()
    (tmp_path / "cfg" / "database.yml").write_text("adapter: sqlite\nmax_connections: 8\n")
    assert pool_size_for(None) == 8
    assert pool_size_for("sqlite:///other.db") is None


def test_a_yaml_error_never_shows_the_secret_it_sits_beside(tmp_path: Path) -> None:
    for name, text in [
        ("database.yml", "adapter: postgresql\nhost: db\nuser: ledbelly\npass: @S3CRET-PW\n"),
        ("sqs.yml", 'queues: [q]\naws:\n  access_key_id: AKIA\n  secret_access_key: "x\n'),
    ]:
        path = tmp_path / name
        path.write_text(text)
        load = url_from_yaml if name == "database.yml" else load_daemon_settings
        with pytest.raises(ConfigError, match="not valid YAML at line") as caught:
            load(path)
        assert "S3CRET" not in str(caught.value) and "access_key" not in str(caught.value)


def test_a_visibility_timeout_of_zero_is_refused() -> None:
    with pytest.raises(ConfigError, match="visibility_timeout must be a whole number from 1"):
        daemon_settings_from_dict({"queues": ["q"], "visibility_timeout": 0})
    with pytest.raises(ConfigError, match="visibility_timeout"):
        daemon_settings_from_dict({"queues": [{"name": "q", "visibility_timeout": 0}]})


def test_ledbelly_services_turn_on_extensions(tmp_path: Path) -> None:
    (tmp_path / "ledbelly.yml").write_text("services: [maxmind]\n")
    (tmp_path / "sqs.yml").write_text(
        "queues: [q]\nextensions:\n  geoip:\n    database: /data/city.mmdb\n"
    )
    settings = load_daemon_settings(tmp_path / "sqs.yml")
    assert [(e.name, dict(e.options)) for e in settings.extensions] == [
        ("geoip", {"database": "/data/city.mmdb"})
    ]


def test_writers_default_to_two_on_a_server_and_one_on_sqlite() -> None:
    worker = daemon_settings_from_dict({"queues": ["q"]}).worker
    assert worker.writers is None
    assert worker.writer_count("postgresql") == 2
    assert worker.writer_count("mysql") == 2
    assert worker.writer_count("sqlite") == 1
    chosen = daemon_settings_from_dict({"queues": ["q"], "writers": 3}).worker
    assert chosen.writer_count("sqlite") == 3
