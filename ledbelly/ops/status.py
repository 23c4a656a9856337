"""A one-line live status for an operator watching ledbelly in a terminal.

Logging a line per batch scrolls the useful numbers away; instead one line is rewritten
in place (carriage return, text, clear to end of line) at most once per interval, so a
busy daemon does not spend its time redrawing. The rate is derived here from the change
in the total between two drawn lines, so the registry only has to count. It is meant for
a TTY: callers check ``is_tty`` and fall back to plain logs when output is piped.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable, Mapping
from typing import Any, TextIO

CLEAR_TO_EOL = "\x1b[K"


def is_tty(stream: Any) -> bool:
    """True if ``stream`` is an open terminal; False for files, pipes and closed streams."""
    isatty = getattr(stream, "isatty", None)
    if isatty is None:
        return False
    try:
        return bool(isatty())
    except (OSError, ValueError):  # ValueError: I/O operation on closed file
        return False


def format_line(snapshot: Mapping[str, Any], rate: float | None) -> str:
    """The status text for one snapshot (keys as ``Metrics.snapshot()`` returns them)."""
    rate_text = "-" if rate is None else f"{rate:.1f}"
    last = snapshot.get("last_event") or "-"
    last_at = snapshot.get("last_event_at")
    if last_at is not None:
        last += " at " + time.strftime("%H:%M:%S", time.localtime(last_at))
    return (
        f"{rate_text} events/s | total {int(snapshot.get('events_total', 0)):,} | "
        f"last {last} | backlog {int(snapshot.get('backlog', 0)):,} | "
        f"dead letters {int(snapshot.get('dead_letters', 0)):,}"
    )


class StatusLine:
    """Rewrites one terminal line with the latest snapshot; use from one thread.

    ``width`` caps the text so it never wraps (a wrapped line cannot be rewritten with
    ``\\r``); by default it is the terminal's width, read at each redraw.
    """

    def __init__(
        self,
        stream: TextIO,
        interval: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
        width: int | None = None,
    ) -> None:
        self.stream = stream
        self.interval = interval
        self._clock = clock
        self._width = width
        self._drawn_at: float | None = None
        self._drawn_total = 0
        self._open = False

    def update(self, snapshot: Mapping[str, Any]) -> bool:
        """Redraw if ``interval`` has passed since the last redraw; True if it did."""
        now = self._clock()
        if self._drawn_at is not None and now - self._drawn_at < self.interval:
            return False
        total = int(snapshot.get("events_total", 0))
        rate = None
        if self._drawn_at is not None and now > self._drawn_at:
            rate = max(0, total - self._drawn_total) / (now - self._drawn_at)
        self._drawn_at, self._drawn_total = now, total
        text = format_line(snapshot, rate)[: self._columns()]
        self.stream.write("\r" + text + CLEAR_TO_EOL)
        self.stream.flush()
        self._open = True
        return True

    def close(self) -> None:
        """End the line so the next output (a log line, the shell prompt) starts clean."""
        if self._open:
            self.stream.write("\n")
            self.stream.flush()
            self._open = False

    def _columns(self) -> int:
        if self._width is not None:
            return self._width
        return max(20, shutil.get_terminal_size().columns - 1)
