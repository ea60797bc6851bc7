"""Where predictions go: the response, a DynamoDB table, a Kinesis stream, or S3.

Every sink takes the batch's results (a sequence of :class:`ResultItem`; the batch processor
passes :class:`Results`, the same as parallel lists) and returns the ``index`` of each result it
could not write; the batch processor turns those into ``batchItemFailures``. Writes
are batched and keyed by ``record_id`` so a redelivered record overwrites its earlier
result (DynamoDB, S3). A Kinesis stream is append-only: a redelivered record is
appended again with the same partition key and ``record_id``, for consumers to
deduplicate.

Every sink writes the same document per record (:meth:`ResultItem.as_json`): ``record_id``,
``sequence_number``, ``source_arn``, the result's fields for the model's task (docs/model-layer.md,
"Results"), ``model_name`` and ``model_version``, and the record's ``key`` when ``RESULT_KEYS`` asks for
it (:mod:`inference.result_keys`; the response carries it beside the outputs too). Numbers are Python ``int`` / ``float``
(finite: the model refuses others); the DynamoDB sink writes them as ``Decimal`` from their
shortest ``repr``, a float of magnitude below 1e-130 (DynamoDB's smallest) as ``0``, and
leaves out a ``None`` field (a classifier without ``predict_proba`` has no ``probability``).
"""

from __future__ import annotations

import json
import logging
import time
from bisect import bisect_left
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Protocol, overload

logger = logging.getLogger("inference")

#: Attempts for the items a batch API left unprocessed (throttling), with backoff.
BATCH_ATTEMPTS = 3
#: Floats smaller in magnitude than DynamoDB's smallest number (1e-130) are written as 0.
DYNAMODB_SMALLEST = 1e-130


@dataclass(slots=True)
class ResultItem:
    """One prediction, as written to every sink."""

    index: int
    record_id: str
    sequence_number: str
    source_arn: str
    #: The result's fields for the model's task (:meth:`inference.model.Predictions.results`).
    outputs: dict[str, Any]
    model_name: str
    model_version: str
    #: The source record's own key, when ``RESULT_KEYS`` asks for it (:mod:`inference.result_keys`).
    key: dict[str, Any] | None = None

    def as_json(self) -> dict[str, Any]:
        """The document every sink writes for this record (``key`` only when there is one)."""
        doc = {
            "record_id": self.record_id,
            "sequence_number": self.sequence_number,
            "source_arn": self.source_arn,
            **self.outputs,
            "model_name": self.model_name,
            "model_version": self.model_version,
        }
        if self.key is not None:
            doc["key"] = self.key
        return doc


class Results(Sequence[ResultItem]):
    """A batch's results as parallel lists (one entry per result, in ``indices`` order,
    which ascends); reading a position makes its :class:`ResultItem`.

    What one result a record costs is a few list entries, not an object: the response
    (:class:`ResponseSink`) is built from the lists directly.
    """

    __slots__ = (
        "indices",
        "record_ids",
        "sequence_numbers",
        "source_arns",
        "outputs",
        "model_name",
        "model_version",
        "keys",
    )

    def __init__(
        self,
        indices: list[int],
        record_ids: list[str],
        sequence_numbers: list[str],
        source_arns: list[str],
        outputs: list[dict[str, Any]],
        model_name: str,
        model_version: str,
        keys: list[dict[str, Any] | None] | None = None,
    ) -> None:
        self.indices, self.record_ids, self.sequence_numbers = indices, record_ids, sequence_numbers
        self.source_arns, self.outputs = source_arns, outputs
        self.model_name, self.model_version = model_name, model_version
        #: Each result's ``key`` (:attr:`ResultItem.key`); ``None``: no result has one.
        self.keys = keys

    def __len__(self) -> int:
        return len(self.indices)

    @overload
    def __getitem__(self, position: int) -> ResultItem: ...

    @overload
    def __getitem__(self, position: slice) -> list[ResultItem]: ...

    def __getitem__(self, position: int | slice) -> ResultItem | list[ResultItem]:
        if isinstance(position, slice):
            return [self[i] for i in range(*position.indices(len(self)))]
        if position < 0:
            position += len(self)
        if not 0 <= position < len(self):
            raise IndexError("results index out of range")
        return ResultItem(
            self.indices[position],
            self.record_ids[position],
            self.sequence_numbers[position],
            self.source_arns[position],
            self.outputs[position],
            self.model_name,
            self.model_version,
            None if self.keys is None else self.keys[position],
        )

    def before(self, cutoff: int) -> Results:
        """The results of the records before position ``cutoff`` of the batch."""
        end = bisect_left(self.indices, cutoff)
        if end == len(self.indices):
            return self
        return Results(
            self.indices[:end],
            self.record_ids[:end],
            self.sequence_numbers[:end],
            self.source_arns[:end],
            self.outputs[:end],
            self.model_name,
            self.model_version,
            None if self.keys is None else self.keys[:end],
        )


def dynamodb_value(value: Any) -> Any:
    """``value`` with every float as the ``Decimal`` DynamoDB stores (lists and maps too).

    ``Decimal(repr(x))`` keeps the float's shortest round-trip digits (at most 17, within
    DynamoDB's 38); a float below :data:`DYNAMODB_SMALLEST` in magnitude becomes ``0``.
    """
    if isinstance(value, float):
        return Decimal(0) if abs(value) < DYNAMODB_SMALLEST else Decimal(repr(value))
    if isinstance(value, list):
        return [dynamodb_value(v) for v in value]
    if isinstance(value, dict):
        return {k: dynamodb_value(v) for k, v in value.items()}
    return value


class ResultSink(Protocol):
    def write(self, items: Sequence[ResultItem]) -> set[int]:
        """Write ``items``; return the ``index`` of every item not written."""


