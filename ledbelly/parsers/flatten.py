"""Flattening nested event payloads into one level of column-like keys.

Pure functions; the key rules are documented in ``schemas/README.md``.

Two payload paths can flatten to one key (``a-b`` and ``a_b``; ``{"a": {"b": 1}}`` and
``a_b``; Caliper's ``Foo`` and ``foo``). The fast flatteners notice it when they are about
to store a key twice (one ``in`` test per value) and hand the object to a slow path that
keeps one value by a rule that does not depend on the order of the payload's keys, and
reports the collision.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import lru_cache
from typing import Any, NamedTuple

from ledbelly import kernels

_UNSAFE = re.compile(r"[^A-Za-z0-9_]")
_CALIPER_UNSAFE = re.compile(r"[^a-z0-9]+")
_CALIPER_DROPPED = frozenset(["extensions", "com.instructure.canvas"])


class Collision(NamedTuple):
    """Payload paths that flatten to one key: ``kept``'s value is stored, ``dropped``'s not.

    The winner is the path whose raw form (its keys joined as the flat key joins them,
    unsanitised) equals the flat key, else the smallest path, its keys compared in
    order. Paths are shown with their keys joined by ``.``.
    """

    key: str
    kept: str
    dropped: tuple[str, ...]


class _Collided(Exception):
    """The fast flattener met a key it had already stored: the slow path decides."""


# flat key -> [(raw path, value)], the slow paths' findings
_Leaves = dict[str, list[tuple[tuple[str, ...], Any]]]


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
    obj: dict[str, Any],
    prefix: str,
    out: dict[str, Any],
    keep: frozenset[str] = frozenset(),
    collisions: list[Collision] | None = None,
) -> None:
    """Flatten ``obj`` into ``out`` joining nested keys with ``_`` under ``prefix``.

    Lists stay lists (stored later as JSON text); a key named in ``keep`` is not
    descended into, so a ``json: true`` column gets the whole object. Colliding keys
    keep one value (see ``Collision``), and each collision is added to ``collisions``.
    """
    if not _collides(_FAST_CANVAS, _canvas_fast, obj, prefix, out, keep):
        return
    leaves: _Leaves = {}
    _canvas_slow(obj, prefix, (), keep, leaves)
    raw: Callable[[tuple[str, ...]], str] = lambda p: prefix + "_".join(p)  # noqa: E731
    _settle(leaves, raw, out)
    _report(leaves, raw, lambda p: prefix + ".".join(p), collisions)


def _collides(
    compiled: Callable[..., bool] | None,
    pure: Callable[..., None],
    obj: dict[str, Any],
    prefix: str,
    out: dict[str, Any],
    keep: frozenset[str],
) -> bool:
    """Run a fast flattener, the compiled one if it is built; True if two payload paths
    met at one key (the pure one raises ``_Collided``; the compiled one answers)."""
    if compiled is not None:
        return bool(compiled(obj, prefix, out, keep))
    try:
        pure(obj, prefix, out, keep)
    except _Collided:
        return True
    return False


def _canvas_fast(
    obj: dict[str, Any], prefix: str, out: dict[str, Any], keep: frozenset[str]
) -> None:
    joined = _joined_keys(_JOINED, prefix)
    for k, v in obj.items():
        key = joined.get(k)
        if key is None:
            key = joined[k] = prefix + canvas_key(k)
        if type(v) is dict and key not in keep:
            _canvas_fast(v, key + "_", out, keep)
        elif key in out:
            raise _Collided
        else:
            out[key] = v


def _canvas_slow(
    obj: dict[str, Any], prefix: str, path: tuple[str, ...], keep: frozenset[str], leaves: _Leaves
) -> None:
    """Every value with its flat key and its raw path."""
    for k, v in obj.items():
        key = prefix + canvas_key(k)
        if type(v) is dict and key not in keep:
            _canvas_slow(v, key + "_", (*path, k), keep, leaves)
        else:
            leaves.setdefault(key, []).append(((*path, k), v))


def _ranked(
    key: str, found: list[tuple[tuple[str, ...], Any]], raw: Callable[[tuple[str, ...]], str]
) -> list[tuple[tuple[str, ...], Any]]:
    """``found`` best first: the path whose raw form is the key, then by path."""
    return sorted(found, key=lambda item: (raw(item[0]) != key, item[0]))


def _settle(leaves: _Leaves, raw: Callable[[tuple[str, ...]], str], out: dict[str, Any]) -> None:
    """One value per flat key into ``out``."""
    for key, found in leaves.items():
        out[key] = found[0][1] if len(found) == 1 else _ranked(key, found, raw)[0][1]


def _report(
    leaves: _Leaves,
    raw: Callable[[tuple[str, ...]], str],
    shown: Callable[[tuple[str, ...]], str],
    collisions: list[Collision] | None,
) -> None:
    if collisions is None:
        return
    for key, found in leaves.items():
        if len(found) > 1:
            ranked = _ranked(key, found, raw)
            dropped = tuple(shown(p) for p, _ in ranked[1:])
            collisions.append(Collision(key, shown(ranked[0][0]), dropped))


@lru_cache(maxsize=4096)
def caliper_segment(key: str) -> str:
    """One Caliper key as LEDbelly named it: lowercase, ``_`` for punctuation, noise dropped."""
    if key in _CALIPER_DROPPED:
        return ""
    return _CALIPER_UNSAFE.sub("_", key.lower()).strip("_")


_CALIPER_JOINED: dict[str, dict[str, str]] = {}


def flatten_caliper(
    obj: dict[str, Any],
    prefix: str,
    out: dict[str, Any],
    keep: frozenset[str] = frozenset(),
    collisions: list[Collision] | None = None,
) -> None:
    """Flatten a Caliper event the way LEDbelly's tables name its fields.

    ``actor.extensions["com.instructure.canvas"].entity_id`` becomes ``actor_entity_id``;
    a list of scalars becomes a comma-joined string, a list of objects stays a list.
    Colliding keys keep one value (see ``Collision``), each collision added to
    ``collisions``.
    """
    if not _collides(_FAST_CALIPER, _caliper_fast, obj, prefix, out, keep):
        return
    leaves: _Leaves = {}
    _caliper_slow(obj, prefix, (), keep, leaves)
    head = prefix + "." if prefix else ""
    raw: Callable[[tuple[str, ...]], str] = lambda p: _caliper_raw(prefix, p)  # noqa: E731
    _settle(leaves, raw, out)
    _report(leaves, raw, lambda p: head + ".".join(p), collisions)


def _caliper_raw(prefix: str, path: tuple[str, ...]) -> str:
    return "_".join((prefix, *path) if prefix else path)


def _caliper_fast(
    obj: dict[str, Any], prefix: str, out: dict[str, Any], keep: frozenset[str]
) -> None:
    joined = _joined_keys(_CALIPER_JOINED, prefix)
    for k, v in obj.items():
        key = joined.get(k)
        if key is None:
            seg = caliper_segment(k)
            key = joined[k] = prefix + "_" + seg if prefix and seg else seg or prefix
        if type(v) is dict and key not in keep:
            _caliper_fast(v, key, out, keep)
            continue
        if type(v) is list and key not in keep and all(not isinstance(x, dict | list) for x in v):
            v = ",".join("" if x is None else _scalar_text(x) for x in v)
        slot = key or "_"
        if slot in out:
            raise _Collided
        out[slot] = v


def _caliper_slow(
    obj: dict[str, Any], prefix: str, path: tuple[str, ...], keep: frozenset[str], leaves: _Leaves
) -> None:
    for k, v in obj.items():
        seg = caliper_segment(k)
        key = prefix + "_" + seg if prefix and seg else seg or prefix
        if type(v) is dict and key not in keep:
            _caliper_slow(v, key, (*path, k), keep, leaves)
        else:
            leaves.setdefault(key or "_", []).append(((*path, k), _caliper_value(v, key, keep)))


def _caliper_value(v: Any, key: str, keep: frozenset[str]) -> Any:
    """A list of scalars as comma-joined text; anything else as it is."""
    if type(v) is list and key not in keep and all(not isinstance(x, dict | list) for x in v):
        return ",".join("" if x is None else _scalar_text(x) for x in v)
    return v


def _scalar_text(value: Any) -> str:
    if value is True:
        return "true"
    if value is False:
        return "false"
    return str(value)


def compiled_flattener(kernel: Any) -> Any:
    """The compiled kernel's flatteners, sharing this module's memo of joined keys."""
    return kernel.Flattener(
        _JOINED, _CALIPER_JOINED, canvas_key, caliper_segment, _joined_keys, _scalar_text
    )


_KERNEL = kernels.load("flatten")
_FAST = None if _KERNEL is None else compiled_flattener(_KERNEL)
_FAST_CANVAS: Callable[..., bool] | None = None if _FAST is None else _FAST.canvas
_FAST_CALIPER: Callable[..., bool] | None = None if _FAST is None else _FAST.caliper
