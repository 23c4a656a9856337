"""``live_stream``, LEDbelly's table of every Canvas raw event: ledbelly's first extension.

On by default (``live_stream: false`` in the run configuration, or ``ingest
--no-live-stream``, turns it off). For each Canvas raw event it adds a row to every
schema marked ``stream: true`` (``schemas/custom/live_stream.yml``), built by the
processor's row builder from the values the event's own row already converted, so the
rows are what they were before it was an extension, at the same cost.
"""

from __future__ import annotations

from ledbelly.extensions.base import Extension, ExtensionContext
from ledbelly.outcome import EventRows
from ledbelly.schema.model import TableDef


class LiveStream(Extension):
    def __init__(self) -> None:
        self._tables: tuple[TableDef, ...] = ()

    def start(self, context: ExtensionContext) -> None:
        self._tables = context.catalog.stream_tables

    def event_rows(self, event: EventRows) -> None:
        if event.format == "canvas":
            for table in self._tables:
                event.add_row(table)
