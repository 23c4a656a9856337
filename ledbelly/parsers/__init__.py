"""Per-format parsers: decode a message body, tell its format, name and flatten its event."""

from __future__ import annotations

import json
from typing import Any, NamedTuple

import orjson

from ledbelly.errors import MessageError
from ledbelly.parsers import caliper, canvas_raw
from ledbelly.parsers.flatten import Collision

CANVAS = "canvas"
CALIPER = "caliper"


class Envelope(NamedTuple):
    """A decoded event: its format, event name and raw event time, not yet flattened."""

    format: str
    event_name: str
    event_time: str | None
    payload: dict[str, Any]


def decode(body: str) -> Any:
    """Decode JSON, fast; the stdlib takes what orjson refuses (lone surrogates, huge ints)."""
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        pass
    try:
        return json.loads(body)
    except (ValueError, RecursionError) as exc:
        raise MessageError(f"invalid JSON: {exc}") from None


def detect_format(payload: Any) -> str:
    if not isinstance(payload, dict):
        raise MessageError(f"the event is a JSON {type(payload).__name__}, not an object")
    if "data" in payload and ("dataVersion" in payload or "sensor" in payload):
        return CALIPER
    if "metadata" in payload or "body" in payload:
        return CANVAS
    raise MessageError("neither a Canvas raw event (metadata, body) nor a Caliper envelope (data)")


def open_envelope(payload: Any, attributes: dict[str, str]) -> Envelope:
    """Tell the format and the event name; raise ``MessageError`` for what is not an event."""
    fmt = detect_format(payload)
    module = canvas_raw if fmt == CANVAS else caliper
    module.validate(payload)
    name = attributes.get("event_name") or module.event_name(payload)
    if not name:
        raise MessageError("no event_name attribute and none in the event")
    time = module.event_time(payload) or attributes.get("event_time")
    return Envelope(fmt, str(name), time, payload)


def each_event(envelope: Envelope) -> list[Envelope]:
    """One envelope per event: a Caliper envelope may hold several in ``data``.

    The SQS attribute names one event; each of several is named by its own content.
    """
    if envelope.format != CALIPER or len(envelope.payload["data"]) == 1:
        return [envelope]
    out = []
    for single in caliper.single_events(envelope.payload):
        name = caliper.event_name(single) or envelope.event_name
        out.append(
            Envelope(CALIPER, name, caliper.event_time(single) or envelope.event_time, single)
        )
    return out


def flatten(
    envelope: Envelope, keep: frozenset[str], collisions: list[Collision] | None = None
) -> dict[str, Any]:
    """The event's flat keys; keys that collided are added to ``collisions``."""
    if envelope.format == CANVAS:
        return canvas_raw.flatten(envelope.payload, keep, collisions)
    return caliper.flatten(envelope.payload, keep, collisions)
