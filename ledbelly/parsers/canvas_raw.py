"""Canvas raw format: ``{"metadata": {...}, "body": {...}}``.

Flat keys are ``metadata.<key>`` and ``body.<key>`` with nested body objects joined by
``_``; a schema column finds its value by the rules in ``schema.default_source``.
"""

from __future__ import annotations

from typing import Any

from ledbelly.errors import MessageError
from ledbelly.parsers.flatten import Collision, flatten_canvas


def validate(payload: dict[str, Any]) -> None:
    meta = payload.get("metadata")
    if not isinstance(meta, dict):
        raise MessageError("Canvas raw event without a metadata object")
    body = payload.get("body")
    if body is not None and not isinstance(body, dict):
        raise MessageError(f"Canvas raw event whose body is a {type(body).__name__}, not an object")


def event_name(payload: dict[str, Any]) -> str | None:
    name = payload["metadata"].get("event_name")
    return name if isinstance(name, str) else None


def event_time(payload: dict[str, Any]) -> str | None:
    t = payload["metadata"].get("event_time")
    return t if isinstance(t, str) else None


def flatten(
    payload: dict[str, Any], keep: frozenset[str], collisions: list[Collision] | None = None
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    flatten_canvas(payload["metadata"], "metadata.", out, keep, collisions)
    body = payload.get("body")
    if body:
        flatten_canvas(body, "body.", out, keep, collisions)
    return out
