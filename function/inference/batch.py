"""Scoring one stream batch: decode, predict once, persist, report what to retry.

Every record ends in exactly one of four states, and :class:`BatchReport` lists them:

``predicted``
    scored and its result written (or returned, with no sink);
``skipped``
    nothing to score: a REMOVE event, or a DynamoDB image without NewImage;
``quarantined``
    poison: it can never be scored; kept with its id and reason;
``retry``
    reported in ``batchItemFailures`` for Lambda to deliver again.

Retry follows stream semantics (docs/aws-notes.md §2): Lambda resumes at the lowest
reported sequence number and redelivers everything after it. So the first record
whose result or quarantine could not be persisted is the *cutoff*: it and every
record after it are reported, and sinks only get records before it.

A KPL aggregate (one Kinesis record holding many user records, :mod:`inference.kpl`)
is decoded into its user records, each scored, quarantined or skipped on its own and
keyed by its own id (``<eventID>:<sub-sequence number>``). But Lambda can only resume
at the aggregate's sequence number, so the aggregate is the unit of the cutoff: when
any of its user records cannot be persisted, the cutoff moves back to its first user
record, the aggregate's sequence number is reported, and every user record of it is
delivered again; none counts as done. A quarantine failure keeps the whole aggregate
(and all after it) from the sinks; after a sink's failure, results of the aggregate
that the sink did write are overwritten on redelivery, being keyed by id. The
report's lists then hold positions in the decoded list (one per user record), not the
event's record indices.

Quarantine is at least once, like the stream itself: poison records are sent before
the results, so when a later write fails, poison records past the cutoff are sent
again on redelivery (each carries its ``record_id``; the S3 destination overwrites).

When the model raises on the batch, the inputs are split in halves and predicted
again until each failure is pinned to single records, which are quarantined as
poison. If two or more inputs each fail on their own, the fault is the model's, not
the data's: :class:`ModelFailure` is raised so Lambda retries the batch (and, once
retries run out, sends it to the on-failure destination). A lone input that fails is
quarantined: after Lambda's ``BisectBatchOnFunctionError`` has split a batch down to
one record, that record must not block its shard.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

from .decode import DecodedBatch, DecodedRecord, decode_records, source_record
from .events import BatchItemFailure, StreamResponse, classify_event
from .model import LoadedModel, Predictions
from .payload import PayloadOptions
from .quarantine import Quarantine, QuarantineItem
from .result_keys import ResultKeys, record_key
from .sinks import ResponseSink, Results, ResultSink

if TYPE_CHECKING:  # for the annotations only
    from .shadow import Shadow, ShadowReport

logger = logging.getLogger("inference")


class ModelFailure(RuntimeError):
    """The model raised on every input of the batch, each alone."""


@dataclass
class BatchReport:
    """What happened to each record of one batch: lists of positions in the decoded
    list, which are the event's record indices unless a KPL aggregate holds several
    user records (then ``size`` counts user records)."""

    size: int
    predicted: list[int] = field(default_factory=list)
    skipped: list[int] = field(default_factory=list)
    quarantined: list[int] = field(default_factory=list)
    retry: list[int] = field(default_factory=list)
    failures: list[BatchItemFailure] = field(default_factory=list)
    predict_ms: float = 0.0
    predict_calls: int = 0
    #: What the candidate did, when one is in shadow (:mod:`inference.shadow`).
    shadow: ShadowReport | None = None

    def counts(self) -> dict[str, int]:
        return {
            "RecordsIn": self.size,
            "RecordsPredicted": len(self.predicted),
            "RecordsSkipped": len(self.skipped),
            "RecordsQuarantined": len(self.quarantined),
            "RecordsRetried": len(self.retry),
        }


def predict_isolating(
    model: LoadedModel, inputs: list[Any]
) -> tuple[list[dict[str, Any] | None], dict[int, tuple[str, str]], int]:
    """Predict ``inputs`` in one call; if it raises, bisect to find the inputs at fault.

    Returns
    -------
    (results, errors, calls)
        ``results[i]`` is input ``i``'s result (:meth:`Predictions.results`) or ``None`` when it fails
        alone; ``errors`` maps those positions to ``(reason, detail)``: the reason names
        the exception's type only (it is logged), the detail is its message, which may
        quote the input (it goes to the quarantine destination only). ``calls`` counts
        predicts.

    Raises
    ------
    ModelFailure
        Two or more inputs, and every one of them fails alone. The message names the
        exception's type, never an input.
    """
    results: list[dict[str, Any] | None] = [None] * len(inputs)
    errors: dict[int, tuple[str, str]] = {}
    missing: set[str] = set()
    calls = 0

    def run(lo: int, hi: int) -> None:
        nonlocal calls
        calls += 1
        try:
            out: Predictions = model.predict(inputs[lo:hi])
        except Exception as exc:
            if hi - lo == 1:
                errors[lo] = (f"model raised {type(exc).__name__}", str(exc)[:200])
                if isinstance(exc, ImportError) and exc.name:  # a module name, never record data
                    missing.add(exc.name)
                return
            mid = (lo + hi) // 2
            run(lo, mid)
            run(mid, hi)
            return
        results[lo:hi] = out.results()

    if inputs:
        run(0, len(inputs))
    if len(inputs) > 1 and len(errors) == len(inputs):
        absent = "".join(f" (No module named {name!r})" for name in sorted(missing))
        raise ModelFailure(f"model failed on all {len(inputs)} inputs, each alone: {errors[0][0]}{absent}")
    return results, errors, calls


def _unit_start(decoded: DecodedBatch, position: int) -> int:
    """The first position of the stream record at ``position``: a KPL aggregate's user
    records are retried together, from its first one (``len(decoded)`` stays as it is)."""
    indices = decoded.record_indices
    while 0 < position < len(indices) and indices[position - 1] == indices[position]:
        position -= 1
    return position


def process_batch(
    event: Any,
    model: LoadedModel,
    sink: ResultSink,
    quarantine: Quarantine,
    payload: PayloadOptions | None = None,
    result_keys: ResultKeys | None = None,
    shadow: Shadow | None = None,
    context: Any = None,
) -> tuple[StreamResponse, BatchReport]:
    """Score one Lambda stream event.

    Parameters
    ----------
    event : dict
        A Kinesis or DynamoDB Streams event as Lambda delivers it.
    model : LoadedModel
        The verified model (:func:`inference.model.load_model`).
    sink : ResultSink
        Where results go; a :class:`~inference.sinks.ResponseSink` returns them.
    quarantine : Quarantine
        Where poison records go.
    payload : PayloadOptions, optional
        How Kinesis payloads are read (gzip); default ``PAYLOAD_COMPRESSION=auto``.
    result_keys : ResultKeys, optional
        What of its record each result carries as ``key`` (``RESULT_KEYS``); default nothing.
    shadow : Shadow, optional
        A candidate model: once the live results are written, it scores the same inputs
        of the records predicted (:mod:`inference.shadow`); nothing it does changes the
        response or the report's accounting.
    context : Lambda context, optional
        Bounds the shadow's time.

    Returns
    -------
    (response, report)
        The handler's response (``batchItemFailures``, and ``predictions`` when the
        sink is the response) and the per-record accounting.

    Raises
    ------
    UnsupportedEventError
        The event is not a stream batch.
    ModelFailure
        The model raised on every input (see module docstring).
    """
    kind, records = classify_event(event)
    decoded = decode_records(records, kind, model.manifest["input"], payload)
    n = len(decoded)
    report = BatchReport(size=n)
    statuses = decoded.statuses

    pending = [i for i, status in enumerate(statuses) if status == "input"]  # positions of the inputs
    values = decoded.values
    started = time.perf_counter()
    outcomes, errors, report.predict_calls = predict_isolating(model, [values[i] for i in pending])
    report.predict_ms = (time.perf_counter() - started) * 1000

    for position, (reason, detail) in errors.items():  # the inputs that failed alone: poison
        decoded.poison(pending[position], reason, detail)
    poison: list[DecodedRecord] = [decoded[i] for i, status in enumerate(statuses) if status == "poison"]
    name, version = model.name, model.version  # looked up once, not once per record
    wanted = result_keys if result_keys else None  # `is not None` below is cheaper than its __bool__
    ids, seqs, arns = decoded.record_ids, decoded.sequence_numbers, decoded.source_arns
    # ``outcomes`` is None exactly at the positions of ``errors``: those have no result.
    scored = [i for i, o in zip(pending, outcomes) if o is not None] if errors else pending
    done = cast(list[dict[str, Any]], [o for o in outcomes if o is not None] if errors else outcomes)
    results = Results(
        scored,
        [ids[i] for i in scored],
        [seqs[i] or "" for i in scored],
        [arns[i] for i in scored],
        done,
        name,
        version,
        [record_key(wanted, source_record(records, d), d, payload) for d in map(decoded.__getitem__, scored)]
        if wanted is not None
        else None,
    )

    # Persist in stream order of priority: quarantine, then results before the cutoff.
    failed = quarantine.send(
        [
            QuarantineItem(
                d.index, d.record_id, d.sequence_number, d.source_arn, d.reason, source_record(records, d), d.detail
            )
            for d in poison
        ]
    )
    cutoff = _unit_start(decoded, min(failed, default=n))
    # A sink reports only indices of the items it was given, all before the cutoff.
    cutoff = _unit_start(decoded, min(sink.write(results.before(cutoff)), default=cutoff))

    # Lambda can only resume at a record that has a sequence number.
    while cutoff < n and seqs[cutoff] is None and cutoff > 0:
        cutoff -= 1
    if cutoff < n and seqs[cutoff] is None:
        # No record at or before the failure can be named: fail the whole batch.
        report.failures = [{"itemIdentifier": ""}]
        cutoff = 0
    cutoff = _unit_start(decoded, cutoff)  # stepping back may land on an aggregate's last user record
    report.retry = list(range(cutoff, n))
    for i, status in enumerate(statuses[:cutoff]):
        if status == "input":
            report.predicted.append(i)
        elif status == "skip":
            report.skipped.append(i)
        else:
            report.quarantined.append(i)
    if not report.failures:
        seen: set[str] = set()
        for index in report.retry:
            seq = seqs[index]
            if seq is not None and seq not in seen:
                seen.add(seq)
                report.failures.append({"itemIdentifier": seq})

    for index in report.quarantined:
        logger.warning(
            "record quarantined",
            extra={"record_id": ids[index], "sequence_number": seqs[index], "reason": decoded.reasons.get(index, "")},
        )
    if shadow is not None:
        written = list(results.before(cutoff))
        try:
            report.shadow = shadow.run(written, [values[r.index] for r in written], report.predict_ms, context)
        except Exception:  # Shadow.run never raises; this keeps the live batch safe from a bug in it
            logger.exception("shadow failed")
    response: StreamResponse = {"batchItemFailures": report.failures}
    if isinstance(sink, ResponseSink):
        response["predictions"] = sink.predictions
    return response, report
