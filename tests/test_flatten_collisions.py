"""Flat keys that collide keep one value, chosen whatever the payload's key order, and
the collision is logged once per table and key with both paths."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from conftest import canvas_event, sqs_message
from ledbelly.ops.logs import COERCIONS, EventLogs
from ledbelly.parsers.flatten import Collision, flatten_caliper, flatten_canvas
from ledbelly.schema.model import Catalog, TableDef
from ledbelly.transform.processor import Processor

# Few, similar keys, so that collisions are common: a-b, a_b, A_b, nested a.b ...
keys = st.sampled_from(["a", "b", "a_b", "a-b", "A_b", "a.b", "A", "B", "a__b", "ext"])
leaves = st.none() | st.integers() | st.text(max_size=3) | st.lists(st.integers(), max_size=2)
documents = st.recursive(
    st.dictionaries(keys, leaves, max_size=5),
    lambda inner: st.dictionaries(keys, leaves | inner, max_size=5),
    max_leaves=12,
)


def _reordered(obj: Any, order: list[int]) -> Any:
    """The same document with every object's keys in another order."""
    if not isinstance(obj, dict):
        return obj
    items = list(obj.items())
    items = sorted(items, key=lambda kv: order[hash(kv[0]) % len(order)]) if order else items
    items.reverse()
    return {k: _reordered(v, order) for k, v in items}


def _flat(kind: str, doc: dict[str, Any]) -> tuple[dict[str, Any], list[Collision]]:
    out: dict[str, Any] = {}
    found: list[Collision] = []
    if kind == "canvas":
        flatten_canvas(doc, "body.", out, frozenset(), found)
    else:
        flatten_caliper(doc, "", out, frozenset(), found)
    return out, found


@given(documents, st.lists(st.integers(0, 9), max_size=10), st.sampled_from(["canvas", "caliper"]))
def test_the_winner_does_not_depend_on_key_order(
    doc: dict[str, Any], order: list[int], kind: str
) -> None:
    out, found = _flat(kind, doc)
    other, other_found = _flat(kind, _reordered(doc, order))
    assert out == other
    assert sorted(found) == sorted(other_found)
    for c in found:
        assert c.kept not in c.dropped
        assert len(set(c.dropped)) == len(c.dropped)


def test_the_path_that_is_the_key_wins() -> None:
    out, found = _flat("canvas", {"a-b": 1, "a_b": 2, "c": 3})
    assert out == {"body.a_b": 2, "body.c": 3}
    assert found == [Collision("body.a_b", "body.a_b", ("body.a-b",))]
    out, found = _flat("canvas", {"a_b": 2, "a-b": 1})
    assert out == {"body.a_b": 2}


def test_nested_and_joined_keys_collide() -> None:
    out, found = _flat("canvas", {"a_b": 2, "a": {"b": 1}})
    other, _ = _flat("canvas", {"a": {"b": 1}, "a_b": 2})
    assert out == other
    assert [c.key for c in found] == ["body.a_b"]
    assert {found[0].kept, *found[0].dropped} == {"body.a_b", "body.a.b"}


def test_caliper_lowercasing_and_extensions_collide() -> None:
    out, found = _flat("caliper", {"Name": "upper", "name": "lower"})
    assert out == {"name": "lower"}
    assert found == [Collision("name", "name", ("Name",))]
    event = {
        "actor": {
            "extensions": {"com.instructure.canvas": {"entity_id": "from-extension"}},
            "entity_id": "direct",
        }
    }
    out, found = _flat("caliper", event)
    assert out == {"actor_entity_id": "direct"}
    assert found[0].dropped == ("actor.extensions.com.instructure.canvas.entity_id",)


def test_no_collision_no_report() -> None:
    out, found = _flat("canvas", {"a": {"b": 1}, "c": [1, 2]})
    assert out == {"body.a_b": 1, "body.c": [1, 2]}
    assert found == []


def _all_columns(table: TableDef) -> frozenset[str] | None:
    return frozenset(c.name for c in table.columns)


def test_the_processor_logs_a_collision_once_with_both_paths(tmp_path: Path) -> None:
    logs = EventLogs(tmp_path)
    processor = Processor(Catalog.load(), "postgresql", logs, _all_columns)
    payload = canvas_event(asset_name="kept", **{"asset-name": "dropped"})
    for n in range(3):
        outcome = processor.process(sqs_message(f"m{n}", "asset_accessed", payload))
        (_, row), *_ = outcome.rows
        assert row["asset_name"] == "kept"
    logs.close()
    lines = (tmp_path / COERCIONS).read_text().splitlines()
    assert len(lines) == 1
    assert "body.asset_name collision: kept body.asset_name, dropped body.asset-name" in lines[0]
