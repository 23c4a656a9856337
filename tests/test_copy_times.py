"""COPY text remembers the isoformat of naive times only: equal aware times in other
zones, or a datetime subclass, keep their own text."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from ledbelly.db.bulk import copy_text


class _Shown(datetime):
    def isoformat(self, sep: str = "T", timespec: str = "auto") -> str:
        return "shown"


def test_times_are_written_as_their_own_isoformat() -> None:
    naive = datetime(2026, 9, 1, 13, 0, 0, 98000)
    utc = naive.replace(tzinfo=UTC)
    plus_one = utc.astimezone(timezone(timedelta(hours=1)))
    sub = _Shown(2026, 9, 1, 13, 0, 0, 98000)
    rows = [{"t": v} for v in (naive, utc, plus_one, sub, naive, utc, plus_one, sub)]
    text = copy_text(rows, ["t"], frozenset(["t"]))
    expected = [naive.isoformat(), utc.isoformat(), plus_one.isoformat(), "shown"] * 2
    assert text.splitlines() == expected
