"""The replay's ingest: what is written to the stream, and what each record must end as.

Review texts from the reference data set as ``{"text": ...}``, plus about 1 % malformed
records of several kinds (:data:`KINESIS_POISON`, :data:`DYNAMODB_POISON`), and for
DynamoDB also updates and deletes (MODIFY and REMOVE events). Every record carries a tag,
its index in the ingest, saying what it was written as (the Kinesis partition key
``review-<n>``, the DynamoDB attribute ``op``; a REMOVE event carries none and reads as
:data:`DELETE_TAG`); :class:`RecordingInvoker` reads the tag back from every record the
function is handed.
"""

from __future__ import annotations

import json
import random
import threading
import time
from collections.abc import Callable
from typing import Any, Literal

from localtwin.embedded_aws import EmbeddedAWS
from training.dataset import load_reviews

#: Malformed Kinesis payloads, as a broken producer writes them; each must be quarantined.
KINESIS_POISON: dict[str, Callable[[str], bytes]] = {
    "bad UTF-8": lambda text: b'{"text": "caf\xe9 ' + text[:20].encode() + b'"}',
    "bad JSON": lambda text: b'{"text": "' + text[:20].encode(),
    "missing field": lambda text: json.dumps({"review": text}).encode(),
    "wrong type": lambda text: json.dumps({"text": len(text)}).encode(),
    "null field": lambda text: b'{"text": null}',
    "not an object": lambda text: json.dumps([text]).encode(),
}
#: Malformed DynamoDB items (their ``text`` attribute); each must be quarantined.
DYNAMODB_POISON: dict[str, Callable[[str], dict[str, Any]]] = {
    "missing attribute": lambda text: {"title": {"S": text}},
    "number attribute": lambda text: {"text": {"N": str(len(text))}},
    "list attribute": lambda text: {"text": {"L": [{"S": text}]}},
    "boolean attribute": lambda text: {"text": {"BOOL": True}},
}
Expect = Literal["predicted", "quarantined", "skipped"]
#: Tag of a REMOVE event (it carries no NewImage to read a tag from).
DELETE_TAG = -1


def kinesis_ingest(records: int, poison_share: float, seed: int) -> tuple[list[Expect], list[tuple[str, bytes]]]:
    """``records`` ``(partition_key, data)`` pairs and, per tag, what each must end as.

    The partition key ``review-<tag>`` is the tag (and spreads the records over the shards).
    """
    texts, _ = load_reviews()
    rng = random.Random(seed)
    kinds = list(KINESIS_POISON)
    expect: list[Expect] = []
    pairs = []
    for tag in range(records):
        text = rng.choice(texts)
        if rng.random() < poison_share:
            expect.append("quarantined")
            data = KINESIS_POISON[kinds[tag % len(kinds)]](text)
        else:
            expect.append("predicted")
            data = json.dumps({"text": text}).encode()
        pairs.append((f"review-{tag}", data))
    return expect, pairs


def dynamodb_ingest(
    records: int, poison_share: float, change_share: float, seed: int
) -> tuple[list[Expect], list[dict[str, Any]]]:
    """``records`` BatchWriteItem requests, each one stream event, and what each must end as.

    Puts of new items (INSERT), puts of a new text over a live item (MODIFY) and deletes
    of live items (REMOVE). Every item holds ``op`` (N): its tag, the request's index.
    """
    texts, _ = load_reviews()
    rng = random.Random(seed)
    kinds = list(DYNAMODB_POISON)
    expect: list[Expect] = []
    requests: list[dict[str, Any]] = []
    live: list[str] = []
    for tag in range(records):
        roll, text = rng.random(), rng.choice(texts)
        if live and change_share <= roll < 2 * change_share:
            expect.append("skipped")
            key = live.pop(rng.randrange(len(live)))
            requests.append({"DeleteRequest": {"Key": {"id": {"S": key}}}})
            continue
        if live and roll < change_share:
            key = live[rng.randrange(len(live))]
        else:
            key = f"review-{tag:07d}"
            live.append(key)
        if rng.random() < poison_share:
            expect.append("quarantined")
            attributes = DYNAMODB_POISON[kinds[tag % len(kinds)]](text)
        else:
            expect.append("predicted")
            attributes = {"text": {"S": text}}
        requests.append({"PutRequest": {"Item": {"id": {"S": key}, "op": {"N": str(tag)}, **attributes}}})
    return expect, requests


def write_kinesis(
    aws: EmbeddedAWS, stream_arn: str, pairs: list[tuple[str, bytes]], step: Callable[[int], None]
) -> int:
    """PutRecords in order (500 per call, throttled records written again), with progress.

    Returns how many records the stream accepted.
    """
    written = 0
    for start in range(0, len(pairs), 5_000):
        done = aws.put_kinesis_records(stream_arn, pairs[start : start + 5_000])
        written += done
        step(done)
    return written


def write_dynamodb(aws: EmbeddedAWS, table: str, requests: list[dict[str, Any]], step: Callable[[int], None]) -> int:
    """BatchWriteItem in order, 25 per call, never one key twice in a call, with progress.

    Returns how many writes the table accepted: all of them (or it raises).
    """
    dynamodb = aws.client("dynamodb")

    def flush(chunk: list[dict[str, Any]]) -> None:
        pending = chunk
        for attempt in range(10):
            pending = dynamodb.batch_write_item(RequestItems={table: pending}).get("UnprocessedItems", {}).get(table)
            if not pending:
                step(len(chunk))
                return
            time.sleep(0.05 * 2**attempt)
        raise RuntimeError(f"{len(pending)} writes were still unprocessed after 10 BatchWriteItem calls")

    chunk: list[dict[str, Any]] = []
    keys: set[str] = set()
    for request in requests:
        key = (request.get("PutRequest", {}).get("Item") or request["DeleteRequest"]["Key"])["id"]["S"]
        if key in keys or len(chunk) == 25:
            flush(chunk)
            chunk, keys = [], set()
        chunk.append(request)
        keys.add(key)
    if chunk:
        flush(chunk)
    return len(requests)


class RecordingInvoker:
    """Wraps an invoker (thread-safe); notes the tag of every record id it is handed.

    Parameters
    ----------
    invoker : Invoker, optional
        What runs the function; may be set after construction (``.invoker = ...``).
    source : {"kinesis", "dynamodb"}
    """

    def __init__(self, invoker: Any, source: str) -> None:
        self.invoker = invoker
        self.source = source
        self.tags: dict[str, int] = {}
        self._lock = threading.Lock()

    def _tag(self, record: dict[str, Any]) -> int:
        if self.source == "kinesis":
            return int(record["kinesis"]["partitionKey"].rpartition("-")[2])
        if record["eventName"] == "REMOVE":
            return DELETE_TAG
        return int(record["dynamodb"]["NewImage"]["op"]["N"])

    def invoke(self, event: dict[str, Any]) -> Any:
        tags = {record["eventID"]: self._tag(record) for record in event["Records"]}
        with self._lock:
            self.tags.update(tags)
        return self.invoker.invoke(event)
