"""The daemon's configuration: ``cfg/sqs.yml`` loaded once into typed, checked objects.

LEDbelly's keys (``aws.region``, ``aws.access_key_id``, ``aws.secret_access_key``,
``concurrency``, ``delay``, ``queues``) keep working; Shoryuken-only keys (``logfile``,
``pidfile``) are accepted and ignored. An ``https:`` section (``cfg/https.yml.example``)
runs the intake for Canvas's HTTPS delivery, instead of or beside the SQS queues.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from ledbelly.errors import ConfigError
from ledbelly.extensions.config import (
    EXTENSION_KEYS,
    ExtensionSettings,
    configured_extensions,
    extensions_from_dict,
)

DEAD_LETTER_POLICIES = ("table", "redrive")
EVOLUTION_MODES = ("off", "add_columns", "add_columns_and_tables")
LOG_FORMATS = ("text", "json")
_IGNORED = {"logfile", "pidfile", "timeout", "verbose"}
_TOP_KEYS = {
    "aws",
    "endpoint_url",
    "concurrency",
    "delay",
    "queues",
    "wait_time_seconds",
    "visibility_timeout",
    "batch_size",
    "max_batch_wait",
    "batch_linger",
    "max_in_flight",
    "max_in_flight_bytes",
    "shutdown_timeout",
    "dead_letter_policy",
    "metrics_port",
    "metrics_host",
    "log_format",
    "log_file",
    "log_level",
    "live_stream",
    "time_zone",
    "schema_evolution",
    "writers",
    "database",
    "log_dir",
    *EXTENSION_KEYS,
}
_SECTIONS = {"https"}  # documented in their own example file (cfg/https.yml.example)
# Instructure's documented JWKS for signed HTTPS Live Events (data_service_setup.md).
CANVAS_JWKS_URL = "https://8axpcl50e4.execute-api.us-east-1.amazonaws.com/main/jwks"
CANVAS_TIMEOUT = 15.0  # Canvas gives up on a delivery after this long without an answer
_HTTPS_KEYS = {
    "listen",
    "reuse_port",
    "path",
    "require_signature",
    "jwks_url",
    "issuer",
    "tls_cert",
    "tls_key",
    "max_body_bytes",
    "response_timeout",
    "allow_from",
    "jwks_refresh_interval",
    "jwks_max_age",
    "jwks_timeout",
    "leeway",
    "max_pending",
}
IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class QueueSettings:
    """One queue to consume: its name or URL and how many pollers it gets."""

    name: str
    concurrency: int
    wait_time_seconds: int
    visibility_timeout: int

    @property
    def is_url(self) -> bool:
        return self.name.startswith(("http://", "https://"))


@dataclass(frozen=True)
class AwsSettings:
    region: str | None = None
    access_key_id: str | None = None
    secret_access_key: str | None = None
    session_token: str | None = None
    profile: str | None = None
    endpoint_url: str | None = None

    def __repr__(self) -> str:  # never show secrets in logs or tracebacks
        return (
            f"AwsSettings(region={self.region!r}, endpoint_url={self.endpoint_url!r}, "
            f"credentials={'explicit' if self.access_key_id else 'default chain'})"
        )


@dataclass(frozen=True)
class HttpsSettings:
    """The HTTPS intake: where it listens and how it checks what Canvas posts."""

    host: str = "127.0.0.1"
    port: int = 8080
    path: str = "/live-events"
    require_signature: bool = True
    jwks_url: str = CANVAS_JWKS_URL
    issuer: str | None = None
    tls_cert: Path | None = None
    tls_key: Path | None = None
    max_body_bytes: int = 1_048_576
    response_timeout: float = 10.0
    allow_from: tuple[IpNetwork, ...] = ()
    jwks_refresh_interval: float = 60.0
    jwks_max_age: float = 3600.0
    jwks_timeout: float = 5.0
    leeway: float = 60.0
    max_pending: int = 1000
    reuse_port: bool = False  # several processes on one host share the port (SO_REUSEPORT)

    @property
    def listen(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    @property
    def tls(self) -> bool:
        return self.tls_cert is not None


@dataclass(frozen=True)
class WorkerOptions:
    """How the daemon batches, holds, and stops: the ``worker`` part of the settings."""

    batch_size: int = 500
    max_batch_wait: float = 1.0
    batch_linger: float = 0.01
    max_in_flight: int = 5000
    max_in_flight_bytes: int = 256 * 1024**2  # message bodies held in memory at most
    shutdown_timeout: float = 30.0
    delay: float = 0.0
    writers: int | None = None  # None: by the database (``default_writers``)
    dead_letter_policy: str = "table"
    housekeeping_interval: float = 1.0

    def writer_count(self, dialect: str) -> int:
        """Writer threads for ``dialect``: the ``writers`` key, else ``default_writers``."""
        return self.writers if self.writers is not None else default_writers(dialect)


def default_writers(dialect: str) -> int:
    """Two writer threads on a database server: one converts a batch while the other
    waits for the database to commit its own (measured: the daemon from memory into
    PostgreSQL went from 0.76 to 0.88 of ingest's rate). SQLite takes one writer at a
    time, so a second would only wait for the first."""
    return 1 if dialect == "sqlite" else 2


@dataclass(frozen=True)
class DaemonSettings:
    """Everything ``ledbelly run`` needs beyond the database."""

    queues: tuple[QueueSettings, ...] = ()
    aws: AwsSettings = field(default_factory=AwsSettings)
    worker: WorkerOptions = field(default_factory=WorkerOptions)
    metrics_port: int | None = None
    metrics_host: str = "127.0.0.1"
    log_format: str = "text"
    log_file: Path | None = None
    log_level: str = "INFO"
    live_stream: bool = True
    time_zone: str | None = None
    schema_evolution: str = "off"
    database: Path | None = None
    log_dir: Path | None = None
    https: HttpsSettings | None = None
    extensions: tuple[ExtensionSettings, ...] = ()


def _int(doc: dict[str, Any], key: str, default: int, lo: int, hi: int) -> int:
    value = doc.get(key, default)
    if value is None:
        return default
    if not isinstance(value, int) or isinstance(value, bool) or not lo <= value <= hi:
        raise ConfigError(f"{key} must be a whole number from {lo} to {hi}, got {value!r}")
    return value


def _float(doc: dict[str, Any], key: str, default: float, lo: float, hi: float) -> float:
    value = doc.get(key, default)
    if value is None:
        return default
    if not isinstance(value, int | float) or isinstance(value, bool) or not lo <= value <= hi:
        raise ConfigError(f"{key} must be a number from {lo} to {hi}, got {value!r}")
    return float(value)


def _choice(doc: dict[str, Any], key: str, default: str, choices: tuple[str, ...]) -> str:
    value = doc.get(key, default)
    if value is False and "off" in choices:  # YAML reads a bare `off` as false
        return "off"
    if value not in choices:
        raise ConfigError(f"{key} must be one of {', '.join(choices)}, got {value!r}")
    return str(value)


def _queues(
    doc: dict[str, Any], concurrency: int, wait: int, visibility: int
) -> tuple[QueueSettings, ...]:
    raw = doc.get("queues")
    if isinstance(raw, str):
        raw = [raw]
    if not isinstance(raw, list) or not raw:
        raise ConfigError("queues must list at least one SQS queue name or URL")
    out = []
    for item in raw:
        if isinstance(item, str):
            out.append(QueueSettings(item, concurrency, wait, visibility))
        elif isinstance(item, dict) and isinstance(item.get("name") or item.get("url"), str):
            out.append(
                QueueSettings(
                    str(item.get("url") or item["name"]),
                    _int(item, "concurrency", concurrency, 1, 100),
                    _int(item, "wait_time_seconds", wait, 0, 20),
                    _int(item, "visibility_timeout", visibility, 1, 43200),
                )
            )
        elif isinstance(item, list) and item and isinstance(item[0], str):
            # Shoryuken's [name, weight] form
            out.append(QueueSettings(item[0], concurrency, wait, visibility))
        else:
            raise ConfigError(
                f"queues: cannot read {item!r}; give a name, URL or {{name: ..., concurrency: ...}}"
            )
    return tuple(out)


def _listen(value: Any) -> tuple[str, int]:
    """``host:port`` or ``[v6 address]:port``."""
    text = str(value).strip() if isinstance(value, str | int) else ""
    host, sep, port = text.rpartition(":")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ConfigError(
            f"https.listen must be host:port (e.g. 0.0.0.0:8443 or [::]:8443), got {value!r}"
        )
    return host, int(port)


def _file(doc: dict[str, Any], key: str) -> Path | None:
    value = doc.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        raise ConfigError(f"https.{key} must be a file path, got {value!r}")
    path = Path(value).expanduser()
    if not path.is_file():
        raise ConfigError(f"https.{key}: no such file: {path}")
    return path


def _networks(value: Any) -> tuple[IpNetwork, ...]:
    items = [value] if isinstance(value, str) else value
    if items is None:
        return ()
    if not isinstance(items, list):
        raise ConfigError(f"https.allow_from must list networks (e.g. 10.0.0.0/8), got {value!r}")
    out: list[IpNetwork] = []
    for item in items:
        try:
            out.append(ipaddress.ip_network(str(item), strict=False))
        except ValueError:
            raise ConfigError(
                f"https.allow_from: {item!r} is not an IP address or network"
            ) from None
    return tuple(out)


def https_settings_from_dict(doc: Any) -> HttpsSettings:
    """The ``https:`` section, every key checked; messages name the key as ``https.<key>``."""
    if doc is None or doc is True:
        doc = {}
    if not isinstance(doc, dict):
        raise ConfigError("https must be a mapping of settings (see cfg/https.yml.example)")
    unknown = set(doc) - _HTTPS_KEYS
    if unknown:
        raise ConfigError(f"unknown https settings {sorted(unknown)}; see cfg/https.yml.example")
    section = {f"https.{k}": v for k, v in doc.items()}

    def num(key: str, default: float, lo: float, hi: float) -> float:
        return _float(section, f"https.{key}", default, lo, hi)

    host, port = _listen(doc.get("listen", "127.0.0.1:8080"))
    path = doc.get("path", "/live-events")
    if not isinstance(path, str) or not path.startswith("/") or any(c in path for c in "?# "):
        raise ConfigError(f"https.path must be a URL path starting with /, got {path!r}")
    require_signature = doc.get("require_signature", True)
    if not isinstance(require_signature, bool):
        raise ConfigError(
            f"https.require_signature must be true or false, got {require_signature!r}"
        )
    jwks_url = doc.get("jwks_url") or CANVAS_JWKS_URL
    if not isinstance(jwks_url, str) or not jwks_url.startswith(("https://", "http://")):
        raise ConfigError(f"https.jwks_url must be an http(s) URL, got {jwks_url!r}")
    issuer = doc.get("issuer")
    if issuer is not None and (not isinstance(issuer, str) or not issuer):
        raise ConfigError(f"https.issuer must be a string, got {issuer!r}")
    tls_cert, tls_key = _file(doc, "tls_cert"), _file(doc, "tls_key")
    if (tls_cert is None) != (tls_key is None):
        raise ConfigError("https.tls_cert and https.tls_key go together")
    reuse_port = doc.get("reuse_port", False)
    if not isinstance(reuse_port, bool):
        raise ConfigError(f"https.reuse_port must be true or false, got {reuse_port!r}")
    return HttpsSettings(
        host=host,
        port=port,
        path=path.rstrip("/") or "/",
        require_signature=require_signature,
        jwks_url=jwks_url,
        issuer=issuer,
        tls_cert=tls_cert,
        tls_key=tls_key,
        max_body_bytes=_int(section, "https.max_body_bytes", 1_048_576, 1024, 64 * 1024**2),
        response_timeout=num("response_timeout", 10.0, 0.1, CANVAS_TIMEOUT - 1),
        allow_from=_networks(doc.get("allow_from")),
        jwks_refresh_interval=num("jwks_refresh_interval", 60.0, 0.0, 86400),
        jwks_max_age=num("jwks_max_age", 3600.0, 1.0, 7 * 86400),
        jwks_timeout=num("jwks_timeout", 5.0, 0.1, 60),
        leeway=num("leeway", 60.0, 0.0, 3600),
        max_pending=_int(section, "https.max_pending", 1000, 1, 100_000),
        reuse_port=reuse_port,
    )


def daemon_settings_from_dict(doc: Any) -> DaemonSettings:
    if not isinstance(doc, dict):
        raise ConfigError("the SQS configuration must be a mapping of settings")
    unknown = set(doc) - _TOP_KEYS - _SECTIONS - _IGNORED
    if unknown:
        raise ConfigError(f"unknown settings {sorted(unknown)}; see cfg/sqs.yml.example")
    aws_doc = doc.get("aws") or {}
    if not isinstance(aws_doc, dict):
        raise ConfigError("aws must be a mapping (region, access_key_id, secret_access_key)")
    aws = AwsSettings(
        region=aws_doc.get("region"),
        access_key_id=aws_doc.get("access_key_id"),
        secret_access_key=aws_doc.get("secret_access_key"),
        session_token=aws_doc.get("session_token"),
        profile=aws_doc.get("profile"),
        endpoint_url=doc.get("endpoint_url") or aws_doc.get("endpoint_url"),
    )
    if bool(aws.access_key_id) != bool(aws.secret_access_key):
        raise ConfigError("aws.access_key_id and aws.secret_access_key go together")
    concurrency = _int(doc, "concurrency", 4, 1, 100)
    wait = _int(doc, "wait_time_seconds", 20, 0, 20)
    # 0 would let SQS hand every message to another poller while it is being written.
    visibility = _int(doc, "visibility_timeout", 120, 1, 43200)
    batch_size = _int(doc, "batch_size", 500, 1, 10000)
    metrics_port = doc.get("metrics_port")
    if metrics_port is not None and (
        not isinstance(metrics_port, int) or not 0 <= metrics_port <= 65535
    ):
        raise ConfigError(f"metrics_port must be a port number, got {metrics_port!r}")
    https = https_settings_from_dict(doc["https"]) if "https" in doc else None
    if https is not None and https.reuse_port and metrics_port == https.port:
        raise ConfigError(
            "https.reuse_port: the processes sharing the port would each answer /metrics "
            "there, so a scrape would see one of them at random; give each its own "
            "metrics_port (ledbelly run --metrics-port)"
        )
    if https is None and "queues" not in doc:
        raise ConfigError("give queues (SQS), an https section (Canvas's HTTPS delivery), or both")
    queues = _queues(doc, concurrency, wait, visibility) if "queues" in doc else ()
    return DaemonSettings(
        queues=queues,
        https=https,
        aws=aws,
        worker=WorkerOptions(
            delay=_float(doc, "delay", 0.0, 0, 3600),
            batch_size=batch_size,
            max_batch_wait=_float(doc, "max_batch_wait", 1.0, 0.0, 60),
            batch_linger=_float(doc, "batch_linger", 0.01, 0.0, 60),
            max_in_flight=_int(doc, "max_in_flight", max(5000, 2 * batch_size), 10, 1_000_000),
            max_in_flight_bytes=_int(
                doc, "max_in_flight_bytes", 256 * 1024**2, 1024**2, 64 * 1024**3
            ),
            shutdown_timeout=_float(doc, "shutdown_timeout", 30.0, 1, 3600),
            dead_letter_policy=_choice(doc, "dead_letter_policy", "table", DEAD_LETTER_POLICIES),
            writers=None if doc.get("writers") is None else _int(doc, "writers", 1, 1, 16),
        ),
        metrics_port=metrics_port,
        metrics_host=str(doc.get("metrics_host", "127.0.0.1")),
        log_format=_choice(doc, "log_format", "text", LOG_FORMATS),
        log_file=Path(doc["log_file"]) if doc.get("log_file") else None,
        log_level=str(doc.get("log_level", "INFO")).upper(),
        live_stream=bool(doc.get("live_stream", True)),
        time_zone=doc.get("time_zone"),
        schema_evolution=_choice(doc, "schema_evolution", "off", EVOLUTION_MODES),
        database=Path(doc["database"]) if doc.get("database") else None,
        log_dir=Path(doc["log_dir"]) if doc.get("log_dir") else None,
        extensions=extensions_from_dict(doc),
    )


def read_yaml(path: Path) -> Any:
    """A configuration file's YAML, or a ``ConfigError`` that never quotes the file.

    PyYAML's own messages show the offending line, which may hold a password or a secret
    key; the error here names only the line, the column and what the parser expected.
    """
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or "it cannot be parsed"
        raise ConfigError(
            f"{path} is not valid YAML{where}: {problem} (a quoting error? "
            "put values with @, :, # or quotes in single quotes)"
        ) from None


def load_daemon_settings(path: Path, metrics_port: int | None = None) -> DaemonSettings:
    """The run configuration at ``path``; ``metrics_port`` (the command line's) overrides
    the file's, so processes sharing one file can each have their own."""
    doc = read_yaml(path)
    if metrics_port is not None and isinstance(doc, dict):
        doc = {**doc, "metrics_port": metrics_port}
    try:
        settings = daemon_settings_from_dict(doc)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    extensions = configured_extensions(doc, path.with_name("ledbelly.yml"))
    return replace(settings, extensions=extensions)
