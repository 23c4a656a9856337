"""Canvas's HTTPS delivery behind the ``Source`` interface: one POST per event.

Canvas Data Services can POST each Live Event to an HTTPS endpoint instead of sending it
to SQS; with "Sign Payload" the body is an RS256 JWT whose claims hold the event. It
retries a delivery that does not get a 2xx within 15 seconds. So a POST is answered 2xx
only once its event has committed, in the daemon's ordinary batches: the handler puts
the event on a queue that the daemon's poller drains with ``receive``, and waits until
the writer calls ``ack`` (200) or ``release`` (503), or until ``response_timeout`` (503).
A retried POST carries the same event and so the same ledger key (``event_message_id``):
the ledger skips it and it is answered 200 again.

The HTTP server (uvicorn running a plain ASGI app: starlette's Request, Response,
middleware and router cost more per event than the signature check) lives in its own
thread and event loop; ``close`` stops it and joins that thread. Nothing a client sends
is stored unless it is a verified event (signed) or a well-formed event (signatures off).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import ipaddress
import itertools
import logging
import socket
import threading
import time
from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
import uvicorn
from prometheus_client import make_asgi_app

from ledbelly import parsers
from ledbelly.config import HttpsSettings
from ledbelly.errors import ConfigError, MessageError
from ledbelly.message import Message
from ledbelly.ops.metrics import Health, Metrics, health_text
from ledbelly.sources.https_events import (
    canonical_json,
    check_event,
    event_from_claims,
    event_message_id,
    known_event_name,
    looks_like_jwt,
)
from ledbelly.sources.jwt_verify import (
    JwksCache,
    JwtVerifier,
    KeyNotCached,
    KeysUnavailable,
    VerificationError,
)

log = logging.getLogger("ledbelly.https")

LOG_EVERY = 60.0  # a refusal reason is logged at most once a minute, with a count
START_TIMEOUT = 10.0

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


class _Refusal(Exception):
    """An answer other than 2xx, decided before the event reaches the queue."""

    def __init__(self, status: int, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.status, self.reason, self.detail = status, reason, detail


@dataclass
class _Pending:
    """A request waiting for its message to commit."""

    message: Message
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[int]
    handed_out: bool = False
    status: int | None = None  # the answer, once decided (set under the lock)


class _RateLimitedLog:
    """One warning per reason per ``LOG_EVERY`` seconds, saying how many were not logged."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last: dict[str, float] = {}
        self._quiet: dict[str, int] = {}

    def warning(self, reason: str, text: str) -> None:
        now = time.monotonic()
        with self._lock:
            if now - self._last.get(reason, float("-inf")) < LOG_EVERY:
                self._quiet[reason] = self._quiet.get(reason, 0) + 1
                return
            self._last[reason] = now
            quiet = self._quiet.pop(reason, 0)
        suffix = f" ({quiet} more like it not logged)" if quiet else ""
        log.warning("%s%s", text, suffix)


