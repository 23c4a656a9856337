"""Flattening nested event payloads into one level of column-like keys.

Pure functions; the key rules are documented in ``schemas/README.md``.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any

_UNSAFE = re.compile(r"[^A-Za-z0-9_]")
_CALIPER_UNSAFE = re.compile(r"[^a-z0-9]+")
_CALIPER_DROPPED = frozenset(["extensions", "com.instructure.canvas"])


@lru_cache(maxsize=4096)
def canvas_key(key: str) -> str:
    """A Canvas body key as a column-safe name (characters outside [A-Za-z0-9_] become ``_``)."""
    return _UNSAFE.sub("_", key)


_JOINED: dict[str, dict[str, str]] = {}


def _joined_keys(store: dict[str, dict[str, str]], prefix: str) -> dict[str, str]:
    """The memo of flat keys under ``prefix``; bounded, as keys come from the payload."""
    joined = store.get(prefix)
    if joined is None or len(joined) > 4096:
        if len(store) > 4096:
            store.clear()
        joined = store[prefix] = {}
    return joined


def flatten_canvas(
    obj: dict[str, Any], prefix: str, out: dict[str, Any], keep: frozenset[str] = frozenset()
) -> None:
    """Flatten ``obj`` into ``out`` joining nested keys with ``_`` under ``prefix``.

    Lists stay lists (stored later as JSON text); a key named in ``keep`` is not
    descended into, so a ``json: true`` column gets the whole object.
    """
    joined = _joined_keys(_JOINED, prefix)
    for k, v in obj.items():
        key = joined.get(k)
        if key is None:
            key = joined[k] = prefix + canvas_key(k)
        if type(v) is dict and key not in keep:
            flatten_canvas(v, key + "_", out, keep)
        else:
            out[key] = v


@lru_cache(maxsize=4096)
def caliper_segment(key: str) -> str:
    """One Caliper key as LEDbelly named it: lowercase, ``_`` for punctuation, noise dropped."""
    if key in _CALIPER_DROPPED:
        return ""
    return _CALIPER_UNSAFE.sub("_", key.lower()).strip("_")


_CALIPER_JOINED: dict[str, dict[str, str]] = {}


def flatten_caliper(
    obj: dict[str, Any], prefix: str, out: dict[str, Any], keep: frozenset[str] = frozenset()
) -> None:
    """Flatten a Caliper event the way LEDbelly's tables name its fields.

    ``actor.extensions["com.instructure.canvas"].entity_id`` becomes ``actor_entity_id``;
    a list of scalars becomes a comma-joined string, a list of objects stays a list.
    """
    joined = _joined_keys(_CALIPER_JOINED, prefix)
    for k, v in obj.items():
        key = joined.get(k)
        if key is None:
            seg = caliper_segment(k)
            key = joined[k] = prefix + "_" + seg if prefix and seg else seg or prefix
        if type(v) is dict and key not in keep:
            flatten_caliper(v, key, out, keep)
        elif type(v) is list and key not in keep and all(not isinstance(x, dict | list) for x in v):
            out[key] = ",".join("" if x is None else _scalar_text(x) for x in v)
        else:
            out[key or "_"] = v


def _scalar_text(value: Any) -> str:
    if value is True:
        return "true"
    if value is False:
        return "false"
    return str(value)
