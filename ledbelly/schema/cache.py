"""A cache of parsed schema directories, so a start does not re-read 150 YAML files.

Parsing ``schemas/`` takes about 0.09 s, a tenth of a short ``ingest``; reading the
cached JSON back takes a few milliseconds. An entry is keyed by every file's path, size
and modification time and by the code that parses them, so an edited, added or removed
file, or a new ledbelly, is a miss. The cache is an optimisation only: a directory it
cannot write or an entry it cannot read means the files are parsed as before.

The cache directory is writable by its user, so an entry is data, never code: JSON,
handed to ``decode``, which checks it as strictly as the YAML (``table_from_dict``).
A planted or corrupt entry is a miss, not a command.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")

FORMAT = 3  # bump when what is cached changes shape


def cache_dir() -> Path:
    """``$LEDBELLY_CACHE_DIR``, else ``$XDG_CACHE_HOME/ledbelly``, else ``~/.cache/ledbelly``."""
    explicit = os.environ.get("LEDBELLY_CACHE_DIR")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "ledbelly"


def cached(
    paths: Sequence[Path],
    parse: Callable[[], T],
    code: Sequence[Path],
    encode: Callable[[T], Any],
    decode: Callable[[Any], T],
) -> T:
    """``parse()``, or what it returned before for exactly these files and this code.

    ``encode`` turns the value into JSON-able data and ``decode`` back, validating it.
    ``paths`` and ``code`` are absolute, so one entry serves every working directory.
    """
    try:
        entry = cache_dir() / f"schemas-{_fingerprint(paths, code)}.json"
    except OSError:
        return parse()
    try:
        return decode(json.loads(entry.read_bytes()))
    except Exception:  # no entry yet, a corrupt or planted one: parse, and replace it
        pass
    value = parse()
    _write(entry, encode(value))
    return value


def _fingerprint(paths: Sequence[Path], code: Sequence[Path]) -> str:
    digest = hashlib.sha256(f"ledbelly schemas {FORMAT}\n".encode())
    for path in [*code, *paths]:
        st = path.stat()
        digest.update(f"{path}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:32]


def _write(entry: Path, value: Any) -> None:
    try:
        entry.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=entry.parent, prefix=".schemas-")  # mode 0600
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(value, fh)
        os.replace(tmp, entry)  # whole or not at all, even with two processes at once
    except OSError:
        pass
