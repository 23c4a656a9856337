"""PostgreSQL's ledger: a batch is first written as all new (plain COPY or INSERT of its
ledger rows); one that meets a message already there rolls back and claims instead.

Both sizes of batch: a small one (its ledger rows go with its INSERTs in one round
trip) and one over ``SMALL_TABLE_ROWS`` (COPY). What is stored and reported must be
what the claim alone gave: each message once, repeats reported as duplicates.
"""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import text

from conftest import canvas_event, engine_for, fresh_database_url, sqs_message
from helpers import count
from ledbelly.db.bulk import SMALL_TABLE_ROWS
from ledbelly.db.sink import CLAIM_AFTER_CONFLICT
from ledbelly.message import Message


def _event(i: int) -> Message:
    return sqs_message(f"m-{i}", "asset_accessed", canvas_event(asset_id=str(2107 * 10**13 + i)))


def _write(pipeline: Any, messages: list[Message]) -> tuple[int, int]:
    """Committed and duplicate counts of one batch through the pipeline's sink."""
    report = pipeline.sink.write([pipeline.processor.process(m) for m in messages])
    return len(report.committed), len(report.duplicates)


@pytest.mark.parametrize("size", [5, SMALL_TABLE_ROWS + 36], ids=["small", "copy"])
def test_a_batch_meeting_the_ledger_rolls_back_and_claims(
    tmp_path: Any, make_pipeline: Any, size: int
) -> None:
    url = fresh_database_url("postgresql", tmp_path)
    pipeline = make_pipeline(url)
    sink = pipeline.sink

    assert _write(pipeline, [_event(i) for i in range(size)]) == (size, 0)
    assert sink._claim_next == 0  # all new, as expected: no conflict met

    again = [_event(i) for i in range(size - 2, 2 * size)]  # two seen, the rest new
    assert _write(pipeline, again) == (size, 2)
    assert sink._claim_next == CLAIM_AFTER_CONFLICT  # it met the ledger, rolled back

    sink._claim_next = 0  # expect all new again: a repeat inside the batch is no conflict
    fresh = [_event(i) for i in range(2 * size, 3 * size)]
    assert _write(pipeline, [*fresh, fresh[0]]) == (size, 1)
    assert sink._claim_next == 0

    assert count(url, "ledbelly_messages") == 3 * size
    assert count(url, "live_asset_accessed") == 3 * size
    assert count(url, "live_stream") == 3 * size


def test_a_row_the_database_refuses_is_still_a_dead_letter_when_all_new(
    tmp_path: Any, make_pipeline: Any
) -> None:
    """An error that is not the ledger's key takes the usual way: the batch is split
    and the one refused row becomes a dead letter; the others land."""
    url = fresh_database_url("postgresql", tmp_path)
    pipeline = make_pipeline(url)
    engine = engine_for(url)
    with engine.begin() as conn:
        conn.execute(
            text(
                "ALTER TABLE live_asset_accessed ADD CONSTRAINT no_poison "
                "CHECK (asset_name IS NULL OR asset_name <> 'poison')"
            )
        )
    engine.dispose()
    batch = [_event(i) for i in range(6)]
    batch.append(
        sqs_message(
            "m-poison",
            "asset_accessed",
            canvas_event(asset_id="21070000000099", asset_name="poison"),
        )
    )
    assert _write(pipeline, batch) == (7, 0)
    assert pipeline.sink._claim_next == 0
    assert count(url, "live_asset_accessed") == 6
    assert count(url, "ledbelly_dead_letters") == 1
    assert count(url, "ledbelly_messages") == 7
