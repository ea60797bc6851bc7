"""One replay end to end: the options, the run, and what it did (``make demo``).

One run (:func:`run_replay`):

1. starts the AWS endpoint (:class:`localtwin.embedded_aws.EmbeddedAWS`: stock moto's server
   in a process of its own; with ``fast_moto``, sped up there);
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

With ``candidate_zip`` (a candidate model layer, files under ``candidate/``), the function runs
with it as a third layer and ``SHADOW_RESULTS_TABLE`` naming a table of its own, exported to
``shadow.csv`` beside ``results.csv`` (:mod:`inference.shadow`; ``make demo STRATEGY=shadow``).

With ``faults``, the function's workers reach the endpoint through the fault proxy
(:class:`localtwin.faults.SinkFaults`); the mapping and the checks go to it directly.

**Accounting.** Every record carries a tag saying what it was written as (the Kinesis
partition key ``review-<n>``, the DynamoDB attribute ``op``), and the invoker wrapper
notes the tag of each record id the function is handed. The results table (exported,
:func:`localtwin.replay.results.export_results`) gives the ids that were predicted, the function's ``record quarantined`` log lines the
ids it quarantined, its EMF documents the counts. The run is good when every good
record has exactly one result, every malformed one was quarantined, every delete was
skipped (or, with the DynamoDB source's default filter, never delivered: ``filtered``), the
counts agree, and nothing is left over: ``lost`` = records written - predicted - skipped -
filtered - quarantined - given up (sent to the on-failure queue) is 0.

The cost and time figures of the summary are :mod:`localtwin.replay.summary`'s,
:mod:`localtwin.replay.meter`'s (the endpoint, per operation) and :mod:`localtwin.replay.cpu`'s
(every process's CPU over the replay).
"""

from __future__ import annotations

import json
import random
import shutil
import time
from collections import Counter
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from localtwin.embedded_aws import EmbeddedAWS
from localtwin.faults import FaultCounts, FaultPlan, SinkFaults
from localtwin.invoke import BUILD, DEFAULT_FUNCTION, INVOKE_LAYERS
from localtwin.mapping.engine import EventSourceMapping
from localtwin.mapping.stats import MappingStats
from localtwin.mapping.streams import open_stream
from localtwin.replay.cpu import CpuSplit, cpu_split, read_cpu
from localtwin.replay.ingest import RecordingInvoker, dynamodb_ingest, kinesis_ingest, write_dynamodb, write_kinesis
from localtwin.replay.meter import OperationTime, read_timeline, since
from localtwin.replay.results import check_records, export_csv, export_results
from localtwin.replay.tally import FunctionTally, tally_logs
from localtwin.replay.waits import InvocationWaits, invocation_waits, read_send_logs
from localtwin.runtime.pool import LocalLambda
from release.settings import Settings, load_settings

OUT_DIR = BUILD / "demo"
SOURCE_NAME = "reviews"
QUEUE_NAME = "stream-inference-failures"
QUARANTINE_QUEUE_NAME = "stream-inference-quarantine"
DEFAULT_RESULTS_TABLE = "stream-inference-results"
#: The candidate's results table, with ``candidate_zip``.
DEFAULT_SHADOW_TABLE = "stream-inference-shadow-results"
#: The S3 bucket the results table is exported to at the end (on the local endpoint).
EXPORT_BUCKET = "stream-inference-results-export"


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
    fast_moto : bool
        Run the endpoint with :mod:`localtwin.moto_speedups` (moto's slow paths replaced in
        its process, same answers); stock moto otherwise.
    candidate_zip : Path, optional
        A candidate model layer in shadow, attached after ``layer_zips`` (module docstring).
    snap_start : bool
        SnapStart in the local Lambda: one init, snapshotted, every cold start a restore
        (:mod:`localtwin.runtime.snapshot`).
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
    fast_moto: bool = False
    candidate_zip: Path | None = None
    snap_start: bool = False


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
    #: Records the mapping's filter patterns dropped before invocation (never delivered, never billed).
    filtered: int
    given_up: int
    labels: Counter[str]
    on_failure_messages: int
    problems: list[str]
    write_s: float
    export_s: float
    #: The cores' time while the mapping ran, by process.
    cpu: CpuSplit
    ingest_requests: dict[str, OperationTime]
    replay_requests: dict[str, OperationTime]
    #: Per shard: the mapping's checkpoint at the end, and the shard's last sequence number.
    checkpoints: dict[str, str | None] = field(default_factory=dict)
    shard_ends: dict[str, str | None] = field(default_factory=dict)
    #: The quarantine queue's messages (parsed), with ``quarantine_queue``.
    quarantine_messages: list[dict[str, Any]] = field(default_factory=list)
    #: What was injected, with ``faults``.
    faults: FaultCounts | None = None
    #: The candidate's results table exported (``shadow.csv``), with ``candidate_zip``.
    shadow_csv_path: Path | None = None
    #: With ``snap_start``: the snapshot's init (once), in milliseconds.
    snapshot_init_ms: float | None = None
    #: The invocations' durations summed, split by timestamps (:mod:`localtwin.replay.waits`).
    waits: InvocationWaits = field(default_factory=InvocationWaits)

    @property
    def lost(self) -> int:
        """Records neither predicted, skipped, filtered out, quarantined nor given up on."""
        return self.written - self.predicted - self.skipped - self.filtered - self.quarantined - self.given_up

    @property
    def ok(self) -> bool:
        return not self.problems and self.lost == 0 and self.given_up == 0


