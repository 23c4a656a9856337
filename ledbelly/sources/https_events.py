"""What an HTTPS delivery carries: the event in a JWT's claims, its ledger key, its name.

Pure functions, apart from the intake's server (``https.py``): which body is a JWT,
which part of the claims is the event, and the key that makes a retried delivery insert
nothing (the same event gives the same canonical JSON, so the same hash).
"""

from __future__ import annotations

import json
import re
from typing import Any

import orjson

from ledbelly import parsers
from ledbelly.errors import MessageError
from ledbelly.message import message_id_for
from ledbelly.parsers import caliper_routes

# Registered JWT claims (RFC 7519): the envelope of the signature, not part of the event.
JWT_CLAIMS = frozenset({"iss", "sub", "aud", "exp", "nbf", "iat", "jti"})


def canonical_json(value: Any) -> bytes:
    """Sorted keys and no spaces, so the same event always gives the same bytes."""
    try:
        return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)
    except TypeError:  # an integer beyond 64 bits
        return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode(
            "utf-8", "surrogatepass"
        )


def event_message_id(payload: Any, canonical: bytes | None = None) -> str:
    """The ledger key of an event delivered over HTTPS, the same on every retry.

    A Caliper event's own ``id`` (a ``urn:uuid:``); otherwise (Canvas raw, or anything
    not an event) the SHA-256 of the canonical JSON of the payload (``canonical``, when
    the caller has it already).
    """
    ident = None
    if isinstance(payload, dict):
        data = payload.get("data")
        if isinstance(data, list) and data and isinstance(data[0], dict):
            ident = data[0].get("id")
    return message_id_for(ident, canonical_json(payload) if canonical is None else canonical)


def known_event_name(payload: dict[str, Any]) -> str | None:
    """The event's name when the event itself says it (Canvas raw) or routing finds it."""
    try:
        if parsers.detect_format(payload) == parsers.CANVAS:
            name = payload.get("metadata", {}).get("event_name")
            return name if isinstance(name, str) and name else None
        data = payload.get("data")
        if isinstance(data, list) and data and isinstance(data[0], dict):
            return caliper_routes.event_name(data[0])
    except (MessageError, AttributeError):
        pass
    return None


def check_event(payload: Any) -> None:
    """Raise ``MessageError`` unless ``payload`` is a Canvas raw event or Caliper envelope."""
    fmt = parsers.detect_format(payload)
    (parsers.canvas_raw if fmt == parsers.CANVAS else parsers.caliper).validate(payload)


def event_from_claims(claims: dict[str, Any]) -> Any:
    """The event the JWT carries: the claims less the registered ones, or a lone wrapped
    event. Canvas documents only "the live event data in the claims"; both are accepted.
    What is neither is returned as it is and becomes a dead letter."""
    rest = {k: v for k, v in claims.items() if k not in JWT_CLAIMS}
    for candidate in (rest, *rest.values()):
        try:
            check_event(candidate)
            return candidate
        except MessageError:
            continue
    return rest


def looks_like_jwt(body: bytes) -> bool:
    """Three dot-separated base64url segments, the last (the signature) maybe empty."""
    return _JWT.fullmatch(body) is not None


_JWT = re.compile(rb"[A-Za-z0-9_=-]+\.[A-Za-z0-9_=-]+\.[A-Za-z0-9_=-]*")
