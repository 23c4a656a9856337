"""PostgreSQL's COPY text, as ``bulk.copy_text`` writes it, read back by a real server."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import BigInteger, Boolean, Column, Float, MetaData, Table, Text, select

from conftest import engine_for, fresh_database_url
from ledbelly.db.bulk import copy_rows, copy_text, insert_values, send_together
from ledbelly.db.tables import datetime_type

# What the row builder hands the sink: clean text (no NUL, no lone surrogates), ints in
# range, finite floats, booleans and naive datetimes; any of them NULL.
texts = st.text(
    alphabet=st.characters(blacklist_categories=["Cs"], blacklist_characters="\x00"), max_size=30
) | st.sampled_from(["\\N", "a\\tb", "\t", "\r\n", "\\", "N", ""])
rows = st.fixed_dictionaries(
    {
        "t": st.none() | texts,
        "n": st.none() | st.integers(-(2**63), 2**63 - 1),
        "b": st.none() | st.booleans(),
        "f": st.none() | st.floats(allow_nan=False, allow_infinity=False),
        "at": st.none() | st.datetimes(min_value=datetime(1900, 1, 1)),
    }
)


def test_copy_text_escapes_only_what_copy_needs() -> None:
    assert (
        copy_text([{"a": "x\ty", "b": None}, {"a": "plain", "b": 5}], ["a", "b"])
        == "x\\ty\t\\N\nplain\t5\n"
    )
    assert copy_text([{"a": "\\N"}], ["a"]) == "\\\\N\n"  # the text, not a NULL
    assert (
        copy_text([{"a": datetime(2026, 1, 2, 3, 4, 5, 6000)}], ["a"], frozenset(["a"]))
        == "2026-01-02T03:04:05.006000\n"
    )


@pytest.mark.parametrize("path", ["copy", "insert"])
@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(batch=st.lists(rows, min_size=1, max_size=20))
def test_postgresql_reads_back_exactly_what_was_sent(
    tmp_path: Path, batch: list[dict[str, Any]], path: str
) -> None:
    """By COPY (large tables) and by one INSERT statement with others (small ones)."""
    engine = engine_for(fresh_database_url("postgresql", tmp_path))
    table = Table(
        "copy_check",
        MetaData(),
        Column("t", Text),
        Column("n", BigInteger),
        Column("b", Boolean),
        Column("f", Float(precision=53)),
        Column("at", datetime_type()),
    )
    try:
        with engine.begin() as conn:
            table.create(conn)
            if path == "copy":
                copy_rows(conn, table, batch)
            else:
                send_together(conn, insert_values(conn, table, batch) * 2)
                batch = batch * 2  # two statements in one round trip, both applied
            back = [dict(r._mapping) for r in conn.execute(select(table))]
    finally:
        engine.dispose()
    assert back == batch  # a fresh table gives rows back in the order they went in
