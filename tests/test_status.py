"""The terminal status line, drawn into a StringIO against a fake clock."""

from __future__ import annotations

import io
import time
from typing import Any

from ledbelly.ops.status import CLEAR_TO_EOL, StatusLine, is_tty


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def snap(total: int, **extra: Any) -> dict[str, Any]:
    return {
        "events_total": total,
        "backlog": 0,
        "dead_letters": 0,
        "last_event": None,
        "last_event_at": None,
        **extra,
    }


def lines(stream: io.StringIO) -> list[str]:
    """Each redraw, without the carriage return and clear-to-eol around it."""
    drawn = stream.getvalue().split("\r")[1:]
    assert all(d.rstrip("\n").endswith(CLEAR_TO_EOL) for d in drawn)
    return [d.rstrip("\n").removesuffix(CLEAR_TO_EOL) for d in drawn]


def test_rate_comes_from_the_change_between_redraws() -> None:
    out, clock = io.StringIO(), Clock()
    status = StatusLine(out, interval=1.0, clock=clock, width=200)
    assert status.update(snap(1000))
    clock.now += 2.0
    assert status.update(snap(1250))
    first, second = lines(out)
    assert first.startswith("- events/s | total 1,000 |")
    assert second.startswith("125.0 events/s | total 1,250 |")


def test_redraws_at_most_once_per_interval() -> None:
    out, clock = io.StringIO(), Clock()
    status = StatusLine(out, interval=1.0, clock=clock, width=200)
    assert status.update(snap(0))
    clock.now += 0.4
    assert not status.update(snap(10))
    clock.now += 0.4
    assert not status.update(snap(20))
    clock.now += 0.2
    assert status.update(snap(30))
    assert len(lines(out)) == 2
    assert lines(out)[1].startswith("30.0 events/s | total 30 |")  # over the full second


def test_shows_last_event_backlog_and_dead_letters() -> None:
    out = io.StringIO()
    at = 1_700_000_000.0
    StatusLine(out, clock=Clock(), width=200).update(
        snap(5, last_event="live_asset_accessed", last_event_at=at, backlog=1234, dead_letters=3)
    )
    expected_time = time.strftime("%H:%M:%S", time.localtime(at))
    assert lines(out) == [
        f"- events/s | total 5 | last live_asset_accessed at {expected_time} | "
        "backlog 1,234 | dead letters 3"
    ]


def test_line_is_cut_to_the_width() -> None:
    out = io.StringIO()
    StatusLine(out, clock=Clock(), width=30).update(snap(5, last_event="x" * 100))
    assert len(lines(out)[0]) == 30


def test_close_ends_the_line_once() -> None:
    out = io.StringIO()
    status = StatusLine(out, clock=Clock(), width=200)
    status.close()
    assert out.getvalue() == ""
    status.update(snap(1))
    status.close()
    status.close()
    assert out.getvalue().endswith(CLEAR_TO_EOL + "\n")
    assert out.getvalue().count("\n") == 1


def test_is_tty() -> None:
    assert not is_tty(io.StringIO())
    assert not is_tty(object())
    closed = io.StringIO()
    closed.close()
    assert not is_tty(closed)

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    assert is_tty(Terminal())
