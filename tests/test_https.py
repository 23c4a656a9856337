"""Canvas's HTTPS delivery: a real server, real HTTP over sockets, real RSA keys.

The keys are made here; the JWKS (previous, current, next, as Instructure publishes it)
is served from a local port. Events go into SQLite, PostgreSQL and MariaDB through the
daemon's ordinary writers, and each POST is answered only after its commit.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import queue
import re
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm
from sqlalchemy import create_engine, text

from conftest import PG_ADMIN, ROOT, TEST_DB, canvas_event, engine_for, fresh_database_url
from ledbelly.config import HttpsSettings, https_settings_from_dict, load_daemon_settings
from ledbelly.daemon.worker import Binding, Daemon, WorkerOptions
from ledbelly.db.engine import normalize_url
from ledbelly.demo import free_port
from ledbelly.errors import ConfigError
from ledbelly.ops.metrics import Metrics
from ledbelly.sources.https import HttpsSource
from ledbelly.sources.https_events import canonical_json, event_message_id
from ledbelly.sources.jwt_verify import JwksCache, JwtVerifier, VerificationError

LOGIN_ID = "urn:uuid:2b6d64bf-5b31-4e2f-b389-c6ebcb232407"


# ----- keys and the JWKS ----------------------------------------------------------------------


@dataclass
class Keys:
    private: dict[str, rsa.RSAPrivateKey] = field(default_factory=dict)

    def make(self, kid: str) -> rsa.RSAPrivateKey:
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.private[kid] = key
        return key

    def jwk(self, kid: str) -> dict[str, Any]:
        doc: dict[str, Any] = RSAAlgorithm.to_jwk(self.private[kid].public_key(), as_dict=True)
        return {**doc, "kid": kid, "alg": "RS256", "use": "sig"}

    def sign(
        self, claims: dict[str, Any], kid: str = "current", lifetime: float | None = 300
    ) -> str:
        now = int(time.time())
        claims = {"iss": "https://live-events.test", "iat": now, **claims}
        if lifetime is not None:
            claims["exp"] = now + int(lifetime)
        return jwt.encode(claims, self.private[kid], algorithm="RS256", headers={"kid": kid})

    def public_pem(self, kid: str) -> bytes:
        return (
            self.private[kid]
            .public_key()
            .public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )


@pytest.fixture(scope="module")
def keys() -> Keys:
    k = Keys()
    for kid in ("previous", "current", "next", "rotated", "stranger"):
        k.make(kid)
    return k


class JwksServer:
    """Serves ``{"keys": [...]}`` on 127.0.0.1 and counts the fetches."""

    def __init__(self, keys: Keys, kids: list[str]) -> None:
        self.keys, self.kids, self.fetches = keys, kids, 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                outer.fetches += 1
                body = json.dumps({"keys": [outer.keys.jwk(k) for k in outer.kids]}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/main/jwks"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def jwks(keys: Keys) -> Iterator[JwksServer]:
    server = JwksServer(keys, ["previous", "current", "next"])
    yield server
    server.close()


# ----- events -----------------------------------------------------------------------------


def logged_in() -> dict[str, Any]:
    """Instructure's documented logged_in example, as a bare Caliper envelope."""
    canvas = {
        "com.instructure.canvas": {
            "user_login": "oxana@example.com",
            "user_sis_id": "456-T45",
            "root_account_id": "21070000000000001",
            "entity_id": "21070000000000001",
        }
    }
    return {
        "sensor": "http://oxana.instructure.com/",
        "sendTime": "2019-11-16T02:09:11.771Z",
        "dataVersion": "http://purl.imsglobal.org/ctx/caliper/v1p1",
        "data": [
            {
                "@context": "http://purl.imsglobal.org/ctx/caliper/v1p1",
                "id": LOGIN_ID,
                "type": "SessionEvent",
                "action": "LoggedIn",
                "actor": {
                    "id": "urn:instructure:canvas:user:21070000000000001",
                    "type": "Person",
                    "extensions": canvas,
                },
                "object": {"id": "http://oxana.instructure.com/", "type": "SoftwareApplication"},
                "eventTime": "2019-11-01T19:11:01.335Z",
                "extensions": {
                    "com.instructure.canvas": {
                        "hostname": "oxana.instructure.com",
                        "client_ip": "93.184.216.34",
                        "request_id": "1dd9dc6f-2fb0-4c19-a6c5-7ee1bf3ed295",
                    }
                },
            }
        ],
    }


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def forged(header: dict[str, Any], claims: dict[str, Any], secret: bytes | None) -> str:
    """A token made by hand: PyJWT refuses to make the forgeries we need."""
    signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims).encode())}"
    signature = (
        b"" if secret is None else hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    )
    return f"{signing_input}.{b64(signature)}"


