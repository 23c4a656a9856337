"""The compiled kernels do exactly what the pure-Python code they replace does.

Each kernel is compared with its pure-Python twin over the same generated inputs, and
``ledbelly ingest`` of the same messages, once with the kernels and once with
``LEDBELLY_PURE_PYTHON=1``, must leave the same rows.
"""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from click.testing import CliRunner
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import create_engine, inspect, text

from helpers import BUILDER_TABLE, fixture_line, simulated
from ledbelly import kernels
from ledbelly.cli import main
from ledbelly.db import bulk
from ledbelly.transform import rows as rows_mod
from ledbelly.transform.coerce import _parse_time, canvas_id_of_urn

# The module, not ``ledbelly.parsers.flatten`` the function that shadows it.
flat_mod = importlib.import_module("ledbelly.parsers.flatten")
FIXTURES = Path(__file__).resolve().parent / "fixtures"


def _kernel(name: str) -> ModuleType:
    """The compiled kernel; the dev install builds them (it needs a C compiler anyway,
    for mysqlclient), so a missing one is a broken build, not a reason to skip."""
    module = kernels.compiled(name)
    assert module is not None, f"the {name} kernel was not built: {kernels.status()}"
    return module


def test_every_kernel_is_built_and_used_unless_pure_python_is_asked_for() -> None:
    for name in kernels.KERNELS:
        _kernel(name)  # built, whatever the environment says
    used = not kernels.pure_python()  # the suite runs either way (README, Performance)
    assert (rows_mod._KERNEL is not None) is used
    assert (bulk._KERNEL is not None) is used
    assert (flat_mod._FAST is not None) is used
    said = CliRunner().invoke(main, ["--version"])
    assert said.exit_code == 0
    assert ("(compiled kernels)" in said.output) is used
    assert ("LEDBELLY_PURE_PYTHON is set" in said.output) is not used


def test_the_environment_can_ask_for_pure_python(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(kernels.PURE_PYTHON_ENV, "1")
    assert kernels.load("rows") is None
    assert kernels.status().startswith("pure Python")
    monkeypatch.setenv(kernels.PURE_PYTHON_ENV, "0")
    assert kernels.load("rows") is not None


# ----- flatten --------------------------------------------------------------------------

keys = st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=0x2FF), max_size=8)
scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False)
    | st.text(max_size=12)
    | st.sampled_from(["extensions", "com.instructure.canvas", "a_b", "A-B"])
)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(keys, inner, max_size=4),
    max_leaves=10,
)
documents = st.dictionaries(keys | st.sampled_from(["a", "b", "a_b", "A"]), json_values, max_size=5)


def _both_flatteners(
    doc: dict[str, Any], prefix: str, keep: frozenset[str], pure: Any, method: str
) -> None:
    fast = flat_mod.compiled_flattener(_kernel("flatten"))
    compiled_out: dict[str, Any] = {}
    pure_out: dict[str, Any] = {}
    compiled_collided = getattr(fast, method)(doc, prefix, compiled_out, keep)
    pure_collided = flat_mod._collides(None, pure, doc, prefix, pure_out, keep)
    assert compiled_collided == pure_collided
    if not pure_collided:  # after a collision the caller starts again on the slow path
        assert list(compiled_out.items()) == list(pure_out.items())


@given(documents, st.sampled_from(["body.", "metadata."]), st.sets(keys, max_size=2))
def test_canvas_flattener_matches_its_twin(
    doc: dict[str, Any], prefix: str, keep: set[str]
) -> None:
    keep_full = frozenset(prefix + k for k in keep)
    _both_flatteners(doc, prefix, keep_full, flat_mod._canvas_fast, "canvas")


@given(documents, st.sampled_from(["", "object", "actor"]), st.sets(keys, max_size=2))
def test_caliper_flattener_matches_its_twin(
    doc: dict[str, Any], prefix: str, keep: set[str]
) -> None:
    _both_flatteners(doc, prefix, frozenset(keep), flat_mod._caliper_fast, "caliper")


# ----- rows -----------------------------------------------------------------------------

