"""The unit of work: one message as a source hands it over."""

from __future__ import annotations

import hashlib
import re
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ledbelly.sources import Source

_SANE_ID = re.compile(r"^[A-Za-z0-9_.:\-]{1,100}$")


@dataclass(slots=True, eq=False)
class Message:
    """One Live Event message: its id, raw body and SQS attributes.

    ``payload`` may hold the already-decoded body when a source had to parse it anyway
    (JSON lines), so it is not decoded twice. ``handle`` is the source's own token for
    acknowledging the message (an SQS receipt handle, say), and ``source`` the source it
    came from, so it is acknowledged or handed back there. Messages compare by identity:
    two deliveries of one message are two messages until the ledger says otherwise.
    """

    message_id: str
    body: str
    attributes: dict[str, str] = field(default_factory=dict)
    payload: Any = None
    handle: Any = None
    queue: str | None = None
    received_at: float = field(default_factory=time.time)
    sent_at: float | None = None
    source: Source | None = None


def body_hash(body: str | bytes) -> str:
    """A stable id for a message without an SQS MessageId: the SHA-256 of its body."""
    data = body.encode("utf-8", "surrogatepass") if isinstance(body, str) else body
    return "sha256:" + hashlib.sha256(data).hexdigest()[:64]


def message_id_for(candidate: Any, body: str | bytes) -> str:
    """The ledger key: a sane SQS ``MessageId`` if given, otherwise the body hash."""
    if isinstance(candidate, str) and _SANE_ID.match(candidate):
        return candidate
    return body_hash(body)


def sqs_form(msg: Message) -> dict[str, Any]:
    """A message as boto3's ``receive_message`` shows it, so ``replay`` can read it back."""
    return {
        "MessageId": msg.message_id,
        "Body": msg.body,
        "MessageAttributes": {
            k: {"StringValue": v, "DataType": "String"} for k, v in msg.attributes.items()
        },
    }
