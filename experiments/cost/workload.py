"""Synthetic Kinesis events of each batch size, within Lambda's 6 MB invocation payload.

Each batch holds real review snippets from the reference data set
(:func:`training.dataset.load_reviews`), in a fixed shuffled order, as JSON ``{"text": …}``
Kinesis records (:func:`testing.events.kinesis_event`) on shard ``shardId-cost-experiment``,
so their record ids can never collide with a real stream's results.

At this data set's lengths (median ~110 characters) a Kinesis record is ~680 bytes of
event JSON, so about 9,200 records fill the 6 MB cap (docs/aws-notes.md §2); a batch of
10,000 does not fit, and Lambda's event source mapping would deliver fewer records.
To still measure a batch of that size, its texts are cut (at a word boundary) to the
longest length that fits; :attr:`Workload.text_chars_max` says so, and the report notes it.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from typing import Any

from localtwin.runtime.report import PAYLOAD_LIMIT_BYTES
from testing.events import SAMPLE_TEXTS, kinesis_event

SHARD = "shardId-cost-experiment"
TEXT_FIELD = "text"


@dataclass(frozen=True)
class Workload:
    """One batch: the event and what it carries."""

    batch_size: int
    event: dict[str, Any]
    payload_bytes: int
    mean_text_chars: float
    text_chars_max: int | None  # texts cut to this many characters to fit 6 MB; None = as in the data set


def text_pool(seed: int = 0) -> list[str]:
    """The reference data set's review snippets, shuffled with ``seed``.

    Falls back to :data:`testing.events.SAMPLE_TEXTS` if the data set cannot be fetched.
    """
    try:
        from training.dataset import load_reviews

        texts = load_reviews()[0]
    except Exception:  # offline and not cached: still runnable, the report shows the length
        texts = list(SAMPLE_TEXTS)
    texts = list(texts)
    random.Random(seed).shuffle(texts)
    return texts


def _cut(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    head = text[:limit]
    return head.rsplit(" ", 1)[0] if " " in head else head


def kinesis_batch(texts: list[str]) -> dict[str, Any]:
    """A Kinesis event whose records carry ``{"text": t}`` for each of ``texts``.

    As a plain ``dict``, the type the local runtime's ``invoke`` takes.
    """
    return dict(kinesis_event(texts, TEXT_FIELD, shard=SHARD))


def _size(event: dict[str, Any]) -> int:
    return len(json.dumps(event).encode())


def make_workload(batch_size: int, pool: list[str], limit: int = PAYLOAD_LIMIT_BYTES) -> Workload:
    """The event for ``batch_size`` records, texts cut if needed so the JSON fits ``limit`` bytes.

    Raises
    ------
    ValueError
        If even one-character texts do not fit.
    """
    if batch_size < 1 or not pool:
        raise ValueError(f"batch_size={batch_size} must be >= 1 and the text pool non-empty")
    texts = [pool[i % len(pool)] for i in range(batch_size)]
    event = kinesis_batch(texts)
    size = _size(event)
    cut_to: int | None = None
    if size > limit:
        low, high = 1, max(len(t) for t in texts)
        if _size(kinesis_batch([_cut(t, low) for t in texts])) > limit:
            raise ValueError(f"{batch_size} records do not fit {limit:,} bytes even with 1-character texts")
        while low < high:  # the longest cut that fits
            middle = (low + high + 1) // 2
            if _size(kinesis_batch([_cut(t, middle) for t in texts])) <= limit:
                low = middle
            else:
                high = middle - 1
        cut_to = low
        texts = [_cut(t, cut_to) for t in texts]
        event = kinesis_batch(texts)
        size = _size(event)
    return Workload(batch_size, event, size, sum(map(len, texts)) / len(texts), cut_to)


def max_records_that_fit(pool: list[str], limit: int = PAYLOAD_LIMIT_BYTES) -> int:
    """How many records of uncut texts (the pool, in order) fit one payload."""
    bytes_per_record = _size(kinesis_batch(pool[:1000])) / min(1000, len(pool))
    return int(limit // bytes_per_record)
