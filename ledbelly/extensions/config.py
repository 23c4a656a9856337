"""Which extensions are on, and their options, from the configuration.

Two forms are read, from ``cfg/sqs.yml`` or from LEDbelly's ``cfg/ledbelly.yml``:

.. code-block:: yaml

    extensions:                # ledbelly: a mapping of name to options
      geoip:
        database: /var/lib/GeoIP/GeoLite2-City.mmdb

    services:                  # LEDbelly: a list of names
      - maxmind

LEDbelly's service names map to ledbelly's extensions (``maxmind`` is ``geoip``). A name
given in both forms is one extension; the ``extensions`` options win.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from ledbelly.errors import ConfigError

# The top-level keys this module reads, for the configuration's list of known keys.
EXTENSION_KEYS: Final = frozenset(["extensions", "services"])
# LEDbelly's services and the extensions that do their work here.
ALIASES: Final[Mapping[str, str]] = {"maxmind": "geoip"}
LEDBELLY_YML: Final = Path("cfg/ledbelly.yml")
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]*$")


@dataclass(frozen=True)
class ExtensionSettings:
    """One enabled extension: its name and its options."""

    name: str
    options: Mapping[str, Any] = field(default_factory=dict)


def canonical_name(name: str) -> str:
    return ALIASES.get(name, name)


def _name(raw: Any, where: str) -> str:
    if not isinstance(raw, str) or not _NAME.match(raw):
        raise ConfigError(f"{where}: {raw!r} is not an extension name")
    return canonical_name(raw)


def _options(raw: Any, name: str) -> dict[str, Any] | None:
    """An extension's options; ``None`` when it is switched off (``false``)."""
    if raw is None or raw is True:
        return {}
    if raw is False:
        return None
    if not isinstance(raw, Mapping) or not all(isinstance(k, str) for k in raw):
        raise ConfigError(f"extensions.{name} must be a mapping of options, got {raw!r}")
    return dict(raw)


def extensions_from_dict(doc: Mapping[str, Any]) -> tuple[ExtensionSettings, ...]:
    """The extensions a configuration document enables, in the order it names them."""
    found: dict[str, dict[str, Any]] = {}
    off: set[str] = set()
    services = doc.get("services")
    if isinstance(services, str):
        services = [services]
    if services is not None:
        if not isinstance(services, list):
            raise ConfigError(f"services must be a list of names, got {services!r}")
        for item in services:
            found.setdefault(_name(item, "services"), {})
    raw = doc.get("extensions")
    if raw is None:
        pass
    elif isinstance(raw, Mapping):
        for key, value in raw.items():
            name = _name(key, "extensions")
            opts = _options(value, name)
            if opts is None:
                off.add(name)
            else:
                found.setdefault(name, {}).update(opts)
    elif isinstance(raw, list):
        for item in raw:
            if isinstance(item, Mapping) and len(item) == 1:
                ((key, value),) = item.items()
                name = _name(key, "extensions")
                opts = _options(value, name)
                if opts is None:
                    off.add(name)
                else:
                    found.setdefault(name, {}).update(opts)
            else:
                found.setdefault(_name(item, "extensions"), {})
    else:
        raise ConfigError(
            "extensions must map names to options "
            f"(e.g. {{geoip: {{database: PATH}}}}), got {raw!r}"
        )
    return tuple(ExtensionSettings(n, o) for n, o in found.items() if n not in off)


def merge_extension_settings(*groups: Iterable[ExtensionSettings]) -> tuple[ExtensionSettings, ...]:
    """Several sources into one list; a later source's options win for the same name."""
    merged: dict[str, dict[str, Any]] = {}
    for group in groups:
        for s in group:
            merged.setdefault(s.name, {}).update(s.options)
    return tuple(ExtensionSettings(n, o) for n, o in merged.items())


def load_extension_settings(path: Path) -> tuple[ExtensionSettings, ...]:
    """The extensions of a YAML file such as LEDbelly's ``cfg/ledbelly.yml``."""
    from ledbelly.config import read_yaml  # config reads this module's settings too

    doc = read_yaml(path)
    if doc is None:
        return ()
    if not isinstance(doc, Mapping):
        raise ConfigError(f"{path}: expected a mapping (services: [maxmind])")
    try:
        return extensions_from_dict(doc)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None


def configured_extensions(
    doc: Mapping[str, Any] | None, ledbelly_yml: Path | None = None
) -> tuple[ExtensionSettings, ...]:
    """LEDbelly's ``cfg/ledbelly.yml`` (when there) and then ``doc`` (``cfg/sqs.yml``)."""
    path = LEDBELLY_YML if ledbelly_yml is None else ledbelly_yml
    from_file = load_extension_settings(path) if path.is_file() else ()
    doc = doc or {}
    raw = doc.get("extensions")
    off = (
        {canonical_name(k) for k, v in raw.items() if v is False}
        if isinstance(raw, Mapping)
        else set()
    )
    merged = merge_extension_settings(from_file, extensions_from_dict(doc))
    return tuple(s for s in merged if s.name not in off)
