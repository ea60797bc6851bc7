"""Replay an ingest through the local twin of Lambda and its stream trigger (``make demo``).

One run (:func:`run_replay`):

1. starts the embedded AWS endpoint (:class:`localtwin.embedded_aws.EmbeddedAWS`);
2. creates the source (a Kinesis stream with ``shards`` shards, or a DynamoDB table
   with a stream), the results table (partition key ``record_id``, S) and the
   on-failure SQS queue;
3. writes the ingest: review texts from the reference data set as ``{"text": ...}``,
   plus about 1 % malformed records of several kinds, and for DynamoDB also updates and
   deletes (MODIFY and REMOVE events);
4. runs the function from the built zips in the local Lambda runtime
   (:class:`localtwin.runtime.pool.LocalLambda`; memory, timeout and environment
   from ``deploy.toml``, ``RESULTS_TABLE`` pointing at the created table), driven by
   the local event source mapping (:class:`localtwin.mapping.engine.EventSourceMapping`, the
   ``deploy.toml`` entry for the source type) until every record is handled;
5. accounts for every record and exports the results table to CSV.

**Accounting.** Every record carries a tag saying what it was written as (the Kinesis
partition key ``review-<n>``, the DynamoDB attribute ``op``), and the invoker wrapper
notes the tag of each record id the function is handed. The results table (scanned)
gives the ids that were predicted, the function's ``record quarantined`` log lines the
ids it quarantined, its EMF documents the counts. The run is good when every good
record has exactly one result, every malformed one was quarantined, every delete was
skipped, the counts agree, and nothing is left over: ``lost`` = records written -
predicted - skipped - quarantined - given up (sent to the on-failure queue) is 0.

**Cost.** Lambda's bill for this ingest at the durations measured here: the REPORT
lines' *Billed Duration* x memory, plus requests, priced with :mod:`experiments.cost`
(docs/aws-notes.md §5, no free tier). arm64 is priced at the same durations.

**Time.** :class:`EndpointMeter` times every request moto's server handles (wall and
the CPU time of the thread handling it), per operation; with the function's REPORT
durations and this process's CPU time it shows where the replay's wall time goes.
"""

from __future__ import annotations

import csv
import json
import os
import random
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import nullcontext
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from localtwin.embedded_aws import EmbeddedAWS
from localtwin.faults import FaultCounts, FaultPlan, SinkFaults
from localtwin.invoke import BUILD, DEFAULT_FUNCTION, INVOKE_LAYERS, ROOT
from localtwin.mapping.engine import EventSourceMapping
from localtwin.mapping.stats import MappingStats
from localtwin.mapping.streams import open_stream
from localtwin.runtime.pool import LocalLambda
from pricing.billing import MB_PER_GB, Usage, cost
from pricing.prices import LAMBDA_PRICES
from release.settings import Settings, load_settings
from training.dataset import load_reviews

OUT_DIR = BUILD / "demo"
SOURCE_NAME = "reviews"
QUEUE_NAME = "stream-inference-failures"
QUARANTINE_QUEUE_NAME = "stream-inference-quarantine"
DEFAULT_RESULTS_TABLE = "stream-inference-results"
CSV_COLUMNS = ("record_id", "sequence_number", "label", "probability", "model_name", "model_version", "source_arn")

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


@dataclass(frozen=True)
class ReplayOptions:
    """What to replay and how.

    Attributes
    ----------
    records : int
        Records (stream events) to write.
    shards : int
        Kinesis shards (a DynamoDB stream has as many as DynamoDB gives it: moto, one).
    batch_size : int, optional
        The mapping's BatchSize; default: ``deploy.toml``'s.
    source : {"kinesis", "dynamodb"}
    poison_share : float
        Share of malformed records.
    change_share : float
        DynamoDB only: share of updates (MODIFY) and, as many again, of deletes (REMOVE).
    max_environments : int, optional
        Execution environments; default shards x parallelization factor (one batch in
        flight per shard and lane, as Lambda runs them).
    out_dir : Path
        Where the CSV export, the function's log and the extracted zips go.
    suffix : str
        Appended to every resource name (moto's state is process-wide).
    seed : int
        Seed of the ingest.
    function_zip, layer_zips : Path
        The function zip and the layers, in order.
    timeout_s : float
        Give up waiting for the mapping to drain after this long.
    quarantine_queue : bool
        Also send poison records to an SQS queue (``QUARANTINE_QUEUE_URL``) and read
        it back at the end (:attr:`ReplayResult.quarantine_messages`).
    faults : FaultPlan, optional
        Inject throttling, worker kills and timeouts into the results table's writes
        (:mod:`localtwin.faults`; ``make soak``).
    """

    records: int = 50_000
    shards: int = 4
    batch_size: int | None = None
    source: Literal["kinesis", "dynamodb"] = "kinesis"
    poison_share: float = 0.01
    change_share: float = 0.01
    max_environments: int | None = None
    out_dir: Path = OUT_DIR
    suffix: str = ""
    seed: int = 7
    function_zip: Path = DEFAULT_FUNCTION
    layer_zips: tuple[Path, ...] = tuple(INVOKE_LAYERS)
    timeout_s: float = 1800.0
    quarantine_queue: bool = False
    faults: FaultPlan | None = None


