"""IMS Caliper 1.1 format: ``{"sensor", "sendTime", "dataVersion", "data": [event]}``.

Only ``data[0]`` is stored; the envelope fields say nothing about the event. The event
name comes from the SQS attribute ``event_name``, as Canvas does not put it in the event.
"""

from __future__ import annotations

from typing import Any

from ledbelly.errors import MessageError
from ledbelly.parsers.flatten import flatten_caliper


def validate(payload: dict[str, Any]) -> None:
    data = payload.get("data")
    if not isinstance(data, list) or not data or not isinstance(data[0], dict):
        raise MessageError("Caliper envelope whose data is not a list holding an event object")


def event_name(payload: dict[str, Any]) -> str | None:
    """Without the SQS attribute the Canvas name is unknown: name it by Caliper type/action."""
    event = payload["data"][0]
    kind, action = event.get("type"), event.get("action")
    if isinstance(kind, str) and isinstance(action, str):
        return f"caliper:{kind}.{action}"
    return None


def event_time(payload: dict[str, Any]) -> str | None:
    t = payload["data"][0].get("eventTime")
    return t if isinstance(t, str) else None


def flatten(payload: dict[str, Any], keep: frozenset[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    flatten_caliper(payload["data"][0], "", out, keep)
    return out
