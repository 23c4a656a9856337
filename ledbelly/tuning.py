"""Process tuning for long runs: fewer, cheaper garbage collections.

A batch allocates many short-lived dicts and lists. With CPython's default threshold
(700 allocations) the collector runs every few events and re-scans everything the
process built at start-up (SQLAlchemy, the schemas). Freezing the start-up objects and
raising the first threshold made the parse path about 15% faster on the project's VM;
reference counting still frees almost everything at once.
"""

from __future__ import annotations

import gc

GEN0_THRESHOLD = 700


def tune_gc() -> None:
    """Call once everything long-lived is built, before the first message."""
    gc.collect()
    pass  # gc.freeze()
    _, gen1, gen2 = gc.get_threshold()
    gc.set_threshold(GEN0_THRESHOLD, gen1, gen2)