# --- the ingest ----------------------------------------------------------------------------


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


# --- watching the function and the endpoint ---------------------------------------------------


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


@dataclass
class OperationTime:
    """Requests of one operation that moto's server handled."""

    calls: int = 0
    wall_s: float = 0.0
    cpu_s: float = 0.0


class EndpointMeter:
    """Times every request the in-process moto server handles, per operation.

    While active (a context manager), moto's WSGI entry point
    (``DomainDispatcherApplication.__call__``) is wrapped: each request's wall time and
    the CPU time of the thread handling it are added to its operation
    (``DynamoDB.BatchWriteItem``, ``Kinesis.GetRecords``, ...).
    """

    def __init__(self) -> None:
        self.operations: dict[str, OperationTime] = {}
        self._lock = threading.Lock()
        self._original: Any = None

    def __enter__(self) -> EndpointMeter:
        from moto.moto_server.werkzeug_app import DomainDispatcherApplication

        original = self._original = DomainDispatcherApplication.__call__
        meter = self

        def timed(app: Any, environ: dict[str, Any], start_response: Any) -> Any:
            wall, cpu = time.perf_counter(), time.thread_time()
            try:
                return list(original(app, environ, start_response))
            finally:
                meter._add(_operation(environ), time.perf_counter() - wall, time.thread_time() - cpu)

        DomainDispatcherApplication.__call__ = timed
        return self

    def __exit__(self, *exc: object) -> None:
        from moto.moto_server.werkzeug_app import DomainDispatcherApplication

        DomainDispatcherApplication.__call__ = self._original

    def _add(self, operation: str, wall_s: float, cpu_s: float) -> None:
        with self._lock:
            entry = self.operations.setdefault(operation, OperationTime())
            entry.calls += 1
            entry.wall_s += wall_s
            entry.cpu_s += cpu_s

    def snapshot(self) -> dict[str, OperationTime]:
        """A copy of the figures so far."""
        with self._lock:
            return {name: replace(entry) for name, entry in self.operations.items()}


def _operation(environ: dict[str, Any]) -> str:
    target = environ.get("HTTP_X_AMZ_TARGET")
    if target:  # "DynamoDB_20120810.BatchWriteItem" -> "DynamoDB.BatchWriteItem"
        service, _, action = target.partition(".")
        return f"{service.split('_')[0]}.{action}"
    return f"{environ.get('REQUEST_METHOD', '?')} {environ.get('PATH_INFO', '')}"


def _since(now: dict[str, OperationTime], before: dict[str, OperationTime]) -> dict[str, OperationTime]:
    out = {}
    for name, entry in now.items():
        old = before.get(name, OperationTime())
        if entry.calls > old.calls:
            out[name] = OperationTime(entry.calls - old.calls, entry.wall_s - old.wall_s, entry.cpu_s - old.cpu_s)
    return out


@dataclass
class FunctionTally:
    """The function's log lines, summed over the invocations that returned."""

    metrics: Counter[str] = field(default_factory=Counter)
    quarantined: dict[str, str] = field(default_factory=dict)  # record id -> reason
    predict_s: float = 0.0


