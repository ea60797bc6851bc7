"""The oracle: :func:`expect` derives from a case's labels and its sinks' chosen failures
what must come of a stream batch (stream semantics: ``batchItemFailures`` from the
cutoff on), :func:`check` lists every way the handler's response, sinks and log lines
differ from it, and :func:`leaks` finds a canary (a payload's or the credentials').
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from typing import Any

from testing.fuzz.cases import CANARY, Case, P, Q, S
from testing.fuzz.doubles import FlakyQuarantine, FlakySink

CANARY_ENV = {
    "AWS_ACCESS_KEY_ID": "AKIAZQCANARY00000KEY",
    "AWS_SECRET_ACCESS_KEY": "zqcanary/Secret+Access/Key0000000000000000",
    "AWS_SESSION_TOKEN": "zqcanarySessionToken" + "Q" * 40,
}
OUTCOMES = ("predicted", "quarantined", "skipped", "retried")


def _seq_of(record: Any, kind: str) -> str | None:
    """The record's sequence number as Lambda names it (``itemIdentifier``)."""
    if not isinstance(record, dict):
        return None
    body = record.get("kinesis" if kind == "kinesis" else "dynamodb")
    seq = body.get("sequenceNumber" if kind == "kinesis" else "SequenceNumber") if isinstance(body, dict) else None
    return seq if isinstance(seq, str) and seq else None


def _source_of(record: Any) -> Any:
    return record.get("eventSource") if isinstance(record, dict) else None


@dataclass
class Expected:
    """What must come of a stream batch, from the generator's labels and the sinks'
    chosen failures, by the stream semantics in docs/function.md ("Retries follow stream semantics")."""

    outcomes: list[str]
    failures: list[dict[str, str]]
    ids: list[str | None]  # None: an unidentified record ("unidentified-…")
    seqs: list[str | None]
    labels: list[str]
    #: Sinks may be given only records before this one: the first quarantine that failed.
    sink_limit: int


def expect(case: Case) -> Expected | None:
    """None when the event is no stream batch (it must be rejected)."""
    event = case.event
    records = event.get("Records") if isinstance(event, dict) else None
    if not isinstance(records, list):
        return None
    sources = [_source_of(r) for r in records]
    kind = next((s[4:] for s in sources if s in ("aws:kinesis", "aws:dynamodb")), None)
    if kind is None:
        if records:
            return None
        kind = "kinesis"
    n = len(records)
    seqs = [_seq_of(r, kind) for r in records]
    labels = [case.contents[i] if sources[i] == f"aws:{kind}" and seqs[i] is not None else Q for i in range(n)]
    ids: list[str | None] = []
    for record, seq in zip(records, seqs):
        event_id = record.get("eventID") if isinstance(record, dict) else None
        ids.append(event_id if isinstance(event_id, str) and event_id else seq)
    sink_limit = min((i for i in case.quarantine_fails or () if labels[i] == Q), default=n)
    first = min([sink_limit] + [i for i in case.sink_fails or () if labels[i] == P])
    # Lambda resumes at the nearest record at or before the first failure that has a
    # sequence number; with none, the whole batch is failed.
    cut = n if first == n else next((i for i in range(first, -1, -1) if seqs[i] is not None), None)
    if cut is None:
        failures, cut = [{"itemIdentifier": ""}], 0
    else:
        failures = [{"itemIdentifier": s} for s in dict.fromkeys(s for s in seqs[cut:] if s is not None)]
    outcomes = [labels[i] if i < cut else "retried" for i in range(n)]
    return Expected(outcomes, failures, ids, seqs, labels, sink_limit)


def _log_docs(text: str) -> list[dict[str, Any]]:
    docs = []
    for line in text.splitlines():
        if line.strip():
            docs.append(json.loads(line))  # every line the function writes is one JSON object
    return docs


