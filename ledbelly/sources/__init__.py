"""Message sources: where messages come from and how they are acknowledged.

SQS, files/stdin and an in-memory queue implement the same interface, so the daemon and
its tests run the same code whatever feeds them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol

from ledbelly.message import Message


class Source(Protocol):
    """A queue of messages that are deleted only once their rows are committed."""

    name: str

    def receive(self, max_messages: int, wait_seconds: float) -> list[Message]:
        """Up to ``max_messages``, waiting at most ``wait_seconds`` for the first."""
        ...

    def ack(self, messages: Sequence[Message]) -> list[Message]:
        """Delete committed messages; returns those that could not be deleted."""
        ...

    def release(self, messages: Sequence[Message], delay: int = 0) -> None:
        """Hand back messages not committed, to be delivered again after ``delay`` seconds
        (at once with 0: visibility 0 on SQS). A source that cannot delay ignores it."""
        ...

    def extend(self, messages: Sequence[Message], seconds: int) -> Mapping[Message, str] | None:
        """Keep messages invisible to other consumers while they are being worked on.

        Returns the messages it could not extend, each with the reason (``None`` or an
        empty mapping: all were); the daemon tries those again.
        """
        ...

    def close(self) -> None: ...
