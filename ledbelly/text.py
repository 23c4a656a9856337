"""Untrusted text made safe for a line: of a log file, a YAML comment, a terminal.

Event names, field names and values come from payloads and SQS attributes, which anyone
who can send to the queue controls. A newline in one would end a log line early and
forge the next, or end a YAML comment and write a key. ``safe_text`` escapes every
character that could do that, and backslashes, so the result reads back unambiguously.
"""

from __future__ import annotations

import re

_UNSAFE = re.compile(r"[\\\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]")
_NAMED = {"\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    return _NAMED.get(char) or f"\\u{ord(char):04x}"


def safe_text(value: object, limit: int | None = None) -> str:
    """``value`` as one line of printable text, cut to ``limit`` characters if given."""
    text = value if isinstance(value, str) else str(value)
    if limit is not None and len(text) > limit:
        text = text[:limit] + "..."
    return _UNSAFE.sub(_escape, text)
