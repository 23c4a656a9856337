"""Reading messages from files or stdin for ``ledbelly ingest``.

A document is a bare event (Canvas raw or a Caliper envelope) or an SQS message as
boto3's ``receive_message`` returns it. A line or file that is not valid JSON still
becomes a message, so it ends as a dead letter rather than vanishing.
"""

from __future__ import annotations

import itertools
import sys
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import orjson

from ledbelly.errors import MessageError
from ledbelly.message import Message, message_id_for
from ledbelly.parsers import decode
from ledbelly.transform.coerce import json_text

LINE_SUFFIXES = (".jsonl", ".ndjson")
# Reading releases the interpreter lock, and getting it back can take a thread switch
# interval (5 ms) while the writer thread works: read in large pieces, so seldom.
READ_BUFFER = 1 << 20
BOM = "\ufeff"


def message_from_document(doc: Any, text: str | None = None) -> Message:
    """One decoded document as a ``Message``; ``text`` is its source text, for hashing."""
    if (
        isinstance(doc, dict)
        and "Body" in doc
        and ("MessageId" in doc or "MessageAttributes" in doc)
    ):
        body = doc["Body"] if isinstance(doc["Body"], str) else json_text(doc["Body"])
        attrs = _attributes(doc.get("MessageAttributes"))
        return Message(
            message_id_for(doc.get("MessageId"), body), body, attrs, handle=doc.get("ReceiptHandle")
        )
    body = text if text is not None else _canonical(doc)
    return Message(message_id_for(None, body), body, {}, payload=doc)


def _canonical(doc: Any) -> str:
    try:
        return orjson.dumps(doc, option=orjson.OPT_SORT_KEYS).decode("utf-8")
    except (TypeError, orjson.JSONEncodeError):
        import json

        return json.dumps(doc, sort_keys=True, ensure_ascii=False, separators=(",", ":"))


def _attributes(raw: Any) -> dict[str, str]:
    out: dict[str, str] = {}
    if isinstance(raw, dict):
        for key, value in raw.items():
            if isinstance(value, dict) and isinstance(value.get("StringValue"), str):
                out[str(key)] = value["StringValue"]
            elif isinstance(value, str):
                out[str(key)] = value
    return out


def _undecodable(text: str) -> Message:
    """Text that is not JSON: a message whose body is that text, bound for the dead letters."""
    return Message(message_id_for(None, text), text, {})


def read_lines(lines: Iterable[str | bytes]) -> Iterator[Message]:
    """One message per line. A line read as bytes goes straight to orjson, which also
    checks it is UTF-8; a line it refuses (a BOM, not UTF-8, not JSON, empty) takes the
    general path as text, so every line ends as it would have."""
    for line in lines:
        if isinstance(line, bytes):
            message = _from_utf8_line(line)
            if message is not None:
                yield message
                continue
            line = line.decode("utf-8", "surrogateescape")
        message = _from_text_line(line)
        if message is not None:
            yield message


def _from_utf8_line(line: bytes) -> Message | None:
    try:
        doc = orjson.loads(line)
    except orjson.JSONDecodeError:
        return None
    return message_from_document(doc, None if _is_sqs(doc) else line.decode("utf-8").strip())


def _from_text_line(line: str) -> Message | None:
    text = line.strip()
    if text[:1] == BOM:  # a file saved by an editor that marks UTF-8
        text = text[1:].strip()
    if not text:
        return None
    try:
        doc = decode(text)
    except MessageError:
        return _undecodable(text)
    return message_from_document(doc, text if not _is_sqs(doc) else None)


def _is_sqs(doc: Any) -> bool:
    return isinstance(doc, dict) and "Body" in doc


def read_document(text: str) -> Iterator[Message]:
    """A ``.json`` file: one document, or an array of documents."""
    try:
        doc = decode(text)
    except MessageError:
        yield _undecodable(text)
        return
    if isinstance(doc, list):
        for item in doc:
            yield message_from_document(item)
    else:
        yield message_from_document(doc, text.strip() if not _is_sqs(doc) else None)


def read_path(path: str) -> Iterator[Message]:
    """Messages from a file (by its suffix) or from stdin (``-``, read as JSON lines)."""
    if path == "-":
        # Lines end at \n only: a bare \r inside a JSON line is part of that line.
        yield from read_lines(sys.stdin.buffer)
        return
    p = Path(path)
    if p.suffix.lower() in LINE_SUFFIXES:
        with open(p, "rb", buffering=READ_BUFFER) as fh:  # lines end at \n only, as above
            yield from read_lines(fh)
    else:
        text = p.read_text(encoding="utf-8", errors="surrogateescape")
        yield from read_document(text[1:] if text[:1] == BOM else text)


def is_line_file(path: str) -> bool:
    """A JSON lines file, which ``ingest`` can split among processes by byte ranges."""
    return path != "-" and Path(path).suffix.lower() in LINE_SUFFIXES


def read_range(path: str, start: int, end: int) -> Iterator[Message]:
    """Messages from the lines of a JSON lines file that begin at a byte in [start, end).

    Ranges that meet end to end cover every line exactly once, wherever they cut: a line
    cut by ``start`` belongs to the range before, which reads past its own end to finish it.
    """
    with open(path, "rb", buffering=READ_BUFFER) as fh:
        if start > 0:
            fh.seek(start - 1)
            fh.readline()  # the rest of a line begun before start, or just its newline
        yield from read_lines(_lines_until(fh, end))


def _lines_until(fh: Any, end: int) -> Iterator[bytes]:
    at = fh.tell()  # counted from here on: tell() per line would cost a system call each
    for raw in fh:
        if at >= end:
            return
        at += len(raw)
        yield raw


class IterSource:
    """Messages drawn from an iterator (files, stdin) behind the ``Source`` interface.

    ``ingest`` consumes it like the daemon consumes a queue, and stops at the first
    empty ``receive``: the input is done. Acknowledging needs nothing, and a batch that
    did not commit is not handed back: ``ingest`` stops with the error, and running the
    same command again finishes the job, as the ledger skips what is already in.
    """

    def __init__(self, messages: Iterable[Message], name: str = "files") -> None:
        self.name = name
        self._messages = iter(messages)

    def receive(self, max_messages: int, wait_seconds: float) -> list[Message]:
        return list(itertools.islice(self._messages, max_messages))

    def ack(self, messages: Sequence[Message]) -> list[Message]:
        return []

    def release(self, messages: Sequence[Message], delay: int = 0) -> None:
        return None  # nothing to hand back to: running ingest again finishes the job

    def extend(self, messages: Sequence[Message], seconds: int) -> None:
        return None

    def close(self) -> None:
        close = getattr(self._messages, "close", None)
        if close is not None:
            close()  # a generator holding an open file closes it now