# ----- a daemon with the intake, in this process ----------------------------------------------


@dataclass
class Intake:
    url: str
    source: HttpsSource
    daemon: Daemon
    metrics: Metrics
    db: str

    def post(self, body: str | bytes, timeout: float = 20) -> httpx.Response:
        return httpx.post(self.url, content=body, timeout=timeout)

    def scalar(self, sql: str) -> Any:
        engine = engine_for(self.db)
        try:
            with engine.connect() as conn:
                return conn.execute(text(sql)).scalar()
        finally:
            engine.dispose()


@pytest.fixture
def intake(make_pipeline: Callable[..., Any], jwks: JwksServer) -> Iterator[Callable[..., Intake]]:
    running: list[Daemon] = []

    def start(db: str, **https: Any) -> Intake:
        settings = HttpsSettings(
            host="127.0.0.1",
            port=0,
            jwks_url=jwks.url,
            response_timeout=https.pop("response_timeout", 10.0),
            **https,
        )
        metrics = Metrics()
        source = HttpsSource(settings, metrics)
        source.start()
        daemon = Daemon(
            make_pipeline(db),
            [Binding(source, 1, 0.2, None)],
            WorkerOptions(max_batch_wait=0.2, shutdown_timeout=10, housekeeping_interval=0.1),
            metrics=metrics,
        )
        daemon.start()
        running.append(daemon)
        return Intake(f"http://127.0.0.1:{source.port}{settings.path}", source, daemon, metrics, db)

    yield start
    for d in running:
        d.stop()
        d.wait()


# ----- events land ------------------------------------------------------------------------


def test_signed_events_land_once_however_often_posted(
    db_url: str, intake: Callable[..., Intake], keys: Keys
) -> None:
    i = intake(db_url)
    raw = canvas_event()
    raw_token, login_token = keys.sign(raw), keys.sign(logged_in(), kid="next")
    answers = [i.post(raw_token) for _ in range(3)] + [i.post(login_token) for _ in range(3)]
    assert [a.status_code for a in answers] == [200] * 6
    assert i.scalar("SELECT COUNT(*) FROM live_asset_accessed") == 1
    assert i.scalar("SELECT asset_name FROM live_asset_accessed") == "Biology 101"
    assert i.scalar("SELECT COUNT(*) FROM ims_logged_in") == 1
    assert i.scalar("SELECT actor_user_login FROM ims_logged_in") == "oxana@example.com"
    assert i.scalar("SELECT COUNT(*) FROM ledbelly_messages") == 2
    assert (
        i.scalar(f"SELECT event_name FROM ledbelly_messages WHERE message_id = '{LOGIN_ID}'")
        == "logged_in"
    )
    raw_id = event_message_id(raw)
    assert raw_id == "sha256:" + hashlib.sha256(canonical_json(raw)).hexdigest()
    assert answers[0].json()["id"] == raw_id
    assert (
        i.scalar(f"SELECT target_table FROM ledbelly_messages WHERE message_id = '{raw_id}'")
        == "live_asset_accessed"
    )
    # Signed, but not an event: Canvas's own, so it is kept as a dead letter.
    junk = i.post(keys.sign({"hello": "world"}))
    assert junk.status_code == 200
    assert i.scalar("SELECT COUNT(*) FROM ledbelly_dead_letters") == 1
    requests = i.metrics.https_snapshot()["requests"]
    assert requests == {200: 7} and i.metrics.https_snapshot()["committed"] == 7
    assert "ledbelly_https_requests_total" in i.metrics.render_https()


def test_unsigned_events_land_when_signatures_are_off(
    db_url: str, intake: Callable[..., Intake]
) -> None:
    i = intake(db_url, require_signature=False)
    assert i.post(json.dumps(canvas_event())).status_code == 200
    assert i.post(json.dumps(logged_in(), indent=2)).status_code == 200
    assert i.post(json.dumps(logged_in())).status_code == 200  # the same event, retried
    assert i.scalar("SELECT COUNT(*) FROM live_asset_accessed") == 1
    assert i.scalar("SELECT COUNT(*) FROM ims_logged_in") == 1
    for body in ("this is not json", '{"hello": "world"}', "[1, 2]", b"\xff\xfe"):
        answer = i.post(body)
        assert answer.status_code == 400 and "not a Live Event" in answer.json()["error"]
    assert i.scalar("SELECT COUNT(*) FROM ledbelly_messages") == 2
    assert i.scalar("SELECT COUNT(*) FROM ledbelly_dead_letters") == 0