class HttpsSource:
    """An HTTP(S) intake that hands verified events to the daemon and answers on commit."""

    def __init__(
        self,
        settings: HttpsSettings,
        metrics: Metrics | None = None,
        verifier: JwtVerifier | None = None,
        name: str = "https",
        *,
        serve_metrics: bool = False,
        health: Health | None = None,
    ) -> None:
        """``serve_metrics``: also answer ``GET /metrics`` and ``GET /healthz`` (from
        ``health``) on this port, behind the same ``allow_from``."""
        self.name = name
        self.settings = settings
        self.metrics = metrics or Metrics()
        if verifier is None:
            verifier = JwtVerifier(
                JwksCache(
                    settings.jwks_url,
                    timeout=settings.jwks_timeout,
                    refresh_interval=settings.jwks_refresh_interval,
                    max_age=settings.jwks_max_age,
                    on_fetch=self.metrics.record_jwks_fetch,
                ),
                issuer=settings.issuer,
                leeway=settings.leeway,
            )
        self.verifier = verifier
        self._cond = threading.Condition()
        self._queue: collections.deque[str] = collections.deque()
        self._pending: dict[str, _Pending] = {}
        self._tokens = itertools.count(1)
        self._wake_due = False  # a wake-up of the poller is scheduled on the loop
        self._closing = False
        self._refusals = _RateLimitedLog()
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._socket: socket.socket | None = None
        self._failure: BaseException | None = None
        self.port = settings.port
        self.health: Health = health or (lambda: (not self._closing, "stopping"))
        self._serve_metrics = serve_metrics
        self._metrics_app = make_asgi_app(self.metrics.registry)

    # ----- life cycle ---------------------------------------------------------------------

    def start(self) -> None:
        """Bind and serve; a bad address or certificate raises ``ConfigError`` here."""
        s = self.settings
        family = socket.AF_INET6 if ":" in s.host else socket.AF_INET
        # IPPROTO_TCP by name: asyncio turns Nagle off (TCP_NODELAY) only on sockets whose
        # proto says TCP, and proto 0 is inherited by every accepted connection. With
        # Nagle on, a keep-alive client's delayed ACK held each answer's body ~40 ms.
        sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if s.reuse_port:  # the kernel spreads new connections over every process bound
            if not hasattr(socket, "SO_REUSEPORT"):
                sock.close()
                raise ConfigError("https.reuse_port: this system has no SO_REUSEPORT")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        try:
            sock.bind((s.host, s.port))
        except OSError as exc:
            sock.close()
            raise ConfigError(
                f"https.listen {s.listen}: cannot listen there: {exc.strerror or exc}"
            ) from None
        self._socket = sock
        self.port = int(sock.getsockname()[1])
        config = uvicorn.Config(
            self._asgi,
            interface="asgi3",
            log_config=None,
            access_log=False,
            lifespan="off",
            proxy_headers=False,
            server_header=False,
            date_header=True,
            ssl_certfile=str(s.tls_cert) if s.tls_cert else None,
            ssl_keyfile=str(s.tls_key) if s.tls_key else None,
            limit_concurrency=s.max_pending + 50,
            timeout_graceful_shutdown=int(s.response_timeout) + 2,
        )
        uvicorn_log = logging.getLogger("uvicorn.error")
        if uvicorn_log.level == logging.NOTSET:  # its start/stop lines repeat ours
            uvicorn_log.setLevel(logging.WARNING)
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._serve, name="ledbelly-https", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + START_TIMEOUT
        while not self._server.started and self._thread.is_alive():
            if time.monotonic() > deadline:
                raise ConfigError(f"the HTTPS intake did not start within {START_TIMEOUT} s")
            self._thread.join(0.01)
        if not self._server.started:
            raise ConfigError(f"the HTTPS intake could not start: {self._failure}")
        address = f"[{s.host}]:{self.port}" if ":" in s.host else f"{s.host}:{self.port}"
        log.info(
            "HTTPS intake on %s://%s%s (signatures %s)",
            "https" if s.tls else "http",
            address,
            s.path,
            "required" if s.require_signature else "NOT required",
        )
        if not s.require_signature and not s.allow_from:
            log.warning(
                "https.require_signature is false and https.allow_from is empty: "
                "anyone who can reach %s can store events; set allow_from",
                address,
            )

    def _serve(self) -> None:
        assert self._server is not None and self._socket is not None
        try:
            with asyncio.Runner(loop_factory=event_loop_factory()) as runner:
                runner.run(self._server.serve(sockets=[self._socket]))
        except BaseException as exc:  # an unreadable certificate, say: start() reports it
            self._failure = exc
            log.debug("HTTPS server thread ended: %r", exc)
        finally:
            self._socket.close()

    def stop_accepting(self) -> None:
        """Close the listening socket; requests in flight still get their answers."""
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        if self._server is not None:
            self._server.should_exit = True

    def close(self) -> None:
        """Answer whatever is still waiting with 503, stop the server, join its thread."""
        self.stop_accepting()
        with self._cond:
            left = list(self._pending.values())
            self._pending.clear()
            self._queue.clear()
            for p in left:
                p.status = 503
        for p in left:
            _settle(p, 503)
        if self._thread is not None:
            self._thread.join(timeout=self.settings.response_timeout + 5)
            if self._thread.is_alive():
                log.warning("the HTTPS server thread did not stop in time")

    # ----- the Source interface -----------------------------------------------------------

    def receive(self, max_messages: int, wait_seconds: float) -> list[Message]:
        """Queued events, waiting at most ``wait_seconds`` for the first."""
        out: list[Message] = []
        with self._cond:
            if not self._queue:
                self._cond.wait(timeout=wait_seconds)
            while self._queue and len(out) < max_messages:
                pending = self._pending.get(self._queue.popleft())
                if pending is not None:  # None: its request already timed out
                    pending.handed_out = True
                    out.append(pending.message)
        return out

    def ack(self, messages: Sequence[Message]) -> list[Message]:
        """Committed (rows, unknown event, dead letter or duplicate): answer 200."""
        self._answer(messages, 200)
        return []

    def release(self, messages: Sequence[Message], delay: int = 0) -> None:
        """Not committed: answer 503 so Canvas delivers it again, on its own schedule
        (three retries over 10 to 20 minutes), whatever ``delay`` asks."""
        self._answer(messages, 503)

    def extend(self, messages: Sequence[Message], seconds: int) -> None:
        """Nothing to extend: a request waits for its answer, bounded by response_timeout."""

    def _answer(self, messages: Sequence[Message], status: int) -> None:
        with self._cond:
            done = [p for m in messages if (p := self._pending.pop(str(m.handle), None))]
            for p in done:
                p.status = status
        by_loop: dict[asyncio.AbstractEventLoop, list[_Pending]] = {}
        for p in done:
            by_loop.setdefault(p.loop, []).append(p)
        for loop, pendings in by_loop.items():  # one wake-up of the loop per batch
            _settle_all(loop, pendings, status)

    @property
    def waiting(self) -> int:
        """Requests waiting for their commit."""
        with self._cond:
            return len(self._pending)

    # ----- HTTP ---------------------------------------------------------------------------

    async def _asgi(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The allow_from check, then the route: POST on ``path``; ``/metrics`` and
        ``/healthz`` when asked; 405 for another method on a known path; else 404."""
        if scope["type"] != "http":
            return
        if self.settings.allow_from:
            client = scope.get("client")
            if not client or not _allowed(str(client[0]), self.settings):
                self._refused(
                    _Refusal(403, "not_allowed", "the client is not in https.allow_from"), client
                )
                self.metrics.record_https_request(403)
                await _respond(send, 403, b"forbidden\n", _TEXT)
                return
        path, method = scope["path"], scope["method"]
        if path == self.settings.path:
            if method == "POST":
                await self._post(scope, receive, send)
            else:
                await _respond(send, 405, b"Method Not Allowed", _TEXT, [(b"allow", b"POST")])
        elif self._serve_metrics and path == "/metrics":
            await self._metrics_app(scope, receive, send)
        elif self._serve_metrics and path == "/healthz":
            if method in ("GET", "HEAD"):
                status, text = health_text(self.health)
                await _respond(send, status, text.encode(), _TEXT)
            else:
                await _respond(send, 405, b"Method Not Allowed", _TEXT, [(b"allow", b"GET, HEAD")])
        else:
            await _respond(send, 404, b"Not Found", _TEXT)

    async def _post(self, scope: Scope, receive: Receive, send: Send) -> None:
        arrived = time.monotonic()
        try:
            body = await self._read(scope, receive, arrived + self.settings.response_timeout)
            message = await self._message(body)
            status = await self._commit(message, arrived)
        except _Gone:  # the client hung up before its body arrived: nobody to answer
            return
        except _Refusal as refusal:
            if refusal.status in (401, 403):
                self._refused(refusal, scope.get("client"))
            self.metrics.record_https_request(refusal.status)
            close = [(b"connection", b"close")] if refusal.status in (408, 413) else []
            await _respond(send, refusal.status, _json({"error": refusal.detail}), _JSON, close)
            return
        if status == 200:
            self.metrics.record_https_request(200, time.monotonic() - arrived)
            answer = b'{"status":"stored","id":' + orjson.dumps(message.message_id) + b"}"
            await _respond(send, 200, answer, _JSON)
            return
        self.metrics.record_https_request(status)
        await _respond(send, status, _RETRY_BODY, _JSON, [(b"retry-after", b"5")])

    async def _read(self, scope: Scope, receive: Receive, deadline: float) -> bytes:
        """The body, refusing one over max_body_bytes as soon as that is known."""
        limit = self.settings.max_body_bytes
        length = _header(scope, b"content-length")
        if length is not None and (not length.isdigit() or int(length) > limit):
            raise _Refusal(413, "too_large", f"the body is over {limit} bytes")
        chunks: list[bytes] = []
        size = 0
        try:
            async with asyncio.timeout(max(0.0, deadline - time.monotonic())):
                while True:
                    event = await receive()
                    if event["type"] != "http.request":  # http.disconnect
                        raise _Gone
                    chunk = event.get("body", b"")
                    size += len(chunk)
                    if size > limit:
                        raise _Refusal(413, "too_large", f"the body is over {limit} bytes")
                    chunks.append(chunk)
                    if not event.get("more_body", False):
                        break
        except TimeoutError:
            raise _Refusal(408, "slow_body", "the body did not arrive in time") from None
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)

    async def _message(self, body: bytes) -> Message:
        """The message to store; a refusal for what must not be stored."""
        if self._closing:
            raise _Refusal(503, "stopping", "shutting down; deliver it again")
        text = body.strip()
        if looks_like_jwt(text):
            try:
                try:  # on the loop: ~60 µs, less than a hop to a worker thread and back
                    claims = self.verifier.verify(text, may_fetch=False)
                except KeyNotCached:  # a JWKS fetch may take seconds: not on the loop
                    claims = await asyncio.to_thread(self.verifier.verify, text)
            except VerificationError as exc:
                raise _Refusal(401, exc.reason, exc.detail) from None
            except KeysUnavailable as exc:
                log.warning("cannot verify signatures: %s", exc)
                raise _Refusal(
                    503, "jwks_unavailable", "the signing keys are unavailable; deliver it again"
                ) from None
            payload = event_from_claims(claims)
            canonical = canonical_json(payload)
            return self._new_message(payload, canonical.decode("utf-8"), canonical)
        if self.settings.require_signature:
            raise _Refusal(401, "unsigned", "a signed JWT is required (turn on Sign Payload)")
        try:
            decoded = text.decode("utf-8")
            payload = parsers.decode(decoded)
            check_event(payload)
        except (UnicodeDecodeError, MessageError) as exc:
            raise _Refusal(400, "not_an_event", f"not a Live Event: {exc}") from None
        return self._new_message(payload, decoded)

    def _new_message(self, payload: Any, body: str, canonical: bytes | None = None) -> Message:
        attributes: dict[str, str] = {}
        name = known_event_name(payload) if isinstance(payload, dict) else None
        if name:
            attributes["event_name"] = name
        return Message(
            event_message_id(payload, canonical),
            body,
            attributes,
            payload=payload if isinstance(payload, dict) else None,
            handle=f"h{next(self._tokens)}",
            queue=self.name,
        )

    async def _commit(self, message: Message, arrived: float) -> int:
        """Queue the message and wait for its commit: 200, or 503 when it did not happen.

        The poller is woken once per loop iteration, not once per request: the requests
        that arrived together go to the writer together, and the poller does not take
        the GIL from the loop while it is still reading them. The deadline is a timer on
        the loop (cheaper than ``wait_for`` and ``shield``), which answers 503 only if
        the writer has not decided the answer first."""
        loop = asyncio.get_running_loop()
        pending = _Pending(message, loop, loop.create_future())
        handle = str(message.handle)
        with self._cond:
            if self._closing:
                raise _Refusal(503, "stopping", "shutting down; deliver it again")
            if len(self._pending) >= self.settings.max_pending:
                raise _Refusal(503, "busy", "too many deliveries waiting; deliver it again")
            self._pending[handle] = pending
            self._queue.append(handle)
            wake, self._wake_due = not self._wake_due, True
        if wake:
            loop.call_soon(self._wake_poller)
        left = arrived + self.settings.response_timeout - time.monotonic()
        timer = loop.call_later(max(0.0, left), self._expire, pending, handle)
        try:
            return await pending.future
        finally:
            timer.cancel()

    def _wake_poller(self) -> None:
        with self._cond:
            self._wake_due = False
            self._cond.notify()

    def _expire(self, pending: _Pending, handle: str) -> None:
        """``response_timeout`` has passed: 503, unless the writer answered already (its
        answer is then on its way to the loop)."""
        with self._cond:
            if pending.status is not None:
                return
            self._pending.pop(handle, None)
            pending.status = 503
            if not pending.handed_out:
                self._queue.remove(handle)
        if not pending.future.done():
            pending.future.set_result(503)

    def _refused(self, refusal: _Refusal, client: Any) -> None:
        """Count and (rate-limited) log a refusal; the body is never logged."""
        self.metrics.record_https_rejection(refusal.reason)
        peer = client[0] if client else "?"
        self._refusals.warning(
            refusal.reason, f"refused a delivery from {peer} ({refusal.status}): {refusal.detail}"
        )


def event_loop_factory() -> Callable[[], asyncio.AbstractEventLoop]:
    """uvloop's event loop when it is installed (the ``https`` extra brings it), else
    asyncio's: uvloop's transports and loop cost less CPU per request."""
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop
    factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    return factory


def _settle_all(loop: asyncio.AbstractEventLoop, pendings: list[_Pending], status: int) -> None:
    def set_results() -> None:
        for p in pendings:
            if not p.future.done():
                p.future.set_result(status)

    with contextlib.suppress(RuntimeError):  # a closed loop: the requests are gone already
        loop.call_soon_threadsafe(set_results)


def _settle(pending: _Pending, status: int) -> None:
    def set_result() -> None:
        if not pending.future.done():
            pending.future.set_result(status)

    with contextlib.suppress(RuntimeError):  # a closed loop: the request is gone already
        pending.loop.call_soon_threadsafe(set_result)


def _allowed(host: str, settings: HttpsSettings) -> bool:
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return any(address in network for network in settings.allow_from)


class _Gone(Exception):
    """The client disconnected before its request was read."""


_JSON = b"application/json"
_TEXT = b"text/plain; charset=utf-8"
_RETRY_BODY = b'{"error":"not stored yet; deliver it again"}'


def _json(value: Any) -> bytes:
    return orjson.dumps(value)


def _header(scope: Scope, name: bytes) -> str | None:
    """A request header's value (names come lower-cased from the server)."""
    for key, value in scope["headers"]:
        if key == name:
            return str(value.decode("latin-1"))
    return None


async def _respond(
    send: Send,
    status: int,
    body: bytes,
    content_type: bytes,
    headers: Sequence[tuple[bytes, bytes]] = (),
) -> None:
    """One whole answer: two ASGI messages, no Response object."""
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", content_type),
                (b"content-length", str(len(body)).encode()),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