_times = st.datetimes(
    min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31), timezones=st.none()
)
_values = (
    scalars
    | st.sampled_from(
        [
            "12",
            "-3",
            "007",
            " 7",
            "9" * 18,
            "9" * 19,
            "1" * 9,
            "3" * 10,
            "٣",
            "2019-11-01T00:00:00.5Z",
            "2019-11-01T00:00:00.500Z",
            "2019-02-30T00:00:00Z",
            "2019-11-01T24:00:00Z",
            "ünï",
            "a\x00b",
            "日本語のテキスト",
            "emoji 😀 wide",
            "lone \ud800 surrogate",
            "é\x00",
            "x" * 9,
            "1e3",
            "true",
            "urn:instructure:canvas:user:21070000000000001",
            "urn:instructure:canvas:user:",
            "urn:instructure:canvas:user:12a",
            "urn:instructure:canvas:user:99999999999999999999",
            "urn:instructure:canvas:ünï:5",
            "urn:other:user:5",
        ]
    )
    | _times.map(lambda t: t.isoformat(timespec="milliseconds") + "Z")
    | _times.map(lambda t: t.isoformat() + "Z")
    | st.integers(min_value=-(2**64), max_value=2**64)
    | st.lists(scalars, max_size=2)
    | st.dictionaries(keys, scalars, max_size=2)
)


@given(
    st.dictionaries(st.sampled_from([f"body.{c.name}" for c in BUILDER_TABLE.columns]), _values),
    st.sampled_from(["postgresql", "mssql"]),
)
def test_row_builder_matches_the_generated_one(flat: dict[str, Any], dialect: str) -> None:
    plan = rows_mod.RowPlan(BUILDER_TABLE, dialect, None)
    pure_issues: list[Any] = []
    compiled_issues: list[Any] = []
    pure = rows_mod._compile(plan.slots)(flat, pure_issues)
    compiled = rows_mod.compiled_builder(_kernel("rows"), plan.slots)(flat, compiled_issues)
    assert list(compiled.items()) == list(pure.items())
    assert [type(v) for v in compiled.values()] == [type(v) for v in pure.values()]
    assert compiled_issues == pure_issues


def test_a_follower_reuses_the_leaders_values_as_the_generated_one_does() -> None:
    plan = rows_mod.RowPlan(BUILDER_TABLE, "postgresql", None)
    reuse = {0: "a_id", 2: "short"}  # slots: the data columns, id left out
    lead = {"a_id": 5, "short": "abc"}
    flat = {"body.a_id": "99", "body.short": "zzz", "body.n": "4"}
    pure = rows_mod._compile(plan.slots, reuse)(flat, [], lead)
    compiled = rows_mod.compiled_builder(_kernel("rows"), plan.slots, reuse)(flat, [], lead)
    assert compiled == pure
    assert compiled["a_id"] == 5 and compiled["short"] == "abc" and compiled["n"] == 4


@given(
    _times.map(lambda t: t.isoformat(timespec="milliseconds") + "Z")
    | _times.map(lambda t: t.isoformat() + "Z")
    | _times.map(lambda t: t.isoformat(timespec="seconds") + "Z")
    | st.text(alphabet="0123456789-:TZ. +", max_size=28)
)
def test_canvas_time_form_reads_as_the_general_parser_reads_it(value: str) -> None:
    found = _kernel("rows").iso_utc(value)
    if found is not None:
        assert found == _parse_time(value) and found.tzinfo is None


@given(st.integers(min_value=0, max_value=2**70), st.sampled_from(["user", "course", ""]))
def test_urn_ids_as_the_pure_function_reads_them(n: int, kind: str) -> None:
    plan = rows_mod.RowPlan(BUILDER_TABLE, "postgresql", None)
    build = rows_mod.compiled_builder(_kernel("rows"), plan.slots)
    urn = f"urn:instructure:canvas:{kind}:{n}" if kind else f"urn:instructure:canvas:{n}"
    assert build({"body.who": urn}, [])["who_canvas_id"] == canvas_id_of_urn(urn)


# ----- COPY text ------------------------------------------------------------------------

_copy_values = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text(max_size=10)
    | st.sampled_from(["\\N", "a\tb", "a\nb", "a\rb", "ba\\ck", "é\t", "plain", "lone \ud800"])
    | _times
    | _times.map(lambda t: t.replace(tzinfo=UTC))
    | _times.map(lambda t: t.replace(tzinfo=timezone(timedelta(hours=-5))))
)


