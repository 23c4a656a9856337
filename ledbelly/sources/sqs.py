"""Amazon SQS behind the ``Source`` interface.

botocore's errors are mapped here, at one boundary, into ``SourceUnavailable`` (retry).
A message is deleted only by ``ack``, which the daemon calls after its rows committed;
failed delete entries are retried, and any that still fail come back later and are
absorbed by the ledger.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from ledbelly.config import AwsSettings, QueueSettings
from ledbelly.errors import ConfigError, SourceUnavailable
from ledbelly.message import Message, message_id_for

log = logging.getLogger(__name__)
ACK_ATTEMPTS = 3
ACK_CONCURRENCY = 8  # batch calls (of ten messages each) in flight at once per queue
MAX_VISIBILITY = 43200  # SQS's longest visibility timeout, 12 hours


def sqs_client(aws: AwsSettings, read_timeout: float = 30.0) -> Any:
    """A thread-safe SQS client; boto3's default credential chain unless keys are given."""
    session = boto3.session.Session(
        aws_access_key_id=aws.access_key_id,
        aws_secret_access_key=aws.secret_access_key,
        aws_session_token=aws.session_token,
        profile_name=aws.profile,
        region_name=aws.region or "us-east-1",
    )
    config = Config(
        connect_timeout=10,
        read_timeout=read_timeout,
        retries={"max_attempts": 4, "mode": "standard"},
        max_pool_connections=50,
    )
    return session.client("sqs", endpoint_url=aws.endpoint_url, config=config)


class SqsSource:
    """One queue. ``receive`` long-polls; ``ack``, ``release``, ``extend`` work in batches of 10."""

    def __init__(self, client: Any, queue: QueueSettings) -> None:
        self.client = client
        self.settings = queue
        self.name = queue.name
        self.url = self._resolve(queue)
        self._pool: ThreadPoolExecutor | None = None  # for calls side by side, made on demand
        self._pool_lock = threading.Lock()

    def _resolve(self, queue: QueueSettings) -> str:
        if queue.is_url:
            return queue.name
        try:
            return str(self.client.get_queue_url(QueueName=queue.name)["QueueUrl"])
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if "NonExistentQueue" in code or code == "QueueDoesNotExist":
                raise ConfigError(f"SQS queue {queue.name!r} does not exist") from None
            raise SourceUnavailable(f"cannot look up queue {queue.name!r}: {exc}") from exc
        except BotoCoreError as exc:
            raise SourceUnavailable(f"cannot reach SQS: {exc}") from exc

    def receive(self, max_messages: int, wait_seconds: float) -> list[Message]:
        try:
            resp = self.client.receive_message(
                QueueUrl=self.url,
                MaxNumberOfMessages=max(1, min(10, max_messages)),
                WaitTimeSeconds=int(max(0, min(20, wait_seconds))),
                VisibilityTimeout=self.settings.visibility_timeout,
                MessageAttributeNames=["All"],
                MessageSystemAttributeNames=["SentTimestamp"],
            )
        except (ClientError, BotoCoreError) as exc:
            raise SourceUnavailable(f"receive from {self.name}: {exc}") from exc
        now = time.time()
        return [self._message(raw, now) for raw in resp.get("Messages", [])]

    def _message(self, raw: dict[str, Any], now: float) -> Message:
        body = raw.get("Body", "")
        attrs = {
            k: v["StringValue"]
            for k, v in raw.get("MessageAttributes", {}).items()
            if isinstance(v, dict) and "StringValue" in v
        }
        sent = raw.get("Attributes", {}).get("SentTimestamp")
        msg = Message(
            message_id_for(raw.get("MessageId"), body),
            body,
            attrs,
            handle=raw["ReceiptHandle"],
            queue=self.name,
            received_at=now,
        )
        msg.sent_at = int(sent) / 1000 if sent else None
        return msg

    def ack(self, messages: Sequence[Message]) -> list[Message]:
        """Delete, checking each entry and retrying failures; returns what never got deleted."""
        pending = list(messages)
        for attempt in range(ACK_ATTEMPTS):
            pending = list(self._batched("delete_message_batch", pending, None))
            if not pending:
                return []
            time.sleep(0.2 * (attempt + 1))
        log.warning(
            "could not delete %d messages from %s; they will be redelivered and "
            "skipped by the ledger",
            len(pending),
            self.name,
        )
        return pending

    def release(self, messages: Sequence[Message], delay: int = 0) -> None:
        """Visible again after ``delay`` seconds; a message already gone is no failure."""
        seconds = max(0, min(MAX_VISIBILITY, int(delay)))
        self._batched("change_message_visibility_batch", list(messages), seconds)

    def extend(self, messages: Sequence[Message], seconds: int) -> dict[Message, str]:
        """Every failed entry, with SQS's reason: a stale receipt handle, or the call failed."""
        return self._batched(
            "change_message_visibility_batch", list(messages), seconds, extending=True
        )

    def _batched(
        self,
        operation: str,
        messages: list[Message],
        visibility: int | None,
        extending: bool = False,
    ) -> dict[Message, str]:
        """``operation`` over ``messages`` in calls of ten; the messages it failed on, each
        with the reason. A release counts a sender fault (the message is already deleted)
        as done; an extension does not: that message may be another consumer's now.

        The calls run side by side: a writer acknowledging a batch of 500 would otherwise
        wait for 50 round trips one after another before it takes the next batch.
        """
        chunks = [messages[i : i + 10] for i in range(0, len(messages), 10)]
        failed: dict[Message, str] = {}
        if len(chunks) <= 1:
            for c in chunks:
                failed.update(self._call(operation, c, visibility, extending))
            return failed
        with self._pool_lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(
                    max_workers=ACK_CONCURRENCY, thread_name_prefix=f"ledbelly-sqs-{self.name}"
                )
            pool = self._pool
        for result in pool.map(lambda c: self._call(operation, c, visibility, extending), chunks):
            failed.update(result)
        return failed

    def _call(
        self, operation: str, chunk: list[Message], visibility: int | None, extending: bool
    ) -> dict[Message, str]:
        entries = []
        for n, m in enumerate(chunk):
            entry: dict[str, Any] = {"Id": str(n), "ReceiptHandle": m.handle}
            if visibility is not None:
                entry["VisibilityTimeout"] = visibility
            entries.append(entry)
        try:
            resp = getattr(self.client, operation)(QueueUrl=self.url, Entries=entries)
        except (ClientError, BotoCoreError) as exc:
            if not extending:  # the daemon logs an extension's failures, once
                log.warning("%s on %s failed: %s", operation, self.name, exc)
            return dict.fromkeys(chunk, f"{operation} failed: {exc}")
        release = operation != "delete_message_batch" and not extending
        return {
            chunk[int(f["Id"])]: f"{f.get('Code', 'error')}: {f.get('Message', '')}".rstrip(": ")
            for f in resp.get("Failed", [])
            if not (f.get("SenderFault") and release)
        }

    def close(self) -> None:
        with self._pool_lock:
            if self._pool is not None:
                self._pool.shutdown(wait=True)
                self._pool = None
