"""The parsed-schemas cache: a hit skips the YAML, any change to the files is a miss."""

from __future__ import annotations

import json
import os
import pickle
import shutil
from pathlib import Path
from typing import Any

import pytest

from conftest import SCHEMAS
from ledbelly.schema import cache as schema_cache
from ledbelly.schema import model as schema
from ledbelly.schema.model import Catalog


@pytest.fixture
def schemas(tmp_path: Path, monkeypatch: Any) -> Path:
    monkeypatch.setenv("LEDBELLY_CACHE_DIR", str(tmp_path / "cache"))
    copy = tmp_path / "schemas"
    shutil.copytree(SCHEMAS, copy)
    return copy


def _no_parsing(monkeypatch: Any) -> None:
    def refuse(path: Path) -> Any:
        raise AssertionError(f"parsed {path} although the cache had it")

    monkeypatch.setattr(schema, "load_table_file", refuse)


def test_a_second_load_comes_from_the_cache(schemas: Path, monkeypatch: Any) -> None:
    first = Catalog.load(schemas)
    assert list((schemas.parent / "cache").glob("schemas-*.json"))
    _no_parsing(monkeypatch)
    second = Catalog.load(schemas)
    assert list(second) == list(first)
    assert len(second) == len(first) > 100


def test_an_edited_or_added_file_is_read_again(schemas: Path) -> None:
    Catalog.load(schemas)
    path = schemas / "canvas" / "live_logged_in.yml"
    text = path.read_text()
    path.write_text(text.replace("columns:", "columns:\n  extra_note: {type: text}", 1))
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 10_000_000))
    assert Catalog.load(schemas).tables["live_logged_in"].column("extra_note") is not None
    extra = schemas / "custom" / "my_table.yml"
    extra.write_text(
        "table: my_table\nformat: custom\ncolumns:\n  id: {type: bigint, primary_key: true}\n"
    )
    assert "my_table" in Catalog.load(schemas).tables


def test_an_unusable_cache_only_means_parsing(schemas: Path, monkeypatch: Any) -> None:
    Catalog.load(schemas)
    for entry in (schemas.parent / "cache").glob("schemas-*.json"):
        entry.write_bytes(b"not json")
    assert len(Catalog.load(schemas)) > 100
    blocked = schemas.parent / "blocked"
    blocked.write_text("a file where the cache directory should be")
    monkeypatch.setenv("LEDBELLY_CACHE_DIR", str(blocked))
    assert len(Catalog.load(schemas)) > 100
    assert schema_cache.cache_dir() == blocked


def test_a_planted_entry_is_checked_like_yaml_and_runs_nothing(
    schemas: Path, tmp_path: Path
) -> None:
    """The cache directory is the user's to write: what it holds is data, checked."""
    first = Catalog.load(schemas)
    (entry,) = (schemas.parent / "cache").glob("schemas-*.json")
    assert entry.stat().st_mode & 0o077 == 0  # owner-only
    marker = tmp_path / "ran"
    doc = json.loads(entry.read_text())
    _, table = doc[0]
    string_column = next(c for c, spec in table["columns"].items() if spec.get("size"))
    table["columns"][string_column]["size"] = f"1) or __import__('os').mknod({str(marker)!r}"
    entry.write_text(json.dumps(doc))
    again = Catalog.load(schemas)
    assert list(again) == list(first)  # the planted entry was a miss: the YAML was parsed
    assert not marker.exists()
    pickled = entry.with_suffix(".pickle")  # what the old cache would have loaded
    pickled.write_bytes(pickle.dumps(Path))  # harmless, but code-shaped
    assert list(Catalog.load(schemas)) == list(first)