def check(case: Case, expected: Expected, response: Any, logs: str, sink: Any, quarantine: Any) -> list[str]:
    """Every way the handler's answer to a stream batch is wrong (empty: it is right)."""
    problems: list[str] = []
    if not isinstance(response, dict) or not isinstance(response.get("batchItemFailures"), list):
        return [f"response is not {{'batchItemFailures': [...]}}: {type(response).__name__}"]
    try:
        json.dumps(response, allow_nan=False)
    except (TypeError, ValueError) as exc:
        problems.append(f"response is not strict JSON: {exc}")
    failures = response["batchItemFailures"]
    if failures != expected.failures:
        problems.append(f"batchItemFailures {failures[:5]} != expected {expected.failures[:5]}")

    outcomes = expected.outcomes
    predicted = [i for i, o in enumerate(outcomes) if o == P]
    if isinstance(sink, FlakySink):
        if "predictions" in response:
            problems.append("predictions in the response although a results sink is configured")
        if not set(predicted) <= set(sink.written):
            problems.append(f"predicted records not written: {sorted(set(predicted) - set(sink.written))[:5]}")
        if any(expected.labels[i] != P or i >= expected.sink_limit for i in sink.received):
            problems.append("the sink got a record that is not to be predicted, or one after a failed quarantine")
        if len(sink.received) != len(set(sink.received)):
            problems.append("a record handed to the sink twice")
        if any(sink.written[i] != expected.ids[i] for i in sink.written):
            problems.append("a result's record_id is not the record's eventID / sequence number")
    else:
        if "predictions" not in response:
            problems.append("no predictions in the response although the response is the sink")
        keys = set(response.get("predictions", {}))
        may = {expected.ids[i] for i, label in enumerate(expected.labels[: expected.sink_limit]) if label == P}
        if not {expected.ids[i] for i in predicted} <= keys <= may:
            problems.append("response predictions do not match the predicted records")
        for value in response.get("predictions", {}).values():
            if set(value) != {"label", "probability"}:
                problems.append(f"a prediction is not {{label, probability}}: {sorted(value)}")
                break
    if isinstance(quarantine, FlakyQuarantine):
        quarantined = {i for i, o in enumerate(outcomes) if o == Q}
        if not quarantined <= set(quarantine.kept):
            problems.append("a quarantined record was not kept by the destination")

    docs = _log_docs(logs)
    lines = [d for d in docs if "_aws" not in d]
    emf = [d for d in docs if "_aws" in d]
    got_q = Counter()
    for doc in lines:
        if doc.get("message") == "record quarantined":
            if doc.get("level") != "WARNING" or not doc.get("reason"):
                problems.append("a 'record quarantined' line without WARNING level or reason")
            rid = doc.get("record_id")
            rid = None if isinstance(rid, str) and rid.startswith("unidentified-") else rid
            got_q[(rid, doc.get("sequence_number"))] += 1
    want_q = Counter((expected.ids[i], expected.seqs[i]) for i, o in enumerate(outcomes) if o == Q)
    if got_q != want_q:
        problems.append(
            f"quarantine log lines {sorted(got_q.items(), key=str)[:4]} != expected {sorted(want_q.items(), key=str)[:4]}"
        )
    counts = Counter(outcomes)
    want = {
        "RecordsIn": len(outcomes),
        "RecordsPredicted": counts[P],
        "RecordsSkipped": counts[S],
        "RecordsQuarantined": counts[Q],
        "RecordsRetried": counts["retried"],
    }
    scored = [d for d in lines if d.get("message") == "batch scored"]
    if len(scored) != 1 or {k: scored[0].get(k) for k in want} != want:
        problems.append(f"'batch scored' line(s) {[{k: d.get(k) for k in want} for d in scored]} != {want}")
    if len(emf) != 1 or {k: emf[0].get(k) for k in want} != want:
        problems.append("the EMF document's counts differ")
    return problems


def leaks(text: str) -> bool:
    """Whether ``text`` carries a canary (a payload's, or the credentials')."""
    lowered = text.lower()
    return CANARY in lowered or any(v.lower() in lowered for v in CANARY_ENV.values())