@given(st.lists(st.lists(_copy_values, min_size=3, max_size=3), max_size=8))
def test_copy_text_matches_the_generated_renderer(values: list[list[Any]]) -> None:
    columns = ["a", "b", "c"]
    rows = [dict(zip(columns, row, strict=True)) for row in values]
    times = (
        frozenset(["b"])
        if all(r["b"] is None or isinstance(r["b"], datetime) for r in rows)
        else frozenset()
    )
    pure = "".join(bulk._renderer(tuple(columns), times)(row) for row in rows)
    kernel = _kernel("copy")
    is_time = tuple(c in times for c in columns)
    assert kernel.render_rows(rows, tuple(columns), is_time, bulk.copy_line_slow) == pure
    payload = kernel.render_rows(rows, tuple(columns), is_time, bulk.copy_line_slow, True)
    if isinstance(payload, bytes):  # what psycopg2 would have sent of the text
        assert payload == pure.encode("utf-8")
    else:  # a lone surrogate: text, for the driver to refuse as it refuses the other's
        assert payload == pure
        assert "\ud800" in pure


def test_copy_text_of_one_column() -> None:
    rows: list[dict[str, Any]] = [{"a": "x"}, {"a": None}, {"a": "t\tab"}]
    pure = "".join(bulk._renderer(("a",), frozenset())(row) for row in rows)
    assert _kernel("copy").render_rows(rows, ("a",), (False,), bulk.copy_line_slow) == (pure)


# ----- end to end: the same rows with and without the kernels ----------------------------


def _messages_file(path: Path) -> None:
    lines = [
        fixture_line(json.loads(p.read_text()), f"fixture-{i}")
        for i, p in enumerate(sorted(FIXTURES.glob("*/*.json")))
    ]
    for m in simulated(400, seed=20261201):
        attributes = {k: {"StringValue": v, "DataType": "String"} for k, v in m.attributes.items()}
        lines.append(
            json.dumps({"MessageId": m.message_id, "Body": m.body, "MessageAttributes": attributes})
        )
    path.write_text("\n".join(lines) + "\n")


def _ingest(tmp_path: Path, name: str, messages: Path, pure: bool) -> dict[str, list[Any]]:
    url = f"sqlite:///{tmp_path / name}.db"
    env = {k: v for k, v in os.environ.items() if k != kernels.PURE_PYTHON_ENV}
    if pure:
        env[kernels.PURE_PYTHON_ENV] = "1"
    command = [sys.executable, "-m", "ledbelly.cli.main", "ingest", "--db", url]
    command += ["--log-dir", str(tmp_path / f"log-{name}"), str(messages)]
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    engine = create_engine(url)
    tables: dict[str, list[Any]] = {}
    try:
        with engine.connect() as conn:
            for table in inspect(conn).get_table_names():
                columns = [
                    c["name"]
                    for c in inspect(conn).get_columns(table)
                    if c["name"] not in ("processed_at", "id", "created_at", "last_attempt_at")
                ]
                quoted = ", ".join(f'"{c}"' for c in columns)
                found = conn.execute(text(f'SELECT {quoted} FROM "{table}"')).all()
                tables[table] = sorted(map(repr, found))
    finally:
        engine.dispose()
    return tables


def test_ingest_leaves_the_same_rows_with_and_without_the_kernels(tmp_path: Path) -> None:
    messages = tmp_path / "messages.jsonl"
    _messages_file(messages)
    compiled = _ingest(tmp_path, "compiled", messages, pure=False)
    pure = _ingest(tmp_path, "pure", messages, pure=True)
    assert compiled.keys() == pure.keys()
    assert sum(len(rows) for rows in compiled.values()) > 1000
    for table, rows in compiled.items():
        assert rows == pure[table], table


def test_no_kernel_is_older_than_its_source() -> None:
    """An edited ``.pyx`` must be rebuilt (``scripts/setup`` does it), or its stale
    build would run instead of the code under review."""
    for name in kernels.KERNELS:
        built = Path(str(_kernel(name).__file__))
        source = Path(kernels.__file__).with_name(f"_{name}.pyx")
        assert built.stat().st_mtime >= source.stat().st_mtime, f"{built.name} is stale"


def test_exact_rendering_refuses_rows_whose_columns_differ() -> None:
    render = _kernel("copy").render_rows
    columns, is_time = ("a", "b"), (False, False)
    same = [{"a": 1, "b": "x"}, {"b": "y", "a": 2}]  # the same columns in another order
    assert render(same, columns, is_time, bulk.copy_line_slow, True, True) == b"1\tx\n2\ty\n"
    for other in ({"a": 1}, {"a": 1, "b": 2, "c": 3}, {"a": 1, "c": 3}):
        assert render([same[0], other], columns, is_time, bulk.copy_line_slow, True, True) is None
    with pytest.raises(KeyError):
        render([{"a": 1}], columns, is_time, bulk.copy_line_slow)