# ----- forgeries --------------------------------------------------------------------------


def test_forgeries_are_refused_and_stored_nowhere(
    sqlite_url: str, intake: Callable[..., Intake], keys: Keys, jwks: JwksServer
) -> None:
    i = intake(sqlite_url)
    event = canvas_event()
    good = keys.sign(event)
    head, claims, signature = good.split(".")
    tampered_claims = json.loads(base64.urlsafe_b64decode(claims + "=="))
    tampered_claims["body"]["asset_name"] = "Chemistry 101"
    forgeries = {
        "tampered": f"{head}.{b64(json.dumps(tampered_claims).encode())}.{signature}",
        "alg none": forged({"alg": "none", "kid": "current", "typ": "JWT"}, event, None),
        "HS256 with the public key": forged(
            {"alg": "HS256", "kid": "current", "typ": "JWT"}, event, keys.public_pem("current")
        ),
        "expired": keys.sign(event, lifetime=-3600),
        "unknown kid": keys.sign(event, kid="stranger"),
        "unsigned JSON": json.dumps(event),
        "garbage": "not a token at all",
    }
    for what, body in forgeries.items():
        answer = i.post(body)
        assert answer.status_code == 401, f"{what}: {answer.status_code} {answer.text}"
    assert i.scalar("SELECT COUNT(*) FROM ledbelly_messages") == 0
    rejections = i.metrics.https_snapshot()["rejections"]
    assert rejections == {
        "signature": 1,
        "algorithm": 2,
        "expired": 1,
        "unknown_kid": 1,
        "unsigned": 2,
    }
    assert jwks.fetches == 2  # the first load, and one refetch for the unknown kid
    assert i.post(keys.sign(event, kid="stranger")).status_code == 401
    assert jwks.fetches == 2  # no second refetch within the interval
    assert i.post(good).status_code == 200


def test_a_rotated_key_is_accepted_after_one_refetch(
    sqlite_url: str, intake: Callable[..., Intake], keys: Keys, jwks: JwksServer
) -> None:
    i = intake(sqlite_url)
    assert i.post(keys.sign(canvas_event())).status_code == 200
    assert jwks.fetches == 1
    jwks.kids[:] = ["current", "next", "rotated"]  # a month later
    rotated = canvas_event(asset_name="after rotation")
    assert i.post(keys.sign(rotated, kid="rotated")).status_code == 200
    assert jwks.fetches == 2
    assert i.post(keys.sign(canvas_event(asset_name="again"), kid="rotated")).status_code == 200
    assert jwks.fetches == 2
    assert i.scalar("SELECT COUNT(*) FROM live_asset_accessed") == 3


def test_jwks_refetches_are_rate_limited() -> None:
    fetched: list[float] = []
    now = [0.0]

    def fetch(url: str, timeout: float) -> bytes:
        fetched.append(now[0])
        return json.dumps({"keys": [one_key_jwk()]}).encode()

    cache = JwksCache("http://jwks.invalid", refresh_interval=60, fetch=fetch, clock=lambda: now[0])
    verifier = JwtVerifier(cache)
    for t in (1.0, 2.0, 30.0, 61.5, 62.0):
        now[0] = t
        with pytest.raises(VerificationError, match="no key"):
            verifier.keys.key("unknown")
    assert fetched == [1.0, 2.0, 62.0]  # a first load is not followed by a refetch at once


def one_key_jwk() -> dict[str, Any]:
    k = Keys()
    k.make("k1")
    return k.jwk("k1")


# ----- limits -----------------------------------------------------------------------------


