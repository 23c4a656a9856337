"""An in-memory queue behind the ``Source`` interface: unit tests and benchmarks.

It behaves like SQS where it matters: received messages stay in flight until acked,
released ones come back (after their delay), and nothing is lost if the consumer dies.
"""

from __future__ import annotations

import collections
import math
import threading
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence

from ledbelly.message import Message


class MemorySource:
    """A thread-safe queue; ``in_flight`` holds what was received and not yet acked.

    ``feed`` is an optional iterator drawn from only when the queue is empty, so a large
    backlog (a benchmark's 100,000 messages) lives in the generator, not in memory.
    """

    def __init__(
        self,
        messages: Iterable[Message] = (),
        name: str = "memory",
        feed: Iterator[Message] | None = None,
    ) -> None:
        self.name = name
        self._feed = feed
        self._queue: collections.deque[Message] = collections.deque(messages)
        self._in_flight: dict[str, Message] = {}
        self._delayed: list[tuple[float, Message]] = []  # released with a delay: (due, message)
        self._cond = threading.Condition()
        self.acked = 0

    def put(self, messages: Iterable[Message]) -> None:
        with self._cond:
            self._queue.extend(messages)
            self._cond.notify_all()

    def receive(self, max_messages: int, wait_seconds: float) -> list[Message]:
        with self._cond:
            self._due()
            if not self._queue and self._feed is None:
                soonest = min((due for due, _ in self._delayed), default=math.inf)
                self._cond.wait(timeout=max(0.0, min(wait_seconds, soonest - time.monotonic())))
                self._due()
            out: list[Message] = []
            while len(out) < max_messages and (msg := self._next()) is not None:
                self._in_flight[msg.message_id] = msg
                out.append(msg)
            return out

    def _next(self) -> Message | None:
        if self._queue:
            return self._queue.popleft()
        if self._feed is not None:
            msg = next(self._feed, None)
            if msg is not None:
                return msg
            self._feed = None
        return None

    def ack(self, messages: Sequence[Message]) -> list[Message]:
        with self._cond:
            for m in messages:
                if self._in_flight.pop(m.message_id, None) is not None:
                    self.acked += 1
        return []

    def release(self, messages: Sequence[Message], delay: int = 0) -> None:
        with self._cond:
            back = [m for m in messages if self._in_flight.pop(m.message_id, None) is not None]
            if delay > 0:
                due = time.monotonic() + delay
                self._delayed.extend((due, m) for m in back)
                return
            self._queue.extendleft(reversed(back))  # first in line again, in their order
            self._cond.notify_all()

    def _due(self) -> None:
        """Delayed messages whose time has come, back in the queue (call holding the lock)."""
        if not self._delayed:
            return
        now = time.monotonic()
        self._queue.extend(m for due, m in self._delayed if due <= now)
        self._delayed = [(due, m) for due, m in self._delayed if due > now]

    def extend(self, messages: Sequence[Message], seconds: int) -> Mapping[Message, str] | None:
        return None

    def close(self) -> None:
        return None

    @property
    def depth(self) -> int:
        """Messages waiting: in the queue, or released with a delay not yet passed."""
        with self._cond:
            return len(self._queue) + len(self._delayed)

    @property
    def in_flight(self) -> int:
        with self._cond:
            return len(self._in_flight)