def run_replay(
    options: ReplayOptions,
    settings: Settings | None = None,
    write_progress: Callable[[int], None] | None = None,
    progress: Callable[[int], None] | None = None,
) -> ReplayResult:
    """Run one replay end to end (see the module docstring: :mod:`localtwin.replay.run`).

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
    pairs: list[tuple[str, bytes]] = []  # Kinesis: (partition key, data)
    requests: list[dict[str, Any]] = []  # DynamoDB: BatchWriteItem requests
    if options.source == "kinesis":
        expect, pairs = kinesis_ingest(options.records, options.poison_share, options.seed)
    else:
        expect, requests = dynamodb_ingest(options.records, options.poison_share, options.change_share, options.seed)
    step = write_progress or (lambda n: None)

    with ExitStack() as stack:
        aws = stack.enter_context(EmbeddedAWS(fast_moto=options.fast_moto))
        aws.create_table(results_table, key="record_id")
        queue_url, queue_arn = aws.create_queue(QUEUE_NAME + suffix)
        shadow_env: dict[str, str] = {}
        if options.candidate_zip is not None:
            shadow_env = {"SHADOW_RESULTS_TABLE": DEFAULT_SHADOW_TABLE + suffix}
            aws.create_table(shadow_env["SHADOW_RESULTS_TABLE"], key="record_id")
        quarantine_env: dict[str, str] = {}
        if options.quarantine_queue:
            quarantine_url, _ = aws.create_queue(QUARANTINE_QUEUE_NAME + suffix)
            quarantine_env = {"QUARANTINE_QUEUE_URL": quarantine_url}
        if options.source == "kinesis":
            source_arn = aws.create_kinesis_stream(source_name, shards=options.shards)
        else:
            source_arn = aws.create_table_with_stream(source_name)
        before = aws.meter().operations
        started = time.perf_counter()
        if options.source == "kinesis":
            written_records = write_kinesis(aws, source_arn, pairs, step)
        else:
            written_records = write_dynamodb(aws, source_name, requests, step)
        write_s = time.perf_counter() - started
        after_ingest = aws.meter().operations
        ingest_requests = since(after_ingest, before)

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
        send_log = out / "sends"
        shutil.rmtree(send_log, ignore_errors=True)
        send_log.mkdir()
        faults = (
            stack.enter_context(SinkFaults(options.faults, results_table, aws.endpoint_url)) if options.faults else None
        )
        with LocalLambda(
            options.function_zip,
            [*options.layer_zips, *([options.candidate_zip] if options.candidate_zip is not None else [])],
            environment={
                **function.environment,
                **aws.environment(),
                **({"AWS_ENDPOINT_URL": faults.url} if faults is not None else {}),
                "RESULTS_TABLE": results_table,
                **shadow_env,
                **quarantine_env,
            },
            memory_mb=function.memory_mb,
            timeout_s=function.timeout_s,
            max_environments=environments,
            function_name=function.name,
            log=log_path,
            workdir=out / "lambda",
            snap_start=options.snap_start,
            send_log=send_log,
        ) as runtime:
            recorder.invoker = runtime
            if progress is not None:
                progress(0)
            if faults is not None:
                rng = random.Random(faults.plan.seed)
                faults.kill = lambda: runtime.kill_invoking_environment(rng.choice)
            cpu_before = read_cpu(aws.pid, runtime.workers_cpu_s)
            stats = esm.run_until_drained(
                expected_records=options.records, timeout_s=options.timeout_s, progress=progress
            )
            cpu = cpu_split(cpu_before, read_cpu(aws.pid, runtime.workers_cpu_s))
            replay_requests = since(aws.meter().operations, after_ingest)
            timeline = read_timeline(aws.endpoint_url)
            snapshot_init_ms = runtime.snapshot_init_ms
        checkpoints = esm.checkpoints
        shard_ends = {shard.shard_id: stream.last_sequence(shard.shard_id) for shard in stream.list_shards()}
        quarantine_messages = (
            [json.loads(body) for body in aws.receive_all(quarantine_env["QUARANTINE_QUEUE_URL"])]
            if quarantine_env
            else []
        )

        started = time.perf_counter()
        items = export_results(aws, results_table, EXPORT_BUCKET + suffix)
        export_csv(items, csv_path)
        export_s = time.perf_counter() - started
        shadow_csv_path = None
        if shadow_env:
            shadow_csv_path = out / "shadow.csv"
            shadow_items = export_results(aws, shadow_env["SHADOW_RESULTS_TABLE"], EXPORT_BUCKET + suffix + "-shadow")
            export_csv(shadow_items, shadow_csv_path)
        on_failure_messages = len(aws.receive_all(queue_url))

    tally = tally_logs(stats)
    waits = invocation_waits((call.result.report for call in stats.invocation_log), timeline, read_send_logs(send_log))
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
        filtered=stats.records_filtered,
        given_up=stats.records_to_on_failure + stats.records_discarded,
        labels=Counter(str(item.get("label")) for item in items),
        on_failure_messages=on_failure_messages,
        problems=check_records(expect, recorder.tags, result_ids, tally, written_records, stats.records_filtered),
        write_s=write_s,
        export_s=export_s,
        cpu=cpu,
        ingest_requests=ingest_requests,
        replay_requests=replay_requests,
        snapshot_init_ms=snapshot_init_ms,
        checkpoints=checkpoints,
        shard_ends=shard_ends,
        quarantine_messages=quarantine_messages,
        faults=faults.counts if faults is not None else None,
        shadow_csv_path=shadow_csv_path,
        waits=waits,
    )