def _raw_exchange(port: int, request: bytes) -> bytes:
    """Send ``request`` without finishing the body; return what the server answers."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(request)
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(4096)
            if not chunk:
                break
            data += chunk
        return data


def test_oversized_bodies_get_413_without_being_read_whole(
    sqlite_url: str, intake: Callable[..., Intake]
) -> None:
    i = intake(sqlite_url, max_body_bytes=4096)
    port = i.source.port
    declared = (
        f"POST {i.source.settings.path} HTTP/1.1\r\nHost: x\r\n"
        f"Content-Length: {50 * 1024 * 1024}\r\n\r\n"
    ).encode() + b"x" * 100
    assert _raw_exchange(port, declared).startswith(b"HTTP/1.1 413")
    chunked = (
        f"POST {i.source.settings.path} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
    ).encode()
    chunked += b"".join(b"400\r\n" + b"y" * 1024 + b"\r\n" for _ in range(5))  # 5 KiB, open
    assert _raw_exchange(port, chunked).startswith(b"HTTP/1.1 413")
    assert i.post(b"z" * 5000).status_code == 413
    assert i.metrics.https_snapshot()["requests"] == {413: 3}


def test_allow_from_refuses_other_networks(
    sqlite_url: str, intake: Callable[..., Intake], keys: Keys
) -> None:
    refused = intake(
        sqlite_url, allow_from=https_settings_from_dict({"allow_from": ["10.0.0.0/8"]}).allow_from
    )
    assert refused.post(keys.sign(canvas_event())).status_code == 403
    assert refused.metrics.https_snapshot()["rejections"] == {"not_allowed": 1}


def test_tls_with_a_certificate_of_our_own(
    sqlite_url: str, intake: Callable[..., Intake], keys: Keys, tmp_path: Path
) -> None:
    cert, key = self_signed(tmp_path)
    i = intake(sqlite_url, tls_cert=cert, tls_key=key)
    url = i.url.replace("http://", "https://")
    answer = httpx.post(
        url,
        content=keys.sign(canvas_event()),
        timeout=20,
        verify=ssl.create_default_context(cafile=str(cert)),
    )
    assert answer.status_code == 200
    with pytest.raises(httpx.HTTPError):  # plain HTTP to a TLS port gets nowhere
        httpx.post(i.url, content=keys.sign(canvas_event()), timeout=5)
    assert i.scalar("SELECT COUNT(*) FROM live_asset_accessed") == 1


def self_signed(folder: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and its key, as PEM files."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.x509.oid import NameOID

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


def test_bare_caliper_events_are_routed_by_content() -> None:
    """``ingest`` and HTTPS share this: no event_name attribute, the content decides."""
    from ledbelly import parsers

    assert parsers.open_envelope(logged_in(), {}).event_name == "logged_in"
    foreign = logged_in()
    foreign["data"][0]["actor"] = {"id": "https://example.edu/people/1", "type": "Person"}
    foreign["data"][0].pop("extensions")
    assert parsers.open_envelope(foreign, {}).event_name == "caliper:SessionEvent.LoggedIn"
    assert parsers.open_envelope(logged_in(), {"event_name": "x"}).event_name == "x"


def test_queues_and_https_run_in_one_process_on_one_pipeline(
    sqlite_url: str, sqs_queue: tuple[Any, str], sqs_endpoint: str, tmp_path: Path
) -> None:
    from conftest import SCHEMAS, send_all, sqs_message
    from ledbelly.config import daemon_settings_from_dict
    from ledbelly.daemon.app import build_daemon

    client, queue_url = sqs_queue
    settings = daemon_settings_from_dict(
        {
            "queues": [queue_url],
            "endpoint_url": sqs_endpoint,
            "wait_time_seconds": 1,
            "concurrency": 1,
            "max_batch_wait": 0.2,
            "aws": {
                "region": "us-east-1",
                "access_key_id": "testing",
                "secret_access_key": "testing",
            },
            "https": {
                "listen": "127.0.0.1:0",
                "require_signature": False,
                "allow_from": ["127.0.0.1/32"],
            },
        }
    )
    daemon = build_daemon(
        settings,
        normalize_url(sqlite_url),
        tmp_path / "log",
        True,
        schema_dir=SCHEMAS,
        status=False,
    )
    daemon.start()
    try:
        port = next(b.source.port for b in daemon.bindings if isinstance(b.source, HttpsSource))
        send_all(
            client,
            queue_url,
            [sqs_message("m-1", "asset_accessed", canvas_event(asset_name="by SQS"))],
        )
        answer = httpx.post(
            f"http://127.0.0.1:{port}/live-events",
            timeout=20,
            content=json.dumps(canvas_event(asset_name="by HTTPS")),
        )
        assert answer.status_code == 200
        until = time.monotonic() + 30
        while scalar_of(sqlite_url, "SELECT COUNT(*) FROM live_asset_accessed") < 2:
            assert time.monotonic() < until, "the SQS message never landed"
    finally:
        daemon.stop()
        daemon.wait()
        daemon.pipeline.close()
    assert scalar_of(sqlite_url, "SELECT COUNT(DISTINCT asset_name) FROM live_asset_accessed") == 2


# ----- configuration ----------------------------------------------------------------------


def test_https_example_documents_every_key_and_loads() -> None:
    from ledbelly.config import _HTTPS_KEYS

    example = (ROOT / "cfg" / "https.yml.example").read_text()
    section = example[example.index("\nhttps:") :]
    for key in _HTTPS_KEYS:
        assert re.search(rf"^ +#? ?{key}:", section, re.M), f"https.{key} is not in the example"
    settings = load_daemon_settings(ROOT / "cfg" / "https.yml.example")
    assert settings.queues == () and settings.https is not None
    assert settings.https.require_signature is True
    assert settings.https.jwks_url.endswith("/main/jwks")
    assert settings.https.response_timeout < 15


@pytest.mark.parametrize(
    "doc, message",
    [
        ({}, "give queues (SQS), an https section"),
        ({"https": {"listen": "8443"}}, "https.listen must be host:port"),
        ({"https": {"require_signature": "no"}}, "https.require_signature must be true or false"),
        ({"https": {"response_timeout": 20}}, "https.response_timeout must be a number from"),
        (
            {"https": {"tls_cert": "/nonexistent.pem", "tls_key": "/nonexistent.key"}},
            "https.tls_cert: no such file",
        ),
        ({"https": {"allow_from": ["ten.0.0.0/8"]}}, "https.allow_from: 'ten.0.0.0/8'"),
        ({"https": {"jwks_url": "ftp://x"}}, "https.jwks_url must be an http(s) URL"),
        ({"https": {"max_body_bytes": 10}}, "https.max_body_bytes must be"),
        ({"https": {"bogus": 1}}, "unknown https settings ['bogus']"),
        ({"https": {"path": "no-slash"}}, "https.path must be a URL path"),
        ({"https": {"reuse_port": "yes"}}, "https.reuse_port must be true or false"),
        (
            {"https": {"listen": "127.0.0.1:8443", "reuse_port": True}, "metrics_port": 8443},
            "give each its own metrics_port",
        ),
    ],
)
def test_bad_https_settings_say_what_is_wrong(doc: dict[str, Any], message: str) -> None:
    from ledbelly.config import daemon_settings_from_dict

    with pytest.raises(ConfigError, match=re.escape(message)):
        daemon_settings_from_dict(doc)


def test_https_and_queues_together() -> None:
    from ledbelly.config import daemon_settings_from_dict

    s = daemon_settings_from_dict({"queues": ["a"], "https": {"listen": "[::1]:8443"}})
    assert s.queues[0].name == "a" and s.https is not None
    assert (s.https.host, s.https.port, s.https.listen) == ("::1", 8443, "[::1]:8443")


def test_response_timeout_answers_503_and_a_late_commit_answers_nobody() -> None:
    """No writer here: the test takes the writer's part with receive and ack."""
    settings = HttpsSettings(
        host="127.0.0.1", port=0, require_signature=False, response_timeout=0.5
    )
    source = HttpsSource(settings)
    source.start()
    url = f"http://127.0.0.1:{source.port}{settings.path}"

    def post_while(writer: Callable[[], object]) -> int:
        with ThreadPoolExecutor(max_workers=1) as pool:
            answer = pool.submit(httpx.post, url, content=json.dumps(logged_in()), timeout=10)
            writer()
            return answer.result().status_code

    try:
        # Never taken by a writer: 503, and it is gone from the queue.
        assert post_while(lambda: None) == 503
        assert source.receive(10, 0) == [] and source.waiting == 0
        # Taken, not committed in time: 503; the late ack answers nobody.
        handed: list[Any] = []
        assert post_while(lambda: handed.extend(source.receive(10, 5))) == 503
        assert len(handed) == 1
        source.ack(handed)
        assert source.waiting == 0
        # Taken and committed in time: 200.
        assert post_while(lambda: source.ack(source.receive(10, 5))) == 200
        assert source.metrics.https_snapshot()["requests"] == {503: 2, 200: 1}
    finally:
        source.close()


