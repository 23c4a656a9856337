"""Retrying what fails for a while: one backoff and one retry loop for ingest and the daemon."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import TypeVar

from ledbelly.errors import TransientError

T = TypeVar("T")


def backoff(attempt: int, base: float = 0.5, cap: float = 30.0) -> float:
    """Exponential backoff with full jitter, so many workers do not retry in step."""
    return random.uniform(0, min(cap, base * 2**attempt))


def retry_transient(
    work: Callable[[], T],
    *,
    attempts: int | None = None,
    base: float = 0.5,
    cap: float = 30.0,
    pause: Callable[[float], None] = time.sleep,
    on_retry: Callable[[TransientError, int], None] | None = None,
) -> T:
    """``work()``, again after each ``TransientError`` with backoff.

    After ``attempts`` tries (``None``: no limit) the last fault is raised. ``on_retry``
    sees each fault and its attempt number first, and may raise to give up early (the
    daemon does when its shutdown deadline is near); ``pause`` is how to wait, so a
    daemon's wait can wake when it is asked to stop.
    """
    attempt = 0
    while True:
        try:
            return work()
        except TransientError as exc:
            attempt += 1
            if attempts is not None and attempt >= attempts:
                raise
            if on_retry is not None:
                on_retry(exc, attempt)
            pause(backoff(attempt, base, cap))
