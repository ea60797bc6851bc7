"""The stream-accounting oracle: what must come of one stream batch, from what each record is.

The property tests and the fuzzer build their batches, so they know what each record is:

:data:`GOOD`
    a record the model scores;
:data:`RAISES`
    a well-formed record whose input makes the model raise (alone as in a batch);
:data:`POISON`
    a record that can never be scored (bad base64, UTF-8 or JSON, a missing or mistyped
    field, a non-finite feature, not an object, ...);
:data:`SKIP`
    nothing to score (a REMOVE, a change without a new image);

and which batch positions their results sink and quarantine destination fail to keep.
From that and the event alone (nothing here reads ``function/``), :func:`expect` states
what the handler must answer, by the stream semantics of docs/aws-notes.md §2, and
:func:`check` lists every way a response and the doubles' contents
(:mod:`testing.doubles`) differ from it. The rules, in order:

1. The event is a stream batch when it is an object whose ``Records`` is a list that is
   empty or holds a record with eventSource ``aws:kinesis`` or ``aws:dynamodb``; the
   first such record sets the batch's kind. Anything else is rejected.
2. A record that is not an object, has another eventSource than the batch's, or has no
   sequence number (a non-empty string) is POISON, whatever else it holds.
3. When two or more records are GOOD or RAISES and every one of them RAISES, the model
   is at fault: the batch fails (``ModelFailure``) and nothing is persisted. Otherwise
   a RAISES record is poison.
4. Every poison record goes to the quarantine; the first it fails to keep bounds the
   results sink: only GOOD records before it are written.
5. The *cutoff* is the first record whose quarantine or result could not be kept, moved
   back to the nearest record at or before it that has a sequence number (Lambda can
   only resume at one). With none, the whole batch fails: ``[{"itemIdentifier": ""}]``.
6. Records before the cutoff end as what they are (``predicted``, ``quarantined``,
   ``skipped``); from the cutoff on they are ``retried``, and ``batchItemFailures``
   names their sequence numbers, each once, in batch order.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any

from testing.doubles import FakeQuarantine, FakeSink

GOOD, RAISES, POISON, SKIP = "good", "raises", "poison", "skip"
#: What each record ends as, in the report, the log lines and the metrics.
OUTCOMES = ("predicted", "quarantined", "skipped", "retried")
_OUTCOME_OF = {GOOD: "predicted", RAISES: "quarantined", POISON: "quarantined", SKIP: "skipped"}
_SOURCES = {"aws:kinesis": "kinesis", "aws:dynamodb": "dynamodb"}
#: Where each stream puts a record's body and its sequence number.
_SEQUENCE_KEYS = {"kinesis": ("kinesis", "sequenceNumber"), "dynamodb": ("dynamodb", "SequenceNumber")}


def batch_kind(event: Any) -> str | None:
    """``"kinesis"`` or ``"dynamodb"`` for a stream batch, ``None`` for an event to reject (rule 1)."""
    records = event.get("Records") if isinstance(event, dict) else None
    if not isinstance(records, list):
        return None
    for record in records:
        source = record.get("eventSource") if isinstance(record, dict) else None
        if isinstance(source, str) and source in _SOURCES:
            return _SOURCES[source]
    return "kinesis" if not records else None


def sequence_number(record: Any, kind: str) -> str | None:
    """The record's sequence number as Lambda's ``itemIdentifier`` names it; ``None`` when it has none."""
    body_key, seq_key = _SEQUENCE_KEYS[kind]
    body = record.get(body_key) if isinstance(record, dict) else None
    seq = body.get(seq_key) if isinstance(body, dict) else None
    return seq if isinstance(seq, str) and seq else None


def record_id(record: Any, kind: str) -> str | None:
    """What results are keyed by: the eventID, else the sequence number; ``None`` when the
    record has neither (the function then names it ``unidentified-...``)."""
    event_id = record.get("eventID") if isinstance(record, dict) else None
    return event_id if isinstance(event_id, str) and event_id else sequence_number(record, kind)


@dataclass
class Expected:
    """What must come of one stream batch (see the module docstring for the rules)."""

    kind: str
    #: What each record is, after rule 2 (GOOD, RAISES, POISON or SKIP); a RAISES record
    #: is poison unless ``model_failure`` (rule 3).
    what: list[str]
    sequence_numbers: list[str | None]
    record_ids: list[str | None]
    #: Rule 3: the batch must fail as a whole, with nothing persisted.
    model_failure: bool
    #: Each record's outcome (one of :data:`OUTCOMES`); empty when ``model_failure``.
    outcomes: list[str]
    #: The response's ``batchItemFailures``.
    failures: list[dict[str, str]]
    #: The results sink may only be given records before this one (rule 4).
    sink_limit: int
    #: The first record whose quarantine or result could not be kept (the batch's size when none).
    first_failure: int
    #: The first retried record (the batch's size when none is): ``first_failure`` moved back (rule 5).
    cutoff: int

    def indices(self, outcome: str) -> list[int]:
        """The records (batch indices, in order) that end as ``outcome``."""
        return [i for i, o in enumerate(self.outcomes) if o == outcome]

    def counts(self) -> dict[str, int]:
        """The per-batch counts the function logs (``batch scored``) and emits as metrics."""
        counts = Counter(self.outcomes)
        return {
            "RecordsIn": len(self.outcomes),
            "RecordsPredicted": counts["predicted"],
            "RecordsSkipped": counts["skipped"],
            "RecordsQuarantined": counts["quarantined"],
            "RecordsRetried": counts["retried"],
        }


def expect(
    event: Any, what: Sequence[str], sink_fails: Collection[int] = (), quarantine_fails: Collection[int] = ()
) -> Expected | None:
    """What the handler must answer to ``event``; ``None`` when it must reject it.

    Parameters
    ----------
    event : Any
        The event as given to the handler.
    what : sequence of str
        What each record of ``event["Records"]`` is: :data:`GOOD`, :data:`RAISES`,
        :data:`POISON` or :data:`SKIP` (ignored for an event to reject).
    sink_fails, quarantine_fails : collection of int
        The batch indices the results sink and the quarantine destination fail on.

    Returns
    -------
    Expected or None
    """
    kind = batch_kind(event)
    if kind is None:
        return None
    records = event["Records"]
    n = len(records)
    if len(what) != n:
        raise ValueError(f"{len(what)} labels for a batch of {n} records")
    unknown = set(what) - {GOOD, RAISES, POISON, SKIP}
    if unknown:
        raise ValueError(f"unknown record labels {sorted(unknown)}")
    seqs = [sequence_number(r, kind) for r in records]
    labels = [
        w if isinstance(r, dict) and r.get("eventSource") == f"aws:{kind}" and seq is not None else POISON
        for r, w, seq in zip(records, what, seqs)
    ]
    ids = [record_id(r, kind) for r in records]

    inputs = [w for w in labels if w in (GOOD, RAISES)]
    if len(inputs) > 1 and all(w == RAISES for w in inputs):
        return Expected(kind, labels, seqs, ids, True, [], [], 0, 0, 0)

    poison = [w in (POISON, RAISES) for w in labels]
    sink_limit = min((i for i in quarantine_fails if 0 <= i < n and poison[i]), default=n)
    first = min([sink_limit, *(i for i in sink_fails if 0 <= i < sink_limit and labels[i] == GOOD)])
    cutoff = next((i for i in range(first, -1, -1) if seqs[i] is not None), None) if first < n else n
    if cutoff is None:
        failures, cutoff = [{"itemIdentifier": ""}], 0
    else:
        failures = [{"itemIdentifier": s} for s in dict.fromkeys(s for s in seqs[cutoff:] if s is not None)]
    outcomes = [_OUTCOME_OF[w] if i < cutoff else "retried" for i, w in enumerate(labels)]
    return Expected(kind, labels, seqs, ids, False, outcomes, failures, sink_limit, first, cutoff)


def check(
    expected: Expected, response: Any, sink: FakeSink | None = None, quarantine: FakeQuarantine | None = None
) -> list[str]:
    """Every way ``response`` and the doubles' contents differ from ``expected`` (empty: none).

    Parameters
    ----------
    expected : Expected
        From :func:`expect`.
    response : Any
        The handler's answer.
    sink : FakeSink, optional
        The results sink the function was given; ``None``: the response is the sink
        (results in ``response["predictions"]``, keyed by record id).
    quarantine : FakeQuarantine, optional
        The quarantine destination the function was given; ``None``: not observed.
    """
    if expected.model_failure:
        return ["the batch must fail as a whole (the model raised on every input): no response is right"]
    if not isinstance(response, dict) or not isinstance(response.get("batchItemFailures"), list):
        return [f"response is not {{'batchItemFailures': [...]}}: {type(response).__name__}"]
    problems: list[str] = []
    try:
        json.dumps(response, allow_nan=False)
    except (TypeError, ValueError) as exc:
        problems.append(f"response is not strict JSON: {exc}")
    failures = response["batchItemFailures"]
    if failures != expected.failures:
        problems.append(f"batchItemFailures {failures[:5]} != expected {expected.failures[:5]}")

    predicted = expected.indices("predicted")
    may_write = {i for i in range(expected.sink_limit) if expected.what[i] == GOOD}
    if sink is not None:
        if "predictions" in response:
            problems.append("predictions in the response although a results sink is configured")
        if not set(predicted) <= set(sink.kept):
            problems.append(f"predicted records not written: {sorted(set(predicted) - set(sink.kept))[:5]}")
        if not set(sink.received) <= may_write:
            wrong = sorted(set(sink.received) - may_write)[:5]
            problems.append(f"the sink got records {wrong}: not good, or after a failed quarantine")
        if len(sink.received) != len(set(sink.received)):
            problems.append("a record handed to the sink twice")
        wrong_ids = [i for i, item in sink.kept.items() if expected.record_ids[i] not in (None, item.record_id)]
        if wrong_ids:
            problems.append(f"results {wrong_ids[:5]} are not keyed by the record's eventID / sequence number")
    else:
        predictions = response.get("predictions")
        if not isinstance(predictions, dict):
            problems.append("no predictions in the response although the response is the sink")
            predictions = {}
        keys = set(predictions)
        if not {expected.record_ids[i] for i in predicted} <= keys <= {expected.record_ids[i] for i in may_write}:
            problems.append("response predictions do not match the predicted records")
        if any(not isinstance(v, dict) or set(v) != {"label", "probability"} for v in predictions.values()):
            problems.append("a prediction is not {label, probability}")
    if quarantine is not None:
        quarantined = set(expected.indices("quarantined"))
        if not quarantined <= set(quarantine.kept):
            problems.append(f"quarantined records not kept: {sorted(quarantined - set(quarantine.kept))[:5]}")
        not_poison = sorted(i for i in set(quarantine.received) if expected.what[i] not in (POISON, RAISES))
        if not_poison:
            problems.append(f"records {not_poison[:5]} sent to the quarantine are not poison")
    return problems