def tally_logs(stats: MappingStats) -> FunctionTally:
    """Sum the EMF documents; collect the ``record quarantined`` and ``batch scored`` lines.

    Only invocations that returned count: one killed or timed out after its lines were
    written is delivered again, and its records counted then.
    """
    tally = FunctionTally()
    for call in stats.invocation_log:
        if call.result.error is not None:
            continue
        for line in getattr(call.result, "logs", []):
            if not line.startswith("{"):
                continue
            try:
                doc = json.loads(line)
            except ValueError:
                continue
            if "_aws" in doc:
                for name in ("RecordsIn", "RecordsPredicted", "RecordsSkipped", "RecordsQuarantined", "RecordsRetried"):
                    tally.metrics[name] += int(doc.get(name, 0))
            elif doc.get("message") == "record quarantined":
                tally.quarantined[doc["record_id"]] = str(doc.get("reason", ""))
            elif doc.get("message") == "batch scored":
                tally.predict_s += float(doc.get("predict_ms", 0.0)) / 1000
    return tally


# --- results -----------------------------------------------------------------------------------


def scan_results(aws: EmbeddedAWS, table: str) -> list[dict[str, Any]]:
    """Every item of the results table (a paginated Scan), as plain values."""
    from boto3.dynamodb.types import TypeDeserializer

    plain = TypeDeserializer().deserialize
    items = []
    for page in aws.client("dynamodb").get_paginator("scan").paginate(TableName=table):
        items.extend({key: plain(value) for key, value in item.items()} for item in page["Items"])
    return items


