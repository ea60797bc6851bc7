"""Where poison records go: a log line and a metric (always), and optionally SQS or S3.

A poison record is one the model can never score (bad base64, bad JSON, a missing or
wrong-typed field, …). It is taken out of the stream so it never blocks its shard,
and kept with its identifier and reason so nothing is lost silently. Every quarantined
record gets a WARNING log line (no payload) and counts in ``RecordsQuarantined``
(:mod:`inference.batch`); the SQS message and the S3 object also carry the raw
record (and any detail that may quote it, such as the model's error message), so it
can be repaired and replayed.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any, Protocol

from .sinks import aws_client

logger = logging.getLogger("inference")

#: SQS messages are capped at 256 KiB; larger raw records are described, not attached.
MAX_ATTACHED_RECORD_BYTES = 200_000


@dataclass(slots=True)
class QuarantineItem:
    index: int
    record_id: str
    sequence_number: str | None
    source_arn: str
    reason: str
    record: Any
    #: May quote the record (the model's error message): kept here, never logged.
    detail: str = ""

    def body(self, attach_limit: int | None = MAX_ATTACHED_RECORD_BYTES) -> str:
        """The destination's JSON document: id, sequence number, source, reason, detail
        and the raw record.

        The record is serialised once, and spliced in as it is: a record nested as deep
        as the event parser allows is not nested one level deeper (where ``json.dumps``
        could hit the recursion limit). Over ``attach_limit`` characters, the record is
        replaced by ``record_omitted_bytes``; a record that cannot be serialised at all
        (only an in-process caller can build one) by ``record_omitted``.
        """
        doc: dict[str, Any] = {
            "record_id": self.record_id,
            "sequence_number": self.sequence_number,
            "source_arn": self.source_arn,
            "reason": self.reason,
        }
        if self.detail:
            doc["detail"] = self.detail
        try:
            raw = json.dumps(self.record, default=str)
        except (RecursionError, ValueError, TypeError) as exc:
            doc["record_omitted"] = f"not serialisable as JSON ({type(exc).__name__})"
            return json.dumps(doc, default=str)
        if attach_limit is not None and len(raw) > attach_limit:
            doc["record_omitted_bytes"] = len(raw)
            return json.dumps(doc, default=str)
        return json.dumps(doc, default=str)[:-1] + ', "record": ' + raw + "}"


class Quarantine(Protocol):
    def send(self, items: list[QuarantineItem]) -> set[int]:
        """Keep ``items``; return the ``index`` of every item that could not be kept."""


class LogQuarantine:
    """Default: nothing beyond the WARNING log line and the metric that every quarantined
    record gets from the batch processor (id and reason, no payload)."""

    def send(self, items: list[QuarantineItem]) -> set[int]:
        return set()


class SQSQuarantine:
    """``QUARANTINE_QUEUE_URL``: one message per poison record, sent in batches of 10."""

    def __init__(self, queue_url: str, client: Any = None) -> None:
        self.queue_url = queue_url
        self.client = client or aws_client("sqs")

    def send(self, items: list[QuarantineItem]) -> set[int]:
        failed: set[int] = set()
        for chunk in _sqs_batches([(item, item.body()) for item in items]):
            entries = [{"Id": str(n), "MessageBody": body} for n, (_, body) in enumerate(chunk)]
            try:
                response = self.client.send_message_batch(QueueUrl=self.queue_url, Entries=entries)
            except Exception as exc:
                logger.error("quarantine queue send failed", extra={"error": repr(exc)[:300]})
                failed.update(item.index for item, _ in chunk)
                continue
            failed.update(chunk[int(entry["Id"])][0].index for entry in response.get("Failed", []))
        return failed


def _sqs_batches(bodies: list[tuple[QuarantineItem, str]]) -> list[list[tuple[QuarantineItem, str]]]:
    """Group messages into SendMessageBatch calls: at most 10, and 256 KiB in all."""
    batches: list[list[tuple[QuarantineItem, str]]] = []
    size = 0
    for pair in bodies:
        length = len(pair[1].encode())
        if not batches or len(batches[-1]) == 10 or size + length > 250_000:
            batches.append([])
            size = 0
        batches[-1].append(pair)
        size += length
    return batches


class S3Quarantine:
    """``QUARANTINE_BUCKET``: one object per poison record, ``<prefix><record id>.json``."""

    def __init__(self, bucket: str, prefix: str = "quarantine/", client: Any = None) -> None:
        self.bucket = bucket
        self.prefix = prefix
        self.client = client or aws_client("s3")

    def send(self, items: list[QuarantineItem]) -> set[int]:
        failed: set[int] = set()
        for item in items:
            body = item.body(attach_limit=None).encode()
            try:
                self.client.put_object(Bucket=self.bucket, Key=f"{self.prefix}{item.record_id}.json", Body=body)
            except Exception as exc:
                logger.error("quarantine object write failed", extra={"error": repr(exc)[:300]})
                failed.add(item.index)
        return failed
