"""Process tuning for long runs: fewer, cheaper garbage collections.

A batch allocates many short-lived dicts and lists. With CPython's default threshold
(700 allocations) the collector runs every few events and re-scans what the process
built at start-up (SQLAlchemy, the schemas). Freezing the start-up objects and raising
the first threshold made the parse path 3-4% faster on the project's 2-core VM
(33.4k to 34.6k events per CPU-second); reference counting still frees almost
everything at once. With the compiled kernels an event allocates less between
collections, and a batch of 2,000 in flight is hundreds of thousands of objects that
each collection of the older generations walks: raising the threshold from 10,000 to
100,000 took ``ingest``'s CPU for 100,000 events from 6.6-6.9 s to 6.1-6.3 s. Worker
processes forked after this inherit it.

The daemon's threads also hand the interpreter lock to each other far more often than
CPython's default allows (every 5 ms). See ``tune_threads``.
"""

from __future__ import annotations

import gc
import sys

GEN0_THRESHOLD = 100_000

# Seconds a thread may hold the interpreter lock while another waits for it (CPython's
# default is 0.005). The daemon mixes threads that mostly wait on sockets (the HTTPS
# intake's event loop, the writers' round trips to the database) with work that holds
# the lock for milliseconds (parsing a batch, answering requests). A thread coming back
# from a syscall waited up to 5 ms for the lock each time, so a batch of four round trips
# could wait 20 ms: the intake answered 1,400-1,600 signed events/s with the CPUs 40 %
# idle. At 0.2 ms the same benchmark gave 1,870-2,010 events/s, the daemon's CPU per
# event fell (less time spinning for the lock), and p99 fell from 31 to 25-29 ms
# (benchmarks/https.py, 2 runs each, 2-core VM).
SWITCH_INTERVAL = 0.0002


def tune_gc() -> None:
    """Call once everything long-lived is built, before the first message."""
    gc.collect()
    gc.freeze()
    _, gen1, gen2 = gc.get_threshold()
    gc.set_threshold(GEN0_THRESHOLD, gen1, gen2)


def tune_threads() -> None:
    """Call once in a process whose threads wait on sockets beside threads that compute."""
    sys.setswitchinterval(SWITCH_INTERVAL)
