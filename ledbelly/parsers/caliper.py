"""IMS Caliper 1.1 format: ``{"sensor", "sendTime", "dataVersion", "data": [event]}``.

Each event in ``data`` is stored as its own row; the envelope fields say nothing about
the events. An event's name comes from the SQS attribute ``event_name``, as Canvas does
not put it in the event; without it (HTTPS delivery, a bare event given to ``ingest``),
or for the events of an envelope that holds several, the event is routed by its content
(``caliper_routes``).
"""

from __future__ import annotations

from typing import Any

from ledbelly.errors import MessageError
from ledbelly.parsers import caliper_routes
from ledbelly.parsers.flatten import Collision, flatten_caliper


def validate(payload: dict[str, Any]) -> None:
    data = payload.get("data")
    if not isinstance(data, list) or not data or not all(isinstance(e, dict) for e in data):
        raise MessageError("Caliper envelope whose data is not a list of event objects")


def single_events(payload: dict[str, Any]) -> list[dict[str, Any]]:
    """The envelope once per event in ``data``: one envelope, one event, one row."""
    data = payload["data"]
    if len(data) == 1:
        return [payload]
    return [{**payload, "data": [event]} for event in data]


def event_name(payload: dict[str, Any]) -> str | None:
    """The Canvas event name routed from the content when there is no SQS attribute.

    What no rule routes (not Canvas's, or an event type newer than the rules) is named by
    its Caliper type and action, so it is stored as an unknown event rather than lost.
    """
    event = payload["data"][0]
    routed = caliper_routes.event_name(event)
    if routed:
        return routed
    kind, action = event.get("type"), event.get("action")
    if isinstance(kind, str) and isinstance(action, str):
        return f"caliper:{kind}.{action}"
    return None


def event_time(payload: dict[str, Any]) -> str | None:
    t = payload["data"][0].get("eventTime")
    return t if isinstance(t, str) else None


def flatten(
    payload: dict[str, Any], keep: frozenset[str], collisions: list[Collision] | None = None
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    flatten_caliper(payload["data"][0], "", out, keep, collisions)
    return out