def export_csv(items: list[dict[str, Any]], path: Path) -> None:
    """Write the results to ``path``, one row per record, in stream order per shard."""

    def order(item: dict[str, Any]) -> tuple[str, int, str]:
        sequence = str(item.get("sequence_number", ""))
        return item["record_id"].rpartition(":")[0], int(sequence) if sequence.isdigit() else 0, item["record_id"]

    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as out:
        writer = csv.DictWriter(out, CSV_COLUMNS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(sorted(items, key=order))


# --- the run ------------------------------------------------------------------------------------


@dataclass
class ReplayResult:
    """What a replay did, for the summary and the tests."""

    options: ReplayOptions
    settings: Settings
    source_arn: str
    shards: int
    batch_size: int
    environments: int
    results_table: str
    csv_path: Path
    log_path: Path
    written: int
    expected: Counter[str]
    stats: MappingStats
    function: FunctionTally
    #: Items in the results table (keyed by ``record_id``: one per record, however often written).
    predicted: int
    skipped: int
    quarantined: int
    given_up: int
    labels: Counter[str]
    on_failure_messages: int
    problems: list[str]
    write_s: float
    export_s: float
    process_cpu_s: float
    ingest_requests: dict[str, OperationTime]
    replay_requests: dict[str, OperationTime]
    #: Per shard: the mapping's checkpoint at the end, and the shard's last sequence number.
    checkpoints: dict[str, str | None] = field(default_factory=dict)
    shard_ends: dict[str, str | None] = field(default_factory=dict)
    #: The quarantine queue's messages (parsed), with ``quarantine_queue``.
    quarantine_messages: list[dict[str, Any]] = field(default_factory=list)
    #: What was injected, with ``faults``.
    faults: FaultCounts | None = None

    @property
    def lost(self) -> int:
        """Records neither predicted, skipped, quarantined nor given up on."""
        return self.written - self.predicted - self.skipped - self.quarantined - self.given_up

    @property
    def ok(self) -> bool:
        return not self.problems and self.lost == 0 and self.given_up == 0


def check_records(
    expect: list[Expect], seen: dict[str, int], result_ids: set[str], tally: FunctionTally, written: int
) -> list[str]:
    """Per record and in total: what is wrong (empty: nothing)."""
    want_results, want_quarantined = set(), set()
    for rid, tag in seen.items():
        if tag != DELETE_TAG:
            if expect[tag] == "predicted":
                want_results.add(rid)
            elif expect[tag] == "quarantined":
                want_quarantined.add(rid)
    problems = []
    if len(seen) != written:
        problems.append(f"{len(seen):,} distinct records reached the function; {written:,} were written")
    if missing := want_results - result_ids:
        problems.append(f"{len(missing):,} good records have no result (e.g. {sorted(missing)[:3]})")
    if extra := result_ids - want_results:
        problems.append(f"{len(extra):,} results are not for a good record (e.g. {sorted(extra)[:3]})")
    if missed := want_quarantined - set(tally.quarantined):
        problems.append(f"{len(missed):,} malformed records were not quarantined (e.g. {sorted(missed)[:3]})")
    if wrong := set(tally.quarantined) - want_quarantined:
        problems.append(f"{len(wrong):,} records were quarantined that are not malformed (e.g. {sorted(wrong)[:3]})")
    metrics, deletes = tally.metrics, sum(1 for tag in seen.values() if tag == DELETE_TAG)
    for name, logged, actual in (
        ("predictions", metrics["RecordsPredicted"], len(result_ids)),
        ("quarantined records", metrics["RecordsQuarantined"], len(tally.quarantined)),
        ("skipped records", metrics["RecordsSkipped"], deletes),
    ):
        if logged != actual:
            problems.append(f"the function's metrics count {logged:,} {name}; {actual:,} found")
    return problems


def run_replay(
    options: ReplayOptions,
    settings: Settings | None = None,
    write_progress: Callable[[int], None] | None = None,
    progress: Callable[[int], None] | None = None,
) -> ReplayResult:
    """Run one replay end to end (see the module docstring).

    The endpoint, the mapping and the workers are stopped on the way out, also when
    interrupted.

    Parameters
    ----------
    options : ReplayOptions
    settings : Settings, optional
        Default: ``deploy.toml`` (``$DEPLOY_SETTINGS``).
    write_progress : callable, optional
        Called with the number of records just written.
    progress : callable, optional
        Called with the number of records handled so far.
    """
    settings = settings or load_settings()
    out = Path(options.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    log_path, csv_path = out / "function.log", out / "results.csv"
    log_path.unlink(missing_ok=True)
    source_name, suffix = SOURCE_NAME + options.suffix, options.suffix
    results_table = settings.function.environment.get("RESULTS_TABLE") or DEFAULT_RESULTS_TABLE
    results_table += suffix
    if options.source == "kinesis":
        expect, payload = kinesis_ingest(options.records, options.poison_share, options.seed)
    else:
        expect, payload = dynamodb_ingest(options.records, options.poison_share, options.change_share, options.seed)
    step = write_progress or (lambda n: None)

    with EmbeddedAWS() as aws, EndpointMeter() as meter:
        aws.create_table(results_table, key="record_id")
        queue_url, queue_arn = aws.create_queue(QUEUE_NAME + suffix)
        quarantine_env: dict[str, str] = {}
        if options.quarantine_queue:
            quarantine_url, _ = aws.create_queue(QUARANTINE_QUEUE_NAME + suffix)
            quarantine_env = {"QUARANTINE_QUEUE_URL": quarantine_url}
        if options.source == "kinesis":
            source_arn = aws.create_kinesis_stream(source_name, shards=options.shards)
        else:
            source_arn = aws.create_table_with_stream(source_name)
        before = meter.snapshot()
        started = time.perf_counter()
        if options.source == "kinesis":
            written_records = write_kinesis(aws, source_arn, payload, step)
        else:
            written_records = write_dynamodb(aws, source_name, payload, step)
        write_s = time.perf_counter() - started
        after_ingest = meter.snapshot()
        ingest_requests = _since(after_ingest, before)

        overrides: dict[str, Any] = {"source_arn": source_arn, "on_failure_destination_arn": queue_arn}
        if options.batch_size is not None:
            overrides["batch_size"] = options.batch_size
        recorder = RecordingInvoker(None, options.source)
        esm = EventSourceMapping.from_settings(
            recorder, settings, source_type=options.source, client_factory=aws.client, **overrides
        )
        stream = open_stream(options.source, source_arn, aws.client)
        shards = len(stream.list_shards())
        environments = options.max_environments or shards * esm.source.parallelization_factor
        function = settings.function
        with LocalLambda(
            options.function_zip,
            list(options.layer_zips),
            environment={
                **function.environment,
                **aws.environment(),
                "RESULTS_TABLE": results_table,
                **quarantine_env,
            },
            memory_mb=function.memory_mb,
            timeout_s=function.timeout_s,
            max_environments=environments,
            function_name=function.name,
            log=log_path,
            workdir=out / "lambda",
        ) as runtime:
            recorder.invoker = runtime
            if progress is not None:
                progress(0)
            faults = SinkFaults(options.faults, results_table) if options.faults else None
            cpu = time.process_time()
            with faults or nullcontext():
                if faults is not None:
                    rng = random.Random(options.faults.seed)
                    faults.kill = lambda: runtime.kill_invoking_environment(rng.choice)
                stats = esm.run_until_drained(
                    expected_records=options.records, timeout_s=options.timeout_s, progress=progress
                )
            process_cpu_s = time.process_time() - cpu
        replay_requests = _since(meter.snapshot(), after_ingest)
        checkpoints = esm.checkpoints
        shard_ends = {shard.shard_id: stream.last_sequence(shard.shard_id) for shard in stream.list_shards()}
        quarantine_messages = (
            [json.loads(body) for body in aws.receive_all(quarantine_env["QUARANTINE_QUEUE_URL"])]
            if quarantine_env
            else []
        )

        started = time.perf_counter()
        items = scan_results(aws, results_table)
        export_csv(items, csv_path)
        export_s = time.perf_counter() - started
        on_failure_messages = len(aws.receive_all(queue_url))

    tally = tally_logs(stats)
    result_ids = {item["record_id"] for item in items}
    return ReplayResult(
        options=options,
        settings=settings,
        source_arn=source_arn,
        shards=shards,
        batch_size=esm.source.batch_size,
        environments=environments,
        results_table=results_table,
        csv_path=csv_path,
        log_path=log_path,
        written=written_records,
        expected=Counter(expect),
        stats=stats,
        function=tally,
        predicted=len(result_ids),
        skipped=tally.metrics["RecordsSkipped"],
        quarantined=len(tally.quarantined),
        given_up=stats.records_to_on_failure + stats.records_discarded,
        labels=Counter(str(item.get("label")) for item in items),
        on_failure_messages=on_failure_messages,
        problems=check_records(expect, recorder.tags, result_ids, tally, written_records),
        write_s=write_s,
        export_s=export_s,
        process_cpu_s=process_cpu_s,
        ingest_requests=ingest_requests,
        replay_requests=replay_requests,
        checkpoints=checkpoints,
        shard_ends=shard_ends,
        quarantine_messages=quarantine_messages,
        faults=faults.counts if faults is not None else None,
    )


# --- cost and summary ------------------------------------------------------------------------------


def ingest_cost(stats: MappingStats, memory_mb: int) -> tuple[Usage, dict[str, float]]:
    """Requests and billed GB-seconds of the invocations, and their price per architecture.

    Billed duration comes from the REPORT lines (duration rounded up to 1 ms, init
    included on cold starts); prices from :data:`pricing.prices.LAMBDA_PRICES`,
    without the free tier.
    """
    billed_ms = sum(call.result.report.billed_ms for call in stats.invocation_log)
    usage = Usage(float(len(stats.invocation_log)), billed_ms / 1000 * memory_mb / MB_PER_GB)
    return usage, {arch: cost(usage, price) for arch, price in LAMBDA_PRICES.items()}


def _rel(path: Path) -> str:
    try:
        return str(Path(path).resolve().relative_to(ROOT))
    except ValueError:
        return str(path)


def format_summary(result: ReplayResult) -> str:
    """The summary a person reads at a glance (plain text, about 30 lines)."""
    r, stats, fn = result, result.stats, result.settings.function
    kinesis = r.options.source == "kinesis"
    source_name = SOURCE_NAME + r.options.suffix
    source = f"Kinesis stream {source_name}" if kinesis else f"DynamoDB stream of table {source_name}"
    reports = [call.result.report for call in stats.invocation_log]
    inits = sorted(report.init_ms for report in reports if report.init_ms is not None)
    usage, prices = ingest_cost(stats, fn.memory_mb)
    wall = stats.wall_s or float("nan")
    busy_s = sum(report.duration_ms for report in reports) / 1000
    worker_cpu_s = sum(report.cpu_ms for report in reports) / 1000
    moto, ingest = r.replay_requests, r.ingest_requests
    moto_wall, moto_cpu = sum(op.wall_s for op in moto.values()), sum(op.cpu_s for op in moto.values())
    writes = moto.get("DynamoDB.BatchWriteItem", OperationTime())
    plural = "s" if r.shards != 1 else ""
    lines = [
        f"Replayed {r.written:,} records: {source} ({r.shards} shard{plural}) -> {fn.name} "
        f"({fn.memory_mb} MB, timeout {fn.timeout_s} s)",
        f"from {_rel(r.options.function_zip)} + {len(r.options.layer_zips)} layers, batch size {r.batch_size}, "
        f"{r.environments} execution environment{'s' if r.environments != 1 else ''}.",
        "",
        f"  records in     {r.written:>9,}",
        f"  predicted      {r.predicted:>9,}   " + ", ".join(f"{k} {v:,}" for k, v in r.labels.most_common()),
        f"  skipped        {r.skipped:>9,}   " + ("DynamoDB REMOVE events" if not kinesis else ""),
        f"  quarantined    {r.quarantined:>9,}   malformed, each logged with its reason:",
    ]
    reasons = Counter(reason.split(" (")[0] for reason in r.function.quarantined.values())
    lines += [f"                 {count:>9,}     {reason}" for reason, count in reasons.most_common()]
    lines += [
        f"  retried        {r.function.metrics['RecordsRetried']:>9,}   reported in batchItemFailures, redelivered",
        f"  given up       {r.given_up:>9,}   sent to the on-failure queue ({r.on_failure_messages} messages)",
        f"  lost           {r.lost:>9,}   "
        + ("OK: every record predicted, skipped or quarantined" if r.ok else "FAILED: see the problems below"),
        "",
        f"  batches        {stats.batches:>9,}   {stats.invocations:,} invocations, {stats.retries} retries, "
        f"{stats.bisections} bisections",
        f"  cold starts    {stats.cold_starts:>9,}   " + (f"init {inits[0]:,.0f}-{inits[-1]:,.0f} ms" if inits else ""),
        f"  duration       p50 {stats.duration_ms(50) or 0:,.1f} ms, p95 {stats.duration_ms(95) or 0:,.1f} ms "
        "(REPORT Duration)",
        f"  throughput     {stats.records_per_s:>9,.0f}   records/s ({stats.records_handled:,} records in {wall:.1f} s, "
        "cold starts included)",
        f"  Lambda cost    x86_64 ${prices['x86_64']:.5f}, arm64 ${prices['arm64']:.5f} for this ingest: "
        f"{int(usage.requests):,} requests, {usage.gb_seconds:,.1f} GB-s billed at the durations measured here "
        "(no free tier)",
        "",
        f"  where the {wall:.1f} s went ({os.cpu_count()} CPU cores)",
        f"    function     {busy_s:>6.1f} s  summed over the invocations, {busy_s / wall:.1f} in flight on average: "
        f"predict {r.function.predict_s:.1f} s, moto answering its {writes.calls:,} BatchWriteItem calls "
        f"{writes.wall_s:.1f} s, the rest {busy_s - r.function.predict_s - writes.wall_s:.1f} s",
        f"    moto         {moto_wall:>6.1f} s  handling {sum(op.calls for op in moto.values()):,} requests: "
        + ", ".join(f"{name} {op.calls:,} x {op.wall_s / op.calls * 1000:.1f} ms" for name, op in _top(moto, 2)),
        f"    CPU          {r.process_cpu_s:>6.1f} s  in this process ({r.process_cpu_s / wall:.0%} of one core: moto "
        f"{moto_cpu:.1f} s, the rest the mapping and the runtime's glue); workers {worker_cpu_s:.1f} s + inits",
        f"    before       {r.write_s:>6.1f} s  writing the ingest: "
        + ", ".join(f"{name} {op.calls:,} x {op.wall_s / op.calls * 1000:.1f} ms" for name, op in _top(ingest, 1)),
        "",
        f"  results        DynamoDB table {r.results_table}: {r.predicted:,} items, "
        + ("one per good record" if not r.problems else "see the problems below")
        + " (checked by a scan; on the embedded endpoint, gone when it stops)",
        f"                 {_rel(r.csv_path)} (the table, exported in {r.export_s:.1f} s)",
        f"  function log   {_rel(r.log_path)}",
    ]
    lines += [f"  PROBLEM        {problem}" for problem in r.problems]
    return "\n".join(line.rstrip() for line in lines)


def _top(operations: dict[str, OperationTime], n: int = 3) -> Iterator[tuple[str, OperationTime]]:
    yield from sorted(operations.items(), key=lambda item: -item[1].wall_s)[:n]
