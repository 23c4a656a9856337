"""A cache of parsed schema directories, so a start does not re-read 138 YAML files.

Parsing ``schemas/`` takes about 0.09 s, a tenth of a short ``ingest``; unpickling the
result takes about 0.005 s. An entry is keyed by every file's path, size and
modification time and by the code that parses them, so an edited, added or removed
file, or a new ledbelly, is a miss. The cache is an optimisation only: a directory it
cannot write or an entry it cannot read means the files are parsed as before.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

FORMAT = 2  # bump when what is cached changes shape


def cache_dir() -> Path:
    """``$LEDBELLY_CACHE_DIR``, else ``$XDG_CACHE_HOME/ledbelly``, else ``~/.cache/ledbelly``."""
    explicit = os.environ.get("LEDBELLY_CACHE_DIR")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "ledbelly"


def cached(paths: Sequence[Path], parse: Callable[[], Any], code: Sequence[Path]) -> Any:
    """``parse()``, or what it returned before for exactly these files and this code.

    ``paths`` and ``code`` are absolute, so one entry serves every working directory.
    """
    try:
        entry = cache_dir() / f"schemas-{_fingerprint(paths, code)}.pickle"
    except OSError:
        return parse()
    try:
        with entry.open("rb") as fh:
            return pickle.load(fh)
    except Exception:  # no entry yet, or one from a crash or another Python: parse
        pass
    value = parse()
    _write(entry, value)
    return value


def _fingerprint(paths: Sequence[Path], code: Sequence[Path]) -> str:
    digest = hashlib.sha256(f"ledbelly schemas {FORMAT}\n".encode())
    for path in [*code, *paths]:
        st = path.stat()
        digest.update(f"{path}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:32]


def _write(entry: Path, value: Any) -> None:
    try:
        entry.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=entry.parent, prefix=".schemas-")
        with os.fdopen(fd, "wb") as fh:
            pickle.dump(value, fh, protocol=pickle.HIGHEST_PROTOCOL)
        os.replace(tmp, entry)  # whole or not at all, even with two processes at once
    except OSError:
        pass