def test_a_busy_port_is_a_configuration_error(jwks: JwksServer) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        settings = HttpsSettings(host="127.0.0.1", port=taken.getsockname()[1])
        with pytest.raises(ConfigError, match="cannot listen there"):
            HttpsSource(settings).start()


# ----- the database goes away -------------------------------------------------------------


def test_a_database_outage_gets_503_and_retries_store_once(
    intake: Callable[..., Intake], keys: Keys, tmp_path: Path
) -> None:
    """A database of our own is closed to connections (the server keeps running)."""
    name = f"{TEST_DB}_down"
    try:
        admin = create_engine(normalize_url(PG_ADMIN), isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:
        pytest.skip(f"PostgreSQL is not reachable: {exc}")

    def sql(statement: str) -> None:
        with admin.connect() as conn:
            conn.execute(text(statement))

    i = intake(f"postgresql://postgres@127.0.0.1:5432/{name}", response_timeout=1.5)
    try:
        assert i.post(keys.sign(canvas_event())).status_code == 200
        sql(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
        sql(f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'")
        token = keys.sign(canvas_event(asset_name="during the outage"))
        for _ in range(3):  # Canvas's first try and two retries
            started = time.monotonic()
            answer = i.post(token)
            assert answer.status_code == 503, answer.text
            assert time.monotonic() - started < 1.5 + 1.0
        assert i.daemon.alive()
    finally:
        sql(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
    until = time.monotonic() + 60
    while (answer := i.post(token)).status_code != 200:  # Canvas's last retry, and ours
        assert answer.status_code == 503 and time.monotonic() < until, answer.text
    assert (
        i.scalar("SELECT COUNT(*) FROM live_asset_accessed WHERE asset_name = 'during the outage'")
        == 1
    )
    assert i.scalar("SELECT COUNT(*) FROM ledbelly_messages") == 2
    assert i.daemon.alive()


# ----- SIGTERM ----------------------------------------------------------------------------


class Daemonized:
    """``ledbelly run`` as a child process; its log lines are read as they come."""

    def __init__(self, config: Path, url: str, log_dir: Path, *options: str) -> None:
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "ledbelly.cli.main",
                "run",
                "-c",
                str(config),
                "--db",
                url,
                "--create-missing",
                "--log-dir",
                str(log_dir),
                *options,
            ],
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self.log: list[str] = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        self.reader.join(timeout=10)
        assert self.proc.stderr is not None
        self.proc.stderr.close()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.put(line)

    def expect(self, pattern: str, timeout: float = 30) -> re.Match[str]:
        until = time.monotonic() + timeout
        while time.monotonic() < until:
            try:
                line = self.lines.get(timeout=max(0.0, until - time.monotonic()))
            except queue.Empty:
                break
            self.log.append(line)
            if m := re.search(pattern, line):
                return m
        raise AssertionError(f"no log line matching {pattern!r}; got:\n{''.join(self.log)}")


def _metric(port: int, name: str) -> float:
    for line in httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return float("nan")


def _refuses(port: int) -> bool:
    """Whether a new connection is refused, reset or left unanswered: no longer served."""
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        return True
    return False


@pytest.mark.parametrize("commits", [True, False], ids=["committed", "not-committed"])
def test_sigterm_answers_every_request_in_flight_and_exits_0(tmp_path: Path, commits: bool) -> None:
    """Requests are held in flight by a lock on the ledger; SIGTERM comes; the lock is
    released in time (each gets 200) or not before shutdown_timeout (each gets 503)."""
    url = fresh_database_url("postgresql", tmp_path)
    config = tmp_path / "cfg.yml"
    config.write_text(
        "https:\n  listen: 127.0.0.1:0\n  require_signature: false\n"
        "  allow_from: [127.0.0.1]\n  response_timeout: 12\n"
        "shutdown_timeout: 3\nmax_batch_wait: 0.2\nmetrics_port: 0\n"
    )
    daemon = Daemonized(config, url, tmp_path / "log")
    try:
        port = int(daemon.expect(r"HTTPS intake on http://127\.0\.0\.1:(\d+)/").group(1))
        metrics_port = int(daemon.expect(r"metrics on http://127\.0\.0\.1:(\d+)/").group(1))
        locker = engine_for(url).connect()
        locker.execute(text("LOCK TABLE ledbelly_messages IN ACCESS EXCLUSIVE MODE"))
        answers: dict[int, int] = {}

        def post(n: int) -> None:
            body = json.dumps(canvas_event(asset_name=f"in flight {n}"))
            answers[n] = httpx.post(
                f"http://127.0.0.1:{port}/live-events", content=body, timeout=30
            ).status_code

        posts = [threading.Thread(target=post, args=(n,)) for n in range(3)]
        for t in posts:
            t.start()
        until = time.monotonic() + 30
        while _metric(metrics_port, "ledbelly_backlog_messages") != 3:  # all held
            assert time.monotonic() < until, "the requests never reached the daemon"
            daemon.proc.poll()
        daemon.proc.send_signal(signal.SIGTERM)
        daemon.expect("received SIGTERM")
        until = time.monotonic() + 10
        while not _refuses(port):
            assert time.monotonic() < until, "still accepting connections after SIGTERM"
        if commits:
            locker.rollback()  # the database is free again: the batch in hand commits
        for t in posts:
            t.join(timeout=30)
        assert answers == dict.fromkeys(range(3), 200 if commits else 503)
        assert daemon.proc.wait(timeout=30) == 0
        locker.rollback()
        locker.close()
        rows = scalar_of(url, "SELECT COUNT(*) FROM live_asset_accessed")
        assert rows == (3 if commits else 0)
    finally:
        daemon.close()


def scalar_of(url: str, sql: str) -> Any:
    engine = engine_for(url)
    try:
        with engine.connect() as conn:
            return conn.execute(text(sql)).scalar()
    finally:
        engine.dispose()


def test_two_instances_behind_one_balancer_keep_rows_exactly_once(
    db_url: str, intake: Callable[..., Intake], keys: Keys
) -> None:
    """Canvas's retries may reach either instance; both write one database."""
    left, right = intake(db_url), intake(db_url)
    events = [canvas_event(asset_id=str(21070000000000200 + n)) for n in range(20)]
    tokens = [keys.sign(e) for e in events]
    with ThreadPoolExecutor(max_workers=8) as pool:  # every event to both, at once
        answers = list(
            pool.map(
                lambda pair: pair[0].post(pair[1]),
                [(side, t) for t in tokens for side in (left, right)],
            )
        )
    assert [a.status_code for a in answers] == [200] * 40
    assert left.scalar("SELECT COUNT(*) FROM live_asset_accessed") == 20
    assert left.scalar("SELECT COUNT(*) FROM ledbelly_messages") == 20
    assert left.scalar("SELECT COUNT(*) FROM ledbelly_dead_letters") == 0


def test_processes_sharing_one_port_split_the_deliveries_and_keep_rows_once(
    tmp_path: Path, jwks: JwksServer, keys: Keys
) -> None:
    """Two ``ledbelly run`` with one configuration (``reuse_port: true``) and a metrics
    port each: the kernel spreads new connections over both, each commits a share, and
    an event delivered twice (to either) is one row."""
    url = fresh_database_url("postgresql", tmp_path)
    port = free_port()
    config = tmp_path / "https.yml"
    config.write_text(
        f"https:\n  listen: 127.0.0.1:{port}\n  jwks_url: {jwks.url}\n  reuse_port: true\n"
        "max_batch_wait: 0.2\nlog_level: INFO\n"
    )
    metrics = [free_port(), free_port()]
    daemons = [
        Daemonized(config, url, tmp_path / f"log{i}", "--metrics-port", str(m))
        for i, m in enumerate(metrics)
    ]
    try:
        for d in daemons:
            d.expect(rf"HTTPS intake on http://127\.0\.0\.1:{port}/live-events")
        events = [canvas_event(asset_id=str(21070000000000300 + n)) for n in range(60)]
        tokens = [keys.sign(e) for e in events]
        post = f"http://127.0.0.1:{port}/live-events"
        with ThreadPoolExecutor(max_workers=8) as pool:  # a new connection per POST
            answers = list(pool.map(lambda t: httpx.post(post, content=t, timeout=20), tokens * 2))
        assert [a.status_code for a in answers] == [200] * 120
        answered = [_metric(m, "ledbelly_https_commit_seconds_count") for m in metrics]
        assert sum(answered) == 120 and min(answered) > 0, answered
        assert scalar_of(url, "SELECT COUNT(*) FROM live_asset_accessed") == 60
        assert scalar_of(url, "SELECT COUNT(*) FROM ledbelly_messages") == 60
    finally:
        for d in daemons:
            d.close()
