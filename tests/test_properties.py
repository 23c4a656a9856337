"""Property tests for the pure stages: flattening, coercion and trimming."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from helpers import BUILDER_TABLE
from ledbelly.parsers.flatten import caliper_segment, flatten_caliper, flatten_canvas
from ledbelly.transform import rows as rows_module
from ledbelly.transform.coerce import (
    BIGINT_MAX,
    BIGINT_MIN,
    CoercionFailed,
    canvas_id_of_urn,
    clean_text,
    fits,
    stored_length,
    text_of,
    to_bigint,
    to_boolean,
    to_datetime,
    to_float,
    trim,
)
from ledbelly.transform.rows import HOT_AFTER, RowPlan, _build_generic, _compile

keys = st.text(alphabet=st.characters(min_codepoint=33, max_codepoint=126), min_size=1, max_size=12)
scalars = (
    st.none() | st.booleans() | st.integers() | st.text(max_size=20) | st.floats(allow_nan=False)
)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(keys, inner, max_size=4),
    max_leaves=12,
)
documents = st.dictionaries(keys, json_values, max_size=6)


def _leaves(obj: Any) -> list[Any]:
    """Every scalar and every list in a document, as flattening keeps them: lists whole,
    and an empty object carries nothing, so it leaves nothing."""
    if isinstance(obj, dict):
        return [leaf for v in obj.values() for leaf in _leaves(v)]
    return [obj]


@given(documents)
def test_flatten_canvas_keeps_every_leaf(doc: dict[str, Any]) -> None:
    out: dict[str, Any] = {}
    flatten_canvas(doc, "body.", out)
    assert all(k.startswith("body.") for k in out)
    assert all(not isinstance(v, dict) or v == {} for v in out.values())
    # Keys can collide after sanitising (a.b vs a_b): never more values than leaves.
    assert len(out) <= max(1, len(_leaves(doc)))
    if all(k.isidentifier() and "_" not in k for k in _all_keys(doc)):
        assert sorted(map(repr, out.values())) == sorted(map(repr, _leaves(doc)))


def _all_keys(obj: Any) -> list[str]:
    if isinstance(obj, dict):
        return [k for k, v in obj.items() for k in [k, *_all_keys(v)]]
    return []


@given(documents)
def test_flatten_caliper_names_are_column_safe(doc: dict[str, Any]) -> None:
    out: dict[str, Any] = {}
    flatten_caliper(doc, "", out)
    for key, value in out.items():
        assert key == "_" or all(c.islower() or c.isdigit() or c == "_" for c in key)
        assert not isinstance(value, dict) or value == {}
        if isinstance(value, list):
            assert any(isinstance(x, dict | list) for x in value)


def test_caliper_segments_drop_canvas_noise() -> None:
    out: dict[str, Any] = {}
    flatten_caliper(
        {
            "actor": {"extensions": {"com.instructure.canvas": {"entity_id": "1"}}},
            "@context": "c",
            "eventTime": "t",
            "membership": {"roles": ["A", "B"]},
        },
        "",
        out,
    )
    assert out == {
        "actor_entity_id": "1",
        "context": "c",
        "eventtime": "t",
        "membership_roles": "A,B",
    }
    assert caliper_segment("edApp") == "edapp"


@given(st.integers())
def test_bigint_accepts_exactly_the_64_bit_range(n: int) -> None:
    for value in (n, str(n), f"  {n} "):
        if BIGINT_MIN <= n <= BIGINT_MAX:
            assert to_bigint(value) == n
        else:
            try:
                to_bigint(value)
            except CoercionFailed:
                continue
            raise AssertionError(f"{value!r} should not fit a bigint")


@given(st.text(max_size=30))
def test_bigint_takes_plain_ascii_integers_only(s: str) -> None:
    import re

    plain = re.fullmatch(r"\s*[+-]?[0-9]+\s*", s)
    try:
        n = to_bigint(s)
    except CoercionFailed:
        assert not plain or not BIGINT_MIN <= int(s) <= BIGINT_MAX
        return
    if s == "":
        assert n is None  # Canvas's cleared id: NULL, not a coercion
        return
    assert plain and n == int(s)


@given(st.integers(min_value=0, max_value=BIGINT_MAX), st.sampled_from(["user", "course"]))
def test_a_canvas_urn_gives_its_id(n: int, kind: str) -> None:
    assert canvas_id_of_urn(f"urn:instructure:canvas:{kind}:{n}") == n
    assert canvas_id_of_urn(f"urn:example:{kind}:{n}") is None
    assert canvas_id_of_urn(f"https://lms.example.edu/{kind}/{n}") is None


@given(
    st.datetimes(min_value=datetime(1900, 1, 1), max_value=datetime(2200, 1, 1)),
    st.integers(min_value=-12 * 60, max_value=14 * 60),
)
def test_iso_times_round_trip_to_utc_with_microseconds(dt: datetime, offset_min: int) -> None:
    tz = timezone(timedelta(minutes=offset_min))
    aware = dt.replace(tzinfo=tz)
    text = aware.isoformat(timespec="microseconds")
    expected = aware.astimezone(UTC).replace(tzinfo=None)
    assert to_datetime(text) == expected
    assert to_datetime(dt.isoformat(timespec="milliseconds") + "Z") == dt.replace(
        microsecond=dt.microsecond // 1000 * 1000
    )


@given(st.text(max_size=25))
def test_garbage_is_never_a_time_unless_iso(s: str) -> None:
    try:
        parsed = to_datetime(s)
    except CoercionFailed:
        return
    assert isinstance(parsed, datetime) and parsed.tzinfo is None


@given(st.one_of(st.floats(), st.integers(), st.text(max_size=10), st.booleans()))
def test_floats_are_finite_or_refused(v: Any) -> None:
    try:
        f = to_float(v)
    except CoercionFailed:
        return
    assert f == f and abs(f) != float("inf")


@given(st.sampled_from([True, False, "true", "False", "1", "0", 1, 0, "yes", "no"]))
def test_booleans(v: Any) -> None:
    assert isinstance(to_boolean(v), bool)


@given(
    st.text(), st.integers(min_value=1, max_value=60), st.sampled_from(["chars", "utf16", "bytes"])
)
def test_trim_fits_never_splits_and_keeps_a_prefix(s: str, size: int, unit: Any) -> None:
    s = clean_text(s)
    out = trim(s, size, unit)
    assert s.startswith(out)
    assert stored_length(out, unit) <= size
    out.encode("utf-8")  # whole characters only: always encodable
    assert fits(out, size, unit)
    if fits(s, size, unit):
        assert stored_length(s, unit) <= size
    # nothing more could have been kept
    if out != s:
        assert stored_length(s[: len(out) + 1], unit) > size


@given(st.text())
def test_clean_text_is_storable_everywhere(s: str) -> None:
    out = clean_text(s)
    assert "\x00" not in out
    out.encode("utf-8")
    if "\x00" not in s and not any(0xD800 <= ord(c) <= 0xDFFF for c in s):
        assert out == s


@given(json_values)
def test_text_of_any_json_value_is_storable(v: Any) -> None:
    out = text_of(v)
    assert isinstance(out, str)
    out.encode("utf-8")


@given(
    st.datetimes(min_value=datetime(1990, 1, 1), max_value=datetime(2090, 1, 1)),
    st.sampled_from(
        [
            "America/New_York",
            "Australia/Adelaide",
            "Asia/Kolkata",
            "UTC",
            "America/St_Johns",
            "Europe/London",
        ]
    ),
)
def test_local_time_matches_zoneinfo(dt: datetime, zone_name: str) -> None:
    from zoneinfo import ZoneInfo

    from ledbelly.transform.processor import LocalTimes

    zone = ZoneInfo(zone_name)
    expected = dt.replace(tzinfo=UTC).astimezone(zone).replace(tzinfo=None)
    local_times = LocalTimes(zone)
    assert local_times.of(dt) == expected
    assert local_times.of(dt) == expected  # from the cache
    same_half_hour = dt.replace(
        minute=dt.minute // 30 * 30 + 29 - dt.minute % 30, microsecond=999_999 - dt.microsecond
    )
    assert local_times.of(same_half_hour) == same_half_hour.replace(tzinfo=UTC).astimezone(
        zone
    ).replace(tzinfo=None)


# ----- row building: the compiled builder and the general loop make the same row -------

_build_values = (
    scalars
    | st.sampled_from(
        ["12", "-3", "007", "2019-11-01T00:00:00.5Z", "ünï", "a\x00b", "x" * 9, "1e3", "true"]
    )
    | st.lists(scalars, max_size=2)
    | st.dictionaries(keys, scalars, max_size=2)
)


@given(
    st.dictionaries(
        st.sampled_from([f"body.{c.name}" for c in BUILDER_TABLE.columns]), _build_values
    ),
    st.sampled_from(["postgresql", "mssql"]),
)
def test_compiled_row_builder_matches_the_general_loop(flat: dict[str, Any], dialect: str) -> None:
    plan = RowPlan(BUILDER_TABLE, dialect, None)
    generic_issues: list[Any] = []
    compiled_issues: list[Any] = []
    generic = _build_generic(plan.slots, None, flat, generic_issues, None)
    compiled = _compile(plan.slots)(flat, compiled_issues)
    assert list(compiled.items()) == list(generic.items())
    assert compiled_issues == generic_issues


def test_a_table_gets_its_compiled_builder_once_hot(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(rows_module, "_KERNEL", None)  # the pure-Python path compiles lazily
    plan = RowPlan(BUILDER_TABLE, "postgresql", None)
    cold = plan._build
    now = datetime(2026, 1, 1)
    rows = [
        plan.build({"body.a_id": str(i), "body.short": "abc"}, now, None)[0]
        for i in range(HOT_AFTER + 1)
    ]
    assert plan._build is not cold
    assert rows[-1] == {**rows[0], "a_id": HOT_AFTER}