def aws_client(service: str) -> Any:
    """A boto3 client with standard retries (throttling is retried with backoff), without client-side validation.

    ``parameter_validation=False``: botocore's check of every parameter against the
    service model before sending costs ~1.2 ms of CPU per ``BatchWriteItem`` of 25 items
    (~25 % of the call's client CPU, measured in docs/measurements.md), billed on every
    write. The requests here are built by this package (typed, chunked to the service's
    limits), and the services validate what they receive anyway: a malformed request is
    still refused, by the service (``ValidationException`` / ``SerializationException``, a
    ``ClientError`` the sinks handle like any failed write) instead of by botocore.
    """
    import boto3
    from botocore.config import Config

    config = Config(retries={"mode": "standard", "max_attempts": 3}, parameter_validation=False)
    return boto3.client(service, config=config)


def _backoff(attempt: int) -> None:
    """Sleep before the next attempt (none after the last one)."""
    if attempt < BATCH_ATTEMPTS - 1:
        time.sleep(0.05 * 2**attempt)


def _rest_failed(chunks: list[list[ResultItem]], after: int) -> set[int]:
    """Items of the chunks after a failed one: past the cutoff, so not written at all.

    Lambda redelivers everything from the first failure on, so writing them now would
    only duplicate work (and, on an append-only stream, results).
    """
    return {item.index for chunk in chunks[after + 1 :] for item in chunk}


def _chunks[T](items: Sequence[T], size: int) -> list[list[T]]:
    return [list(items[i : i + size]) for i in range(0, len(items), size)]


class ResponseSink:
    """No sink configured: predictions travel back in the response, keyed by record id."""

    def __init__(self) -> None:
        self.predictions: dict[str, dict[str, Any]] = {}

    def write(self, items: Sequence[ResultItem]) -> set[int]:
        if isinstance(items, Results) and items.keys is None:  # the lists as they are
            self.predictions.update(zip(items.record_ids, items.outputs))
            return set()
        for item in items:
            self.predictions[item.record_id] = item.outputs if item.key is None else {**item.outputs, "key": item.key}
        return set()


class DynamoDBSink:
    """``RESULTS_TABLE``: one item per record, partition key ``record_id`` (string)."""

    def __init__(self, table: str, client: Any = None) -> None:
        self.table = table
        self.client = client or aws_client("dynamodb")
        from boto3.dynamodb.types import TypeSerializer

        self._serialize = TypeSerializer().serialize

    def _item(self, item: ResultItem) -> dict[str, Any]:
        return {
            key: self._serialize(dynamodb_value(value)) for key, value in item.as_json().items() if value is not None
        }

    def write(self, items: Sequence[ResultItem]) -> set[int]:
        chunks = _chunks(items, 25)
        for n, chunk in enumerate(chunks):
            by_id = {item.record_id: item for item in chunk}  # a duplicate id in one call is rejected
            pending = [{"PutRequest": {"Item": self._item(item)}} for item in by_id.values()]
            for attempt in range(BATCH_ATTEMPTS):
                try:
                    response = self.client.batch_write_item(RequestItems={self.table: pending})
                except Exception as exc:
                    logger.error("results table write failed", extra={"error": repr(exc)[:300]})
                    break
                pending = response.get("UnprocessedItems", {}).get(self.table, [])
                if not pending:
                    break
                _backoff(attempt)
            if pending:
                left = {req["PutRequest"]["Item"]["record_id"]["S"] for req in pending}
                return {item.index for item in chunk if item.record_id in left} | _rest_failed(chunks, n)
        return set()


class KinesisSink:
    """``RESULTS_STREAM``: one JSON record per prediction, partition key ``record_id``."""

    def __init__(self, stream: str, client: Any = None) -> None:
        self.stream = stream
        self.client = client or aws_client("kinesis")

    def write(self, items: Sequence[ResultItem]) -> set[int]:
        chunks = _chunks(items, 500)
        for n, chunk in enumerate(chunks):
            pending = chunk
            for attempt in range(BATCH_ATTEMPTS):
                entries = [
                    {"Data": json.dumps(item.as_json()).encode(), "PartitionKey": item.record_id[:256]}
                    for item in pending
                ]
                try:
                    response = self.client.put_records(StreamName=self.stream, Records=entries)
                except Exception as exc:
                    logger.error("results stream write failed", extra={"error": repr(exc)[:300]})
                    break
                pending = [item for item, res in zip(pending, response["Records"]) if res.get("ErrorCode")]
                if not pending:
                    break
                _backoff(attempt)
            if pending:
                return {item.index for item in pending} | _rest_failed(chunks, n)
        return set()


class S3Sink:
    """``RESULTS_BUCKET``: one JSON Lines object per batch.

    The key is ``<prefix><source>/<first record id>.jsonl``: a batch redelivered from the
    same record overwrites its object, and the batch processor only hands this sink
    records before the first failure, so no record lands in two objects.
    """

    def __init__(self, bucket: str, prefix: str = "predictions/", client: Any = None) -> None:
        self.bucket = bucket
        self.prefix = prefix
        self.client = client or aws_client("s3")

    def write(self, items: Sequence[ResultItem]) -> set[int]:
        if not items:
            return set()
        first = items[0]
        source = first.source_arn.split("/")[1] if "/" in first.source_arn else "unknown-source"
        key = f"{self.prefix}{source}/{first.record_id}.jsonl"
        body = "".join(json.dumps(item.as_json()) + "\n" for item in items).encode()
        try:
            self.client.put_object(Bucket=self.bucket, Key=key, Body=body, ContentType="application/x-ndjson")
        except Exception as exc:
            logger.error("results object write failed", extra={"error": repr(exc)[:300], "key": key})
            return {item.index for item in items}
        return set()
