"""Synthetic Canvas Live Events for demos, tests and benchmarks.

Real Live Events contain student data, so ledbelly cannot ship recorded traffic. This
package fabricates events shaped like Instructure's documented examples (Canvas raw and
IMS Caliper 1.1) for a fictional district at ``lms.example.edu``. Output depends only
on ``(n, seed, fmt)`` so tests are reproducible, and generation streams fast enough
(well above 20k messages/second) that benchmarks measure ledbelly rather than this code.

Layout: ``data/*.json`` holds the literal tables (names, courses, event mix...), read by
:mod:`.tables`; :mod:`.world` builds the district per seed; :mod:`.state` holds one
stream's RNG and the draws both formats share; :mod:`.canvas_events` and
:mod:`.caliper_events` hold one builder per event in a name-to-builder registry;
:mod:`.stream` dispatches through the registries and wraps payloads as SQS messages.
"""

from __future__ import annotations

from ledbelly.simulate.stream import (
    CALIPER_WEIGHTS,
    EVENT_WEIGHTS,
    generate_events,
    generate_messages,
)

__all__ = ["CALIPER_WEIGHTS", "EVENT_WEIGHTS", "generate_events", "generate_messages"]
