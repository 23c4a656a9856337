"""Turn the event mix into a stream: timing, format choice, builder dispatch, SQS envelope.

Dispatch goes through the explicit :data:`CANVAS_BUILDERS` and :data:`CALIPER_BUILDERS`
registries; every weighted event name is checked against them at import so the mix in
``data/event_mix.json`` and the builders cannot drift apart silently.
"""

from __future__ import annotations

import base64
import hashlib
import random
from bisect import bisect
from collections.abc import Iterator, Mapping
from typing import Any, NamedTuple

from ledbelly.simulate import tables as t
from ledbelly.simulate.caliper_events import CALIPER_BUILDERS
from ledbelly.simulate.canvas_events import CANVAS_BUILDERS
from ledbelly.simulate.state import Builder, Payload, Sim
from ledbelly.simulate.world import uuid4

try:
    import orjson

    def _dumps(obj: Any) -> bytes:
        """Serialise compactly to UTF-8; orjson is ~10x faster than json (benchmarks)."""
        return orjson.dumps(obj)

except ImportError:  # pragma: no cover - orjson is a hard dependency, keep a fallback anyway
    import json

    def _dumps(obj: Any) -> bytes:
        """Serialise compactly with the standard library when orjson is missing."""
        return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode()


__all__ = ["CALIPER_WEIGHTS", "EVENT_WEIGHTS", "generate_events", "generate_messages"]

EVENT_WEIGHTS: dict[str, float] = t.EVENT_WEIGHTS
CALIPER_WEIGHTS: dict[str, float] = t.CALIPER_WEIGHTS

_FORMATS = ("canvas", "caliper", "mixed")


class _Mix(NamedTuple):
    """One format's event names, cumulative probabilities and builders, index-aligned."""

    names: tuple[str, ...]
    cum: tuple[float, ...]
    build: tuple[Builder, ...]


def _mix(kind: str, weights: Mapping[str, float], registry: Mapping[str, Builder]) -> _Mix:
    """Prepare one ``bisect`` per event; a weighted name without a builder is a bug."""
    names = tuple(weights)
    missing = [n for n in names if n not in registry]
    if missing:
        raise LookupError(f"no {kind} builder for {', '.join(missing)}")
    total = sum(weights.values())
    acc = 0.0
    cum = []
    for name in names:
        acc += weights[name]
        cum.append(acc / total)
    cum[-1] = 1.0
    return _Mix(names, tuple(cum), tuple(registry[n] for n in names))


# Fail at import, not mid-stream, if data/event_mix.json names an event nobody builds.
_mix("canvas", EVENT_WEIGHTS, CANVAS_BUILDERS)
_mix("caliper", CALIPER_WEIGHTS, CALIPER_BUILDERS)


def _events(sim: Sim, fmt: str, n: int, cv: _Mix, cl: _Mix) -> Iterator[tuple[str, str, Payload]]:
    """The stream proper: advance the clock, pick format and event, build it."""
    rng = sim.rng
    iso = sim.clock.iso_ms
    share = t.MIXED_CANVAS_SHARE
    for _ in range(n):
        sim.now += 1 + int(rng.random() * 300)
        ms = sim.now
        if rng.random() < 0.02:  # late/out-of-order delivery, a few seconds back
            ms -= rng.randint(500, 5000)
        ts = iso(ms)
        caliper = fmt == "caliper" or (fmt == "mixed" and rng.random() >= share)
        if caliper:
            k = bisect(cl.cum, rng.random())
            name = cl.names[k]
            yield name, ts, cl.build[k](sim, name, ts)
        else:
            k = bisect(cv.cum, rng.random())
            name = cv.names[k]
            yield name, ts, cv.build[k](sim, name, ts)


def generate_events(
    n: int, seed: int = 0, fmt: str = "canvas"
) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """Yield ``(event_name, event_time, payload)`` for ``n`` synthetic Live Events.

    Streams (constant memory) so benchmarks can ask for millions. ``fmt`` is
    ``"canvas"`` (raw), ``"caliper"`` (IMS Caliper 1.1) or ``"mixed"`` (~70/30), matching
    the three ways a Canvas Data Services subscription can be configured.
    """
    if n < 0:
        raise ValueError("n must be >= 0")
    if fmt not in _FORMATS:
        raise ValueError(f"fmt must be one of {_FORMATS}, not {fmt!r}")
    # Read the weights per call, as callers may tune the public mix before generating.
    cv = _mix("canvas", EVENT_WEIGHTS, CANVAS_BUILDERS)
    cl = _mix("caliper", CALIPER_WEIGHTS, CALIPER_BUILDERS)
    return _events(Sim(seed), fmt, n, cv, cl)


def generate_messages(n: int, seed: int = 0, fmt: str = "canvas") -> Iterator[dict[str, Any]]:
    """Yield ``n`` SQS messages shaped like boto3 ``receive_message()["Messages"]`` items.

    Payloads equal ``generate_events(n, seed, fmt)``; the SQS envelope (MessageId,
    ReceiptHandle) comes from a separate seeded RNG so both views stay in step.
    """
    events = generate_events(n, seed, fmt)
    return _messages(events, random.Random(f"ledbelly-sqs:{seed}"))


def _messages(
    events: Iterator[tuple[str, str, Payload]], rng: random.Random
) -> Iterator[dict[str, Any]]:
    """Wrap each payload the way SQS delivers it (body as text, MD5, attributes)."""
    md5 = hashlib.md5
    b64 = base64.b64encode
    for name, ts, payload in events:
        raw = _dumps(payload)
        yield {
            "MessageId": uuid4(rng),
            "ReceiptHandle": "AQEB" + b64(rng.randbytes(132)).decode(),
            "MD5OfBody": md5(raw, usedforsecurity=False).hexdigest(),  # what SQS checks
            "Body": raw.decode(),
            "MessageAttributes": {
                "event_name": {"StringValue": name, "DataType": "String"},
                "event_time": {"StringValue": ts, "DataType": "String"},
            },
        }
