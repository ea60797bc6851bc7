"""The local event source mapping against moto's embedded server, with scripted functions.

Every test writes records to a fresh Kinesis stream (or DynamoDB table) on one
embedded endpoint, runs :class:`localtwin.mapping.engine.EventSourceMapping` until the stream
is drained, and checks what a scripted in-process invoker saw. The invoker logs each
call and the records it *accepted* (those before the first failure it reported, none
when it failed), so "nothing lost, order kept" is checked from the function's side.
"""

from __future__ import annotations

import base64
import json
import random
import threading
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any

import pytest

from localtwin.embedded_aws import EmbeddedAWS
from localtwin.mapping.engine import EventSourceMapping
from localtwin.mapping.judge import judge_response
from localtwin.runtime.report import PAYLOAD_LIMIT_BYTES as MAX_PAYLOAD_BYTES
from localtwin.runtime.report import InvokeResult, Report
from release.settings import EventSource, load_settings

pytestmark = pytest.mark.aws

# --- a scripted invoker implementing the Invoker protocol -------------------------------


def report() -> Report:
    """The REPORT of every scripted invocation: 2 ms."""
    return Report(
        str(uuid.uuid4()), duration_ms=2.0, billed_ms=2, memory_mb=1024, max_memory_mb=90, init_ms=None, cpu_ms=1.0
    )


def ok() -> tuple[Any, None]:
    return {"batchItemFailures": []}, None


def fail_at(sequence: str) -> tuple[Any, None]:
    return {"batchItemFailures": [{"itemIdentifier": sequence}]}, None


def error(kind: str = "ValueError") -> tuple[None, dict[str, str]]:
    return None, {"errorType": kind, "errorMessage": f"scripted {kind}"}


def seq(record: dict[str, Any]) -> str:
    if record["eventSource"] == "aws:kinesis":
        return record["kinesis"]["sequenceNumber"]
    return record["dynamodb"]["SequenceNumber"]


def seqs(records: list[dict[str, Any]]) -> list[int]:
    return [int(seq(r)) for r in records]


def shard_of(record: dict[str, Any]) -> str:
    return record["eventID"].split(":")[0]


def grouped(pairs: Iterable[tuple[str, int]]) -> dict[str, list[int]]:
    """``(key, sequence)`` pairs -> the sequences of each key, in the order given."""
    out: dict[str, list[int]] = defaultdict(list)
    for key, sequence in pairs:
        out[key].append(sequence)
    return out


Script = Callable[[list[dict[str, Any]], int], tuple[Any, dict[str, Any] | None]]


class ScriptedInvoker:
    """``script(records, call_index) -> (payload, error)``; thread-safe, logs everything."""

    def __init__(self, script: Script, delay_s: float = 0.0) -> None:
        self.script = script
        self.delay_s = delay_s
        self.lock = threading.Lock()
        self.calls: list[list[dict[str, Any]]] = []
        self.accepted: list[dict[str, Any]] = []
        self.active = 0
        self.max_active = 0
        self.active_by_shard: Counter[str] = Counter()
        self.max_by_shard: Counter[str] = Counter()
        self.cold = True

    def invoke(self, event: dict[str, Any]) -> InvokeResult:
        assert len(json.dumps(event)) <= MAX_PAYLOAD_BYTES
        records = event["Records"]
        shard = shard_of(records[0]) if records[0]["eventSource"] == "aws:kinesis" else "ddb"
        with self.lock:
            index = len(self.calls)
            self.calls.append(records)
            self.active += 1
            self.max_active = max(self.max_active, self.active)
            self.active_by_shard[shard] += 1
            self.max_by_shard[shard] = max(self.max_by_shard[shard], self.active_by_shard[shard])
            cold, self.cold = self.cold, False
        try:
            if self.delay_s:
                time.sleep(self.delay_s)
            payload, err = self.script(records, index)
        finally:
            with self.lock:
                self.active -= 1
                self.active_by_shard[shard] -= 1
        if err is None:
            with self.lock:
                self.accepted.extend(records[: self.cutoff(payload, records)])
        return InvokeResult(payload, err, report(), cold=cold)

    @staticmethod
    def cutoff(payload: Any, records: list[dict[str, Any]]) -> int:
        """How many records the function considers done (the test's own oracle)."""
        failures = payload.get("batchItemFailures") if isinstance(payload, dict) else None
        if payload is not None and not isinstance(payload, dict):
            return 0
        if not failures:
            return len(records)
        if not isinstance(failures, list):
            return 0
        positions = {seq(r): i for i, r in enumerate(records)}
        found = [positions.get(f.get("itemIdentifier")) if isinstance(f, dict) else None for f in failures]
        return 0 if None in found else min(found)  # type: ignore[type-var]

    def deliveries(self) -> Counter[int]:
        return Counter(s for call in self.calls for s in seqs(call))


def always_ok(records: list[dict[str, Any]], index: int) -> tuple[Any, None]:
    return ok()


# --- the embedded endpoint ------------------------------------------------------------------


@pytest.fixture(scope="module")
def aws() -> Any:
    with EmbeddedAWS() as embedded:
        yield embedded


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def queue(aws: EmbeddedAWS) -> tuple[str, str]:
    return aws.create_queue(unique("failures"))


def put(aws: EmbeddedAWS, arn: str, items: list[tuple[str, bytes]]) -> list[tuple[str, int, str]]:
    """Write records one PutRecords call at a time; return ``(shard, sequence, key)`` each."""
    kinesis = aws.client("kinesis")
    written = []
    for start in range(0, len(items), 500):
        chunk = items[start : start + 500]
        response = kinesis.put_records(StreamARN=arn, Records=[{"PartitionKey": k, "Data": d} for k, d in chunk])
        for (key, _), entry in zip(chunk, response["Records"]):
            written.append((entry["ShardId"], int(entry["SequenceNumber"]), key))
    return written


def kinesis_stream(aws: EmbeddedAWS, n: int, shards: int = 1, keys: int = 1) -> tuple[str, list]:
    arn = aws.create_kinesis_stream(unique("stream"), shards)
    items = [(f"key-{i % keys}", json.dumps({"text": f"review {i}", "i": i}).encode()) for i in range(n)]
    return arn, put(aws, arn, items)


def mapping(
    aws: EmbeddedAWS, invoker: ScriptedInvoker, arn: str, queue_arn: str, kind: str = "kinesis", **options: Any
) -> EventSourceMapping:
    source = EventSource(
        type=kind,  # type: ignore[arg-type]
        source_arn=arn,
        on_failure_destination_arn=queue_arn,
        batch_size=10,
        maximum_batching_window_s=0,
        parallelization_factor=1,
        bisect_batch_on_function_error=False,
        maximum_retry_attempts=-1,
        maximum_record_age_s=-1,
    )
    options.setdefault("poll_interval_s", 0.02)
    return EventSourceMapping(source, invoker, client_factory=aws.client, **options)


def failure_messages(aws: EmbeddedAWS, queue_url: str) -> list[dict[str, Any]]:
    return [json.loads(body) for body in aws.receive_all(queue_url)]


# --- judging responses (no endpoint needed) ----------------------------------------------------


@pytest.mark.parametrize(
    "payload", [None, {}, {"batchItemFailures": []}, {"batchItemFailures": None}, {"predictions": {}}]
)
def test_judge_success_forms(payload: Any) -> None:
    assert judge_response(payload, None, ["1", "2"]).kind == "success"


@pytest.mark.parametrize(
    "failures",
    [[{"itemIdentifier": ""}], [{"itemIdentifier": None}], [{"itemId": "2"}], [{"itemIdentifier": "9"}], ["2"], "2"],
)
def test_judge_invalid_forms(failures: Any) -> None:
    assert judge_response({"batchItemFailures": failures}, None, ["1", "2"]).kind == "invalid"


def test_judge_lowest_reported_and_errors() -> None:
    payload = {"batchItemFailures": [{"itemIdentifier": "3"}, {"itemIdentifier": "2"}]}
    assert judge_response(payload, None, ["1", "2", "3"]).resume_at == 1
    assert judge_response("not an object", None, ["1"]).kind == "invalid"
    assert judge_response(None, {"errorType": "Sandbox.Timedout"}, ["1"]).reason == "Sandbox.Timedout"
    assert judge_response(payload, None, ["1", "2", "3"], report_batch_item_failures=False).kind == "success"


# --- batching ----------------------------------------------------------------------------------------


def test_batches_in_order_up_to_batch_size(aws: EmbeddedAWS, queue: tuple[str, str]) -> None:
    arn, written = kinesis_stream(aws, 25)
    invoker = ScriptedInvoker(always_ok)
    handled: list[int] = []
    esm = mapping(aws, invoker, arn, queue[1])
    stats = esm.run_until_drained(expected_records=25, timeout_s=20, progress=handled.append)
    assert [len(call) for call in invoker.calls] == [10, 10, 5]
    assert [s for call in invoker.calls for s in seqs(call)] == [w[1] for w in written]
    assert handled == sorted(handled) and handled[-1] == 25
    assert (stats.records_in, stats.records_succeeded, stats.batches, stats.invocations) == (25, 25, 3, 3)
    assert esm.checkpoints == {written[-1][0]: str(written[-1][1])}
    assert stats.cold_starts == 1 and stats.duration_ms(50) == 2.0


def test_lambda_shaped_kinesis_records(aws: EmbeddedAWS, queue: tuple[str, str]) -> None:
    arn, written = kinesis_stream(aws, 2)
    invoker = ScriptedInvoker(always_ok)
    before = time.time()
    mapping(aws, invoker, arn, queue[1], invoke_identity_arn="arn:aws:iam::123456789012:role/r").run_until_drained(
        2, timeout_s=20
    )
    record = invoker.calls[0][0]
    shard, sequence, key = written[0]
    assert record == {
        "kinesis": {
            "kinesisSchemaVersion": "1.0",
            "partitionKey": key,
            "sequenceNumber": str(sequence),
            "data": base64.b64encode(json.dumps({"text": "review 0", "i": 0}).encode()).decode(),
            "approximateArrivalTimestamp": record["kinesis"]["approximateArrivalTimestamp"],
        },
        "eventSource": "aws:kinesis",
        "eventVersion": "1.0",
        "eventID": f"{shard}:{sequence}",
        "eventName": "aws:kinesis:record",
        "invokeIdentityArn": "arn:aws:iam::123456789012:role/r",
        "awsRegion": "us-east-1",
        "eventSourceARN": arn,
    }
    assert before - 60 < record["kinesis"]["approximateArrivalTimestamp"] <= time.time()


def test_batching_window_gathers_late_records(aws: EmbeddedAWS, queue: tuple[str, str]) -> None:
    arn, _ = kinesis_stream(aws, 5)
    invoker = ScriptedInvoker(always_ok)
    esm = mapping(aws, invoker, arn, queue[1], batch_size=100, maximum_batching_window_s=1.0).start()
    try:
        time.sleep(0.3)
        assert invoker.calls == []  # still inside the window
        put(aws, arn, [("late", b'{"text": "late"}')] * 5)
        esm.wait_drained(expected_records=10, timeout_s=20)
    finally:
        esm.stop()
    assert [len(call) for call in invoker.calls] == [10]


def test_payload_cap_splits_a_batch(aws: EmbeddedAWS, queue: tuple[str, str]) -> None:
    arn = aws.create_kinesis_stream(unique("big"), 1)
    kinesis = aws.client("kinesis")
    for i in range(8):
        kinesis.put_record(StreamARN=arn, PartitionKey="k", Data=bytes([65 + i]) * 900_000)
    invoker = ScriptedInvoker(always_ok)
    stats = mapping(aws, invoker, arn, queue[1], batch_size=100).run_until_drained(8, timeout_s=30)
    # 900,000 bytes -> 1.2 MB of base64: five records fit in 6 MB, six do not.
    assert [len(call) for call in invoker.calls] == [5, 3]
    sizes = [len(json.dumps({"Records": call})) for call in invoker.calls]
    assert sizes == [call.payload_bytes for call in stats.invocation_log]
    assert max(sizes) <= MAX_PAYLOAD_BYTES < sizes[0] + len(json.dumps(invoker.calls[1][0]))


# --- ReportBatchItemFailures -------------------------------------------------------------------------


def test_fail_at_record_k_resumes_at_k(aws: EmbeddedAWS, queue: tuple[str, str]) -> None:
    arn, written = kinesis_stream(aws, 30)
    k = written[3][1]  # the 4th record of the first batch

    def script(records: list[dict[str, Any]], index: int) -> Any:
        return fail_at(str(k)) if index == 0 else ok()

    invoker = ScriptedInvoker(script)
    esm = mapping(aws, invoker, arn, queue[1])
    stats = esm.run_until_drained(30, timeout_s=20)
    assert seqs(invoker.calls[1]) == [w[1] for w in written[3:10]]  # resumed at k, to the batch's end
    deliveries = invoker.deliveries()
    assert all(deliveries[w[1]] == 1 for w in written[:3])  # before k: never redelivered
    assert all(deliveries[w[1]] == 2 for w in written[3:10])  # k and after: redelivered
    assert all(deliveries[w[1]] == 1 for w in written[10:])
    assert [int(seq(r)) for r in invoker.accepted] == [w[1] for w in written]
    assert (stats.partial_failures, stats.retries, stats.invocations) == (1, 1, 4)
    assert esm.checkpoints == {written[0][0]: str(written[-1][1])}


@pytest.mark.parametrize(
    "payload",
    [
        {"batchItemFailures": []},
        {"batchItemFailures": None},
        None,
        {},
        {"predictions": {"x": {"label": "fresh"}}},
    ],
    ids=["empty-list", "null-list", "null-response", "empty-response", "no-failures-key"],
)
def test_success_responses_are_not_retried(aws: EmbeddedAWS, queue: tuple[str, str], payload: Any) -> None:
    arn, _ = kinesis_stream(aws, 20)
    invoker = ScriptedInvoker(lambda records, index: (payload, None))
    stats = mapping(aws, invoker, arn, queue[1]).run_until_drained(20, timeout_s=20)
    assert (stats.invocations, stats.retries) == (2, 0)
    assert set(invoker.deliveries().values()) == {1}


@pytest.mark.parametrize(
    "failures",
    [
        [{"itemIdentifier": ""}],
        [{"itemIdentifier": None}],
        [{"itemIdentifer": "1"}],
        [{"itemIdentifier": "123456789"}],
        "not-a-list",
    ],
    ids=["empty-id", "null-id", "wrong-key", "not-in-batch", "not-a-list"],
)
def test_invalid_identifiers_fail_the_whole_batch(aws: EmbeddedAWS, queue: tuple[str, str], failures: Any) -> None:
    arn, written = kinesis_stream(aws, 10)

    def script(records: list[dict[str, Any]], index: int) -> Any:
        return ({"batchItemFailures": failures}, None) if index == 0 else ok()

    invoker = ScriptedInvoker(script)
    stats = mapping(aws, invoker, arn, queue[1]).run_until_drained(10, timeout_s=20)
    assert seqs(invoker.calls[0]) == seqs(invoker.calls[1]) == [w[1] for w in written]
    assert (stats.invalid_responses, stats.retries, stats.records_succeeded) == (1, 1, 10)


# --- function errors, bisection, retries, on-failure destination ------------------------------------


@pytest.mark.parametrize("kind", ["ValueError", "Sandbox.Timedout", "Runtime.ExitError"])
def test_function_error_retries_the_whole_batch(aws: EmbeddedAWS, queue: tuple[str, str], kind: str) -> None:
    """The handler raised, timed out, or its worker died mid-batch: the batch comes again."""
    arn, written = kinesis_stream(aws, 10)
    invoker = ScriptedInvoker(lambda records, index: error(kind) if index == 0 else ok())
    stats = mapping(aws, invoker, arn, queue[1]).run_until_drained(10, timeout_s=20)
    assert seqs(invoker.calls[0]) == seqs(invoker.calls[1]) == [w[1] for w in written]
    assert stats.error_types == {kind: 1} and stats.retries == 1 and stats.bisections == 0
    assert [int(seq(r)) for r in invoker.accepted] == [w[1] for w in written]


def test_bisect_isolates_a_poison_record_then_gives_up(aws: EmbeddedAWS, queue: tuple[str, str]) -> None:
    arn, written = kinesis_stream(aws, 16)
    poison = written[10][1]

    def script(records: list[dict[str, Any]], index: int) -> Any:
        return error() if poison in seqs(records) else ok()

    invoker = ScriptedInvoker(script)
    esm = mapping(
        aws, invoker, arn, queue[1], batch_size=16, bisect_batch_on_function_error=True, maximum_retry_attempts=2
    )
    stats = esm.run_until_drained(16, timeout_s=20)
    all_seqs = [w[1] for w in written]
    assert (
        [seqs(call) for call in invoker.calls]
        == [
            all_seqs,
            all_seqs[:8],
            all_seqs[8:],
            all_seqs[8:12],
            all_seqs[8:10],
            all_seqs[10:12],
            [poison],
            [poison],  # retry 1
            [poison],  # retry 2, then given up
            all_seqs[11:12],
            all_seqs[12:],
        ]
    )
    assert (stats.bisections, stats.retries, stats.records_to_on_failure, stats.records_succeeded) == (4, 2, 1, 15)
    assert [int(seq(r)) for r in invoker.accepted] == [s for s in all_seqs if s != poison]
    assert esm.checkpoints == {written[0][0]: str(all_seqs[-1])}  # moved past the poison record
    [message] = failure_messages(aws, queue[0])
    assert message["KinesisBatchInfo"]["startSequenceNumber"] == message["KinesisBatchInfo"]["endSequenceNumber"]
    assert message["KinesisBatchInfo"]["startSequenceNumber"] == str(poison)
    assert message["requestContext"]["approximateInvokeCount"] == 7


def test_failure_reported_on_a_bisected_half(aws: EmbeddedAWS, queue: tuple[str, str]) -> None:
    arn, written = kinesis_stream(aws, 8)
    all_seqs = [w[1] for w in written]

    def script(records: list[dict[str, Any]], index: int) -> Any:
        if index == 0:
            return error()
        if seqs(records) == all_seqs[4:]:
            return fail_at(str(all_seqs[5]))
        return ok()

    invoker = ScriptedInvoker(script)
    stats = mapping(aws, invoker, arn, queue[1], batch_size=8, bisect_batch_on_function_error=True).run_until_drained(
        8, timeout_s=20
    )
    assert [seqs(call) for call in invoker.calls] == [all_seqs, all_seqs[:4], all_seqs[4:], all_seqs[5:]]
    assert (stats.bisections, stats.partial_failures, stats.retries) == (1, 1, 1)
    assert [int(seq(r)) for r in invoker.accepted] == all_seqs


def test_retries_exhausted_goes_to_the_on_failure_queue(aws: EmbeddedAWS, queue: tuple[str, str]) -> None:
    arn, written = kinesis_stream(aws, 10)
    first = [w[1] for w in written[:5]]

    def script(records: list[dict[str, Any]], index: int) -> Any:
        return error("Runtime.ExitError") if seqs(records) == first else ok()

    invoker = ScriptedInvoker(script)
    function_arn = "arn:aws:lambda:us-east-1:123456789012:function:stream-inference:live"
    esm = mapping(aws, invoker, arn, queue[1], batch_size=5, maximum_retry_attempts=2, function_arn=function_arn)
    stats = esm.run_until_drained(10, timeout_s=20)
    assert [seqs(call) for call in invoker.calls] == [first] * 3 + [[w[1] for w in written[5:]]]
    assert esm.checkpoints[written[0][0]] == str(written[-1][1])
    [message] = failure_messages(aws, queue[0])
    last_request = stats.invocation_log[2].result.report.request_id
    info = message.pop("KinesisBatchInfo")
    timestamp = message.pop("timestamp")
    assert message == {
        "requestContext": {
            "requestId": last_request,
            "functionArn": function_arn,
            "condition": "RetryAttemptsExhausted",
            "approximateInvokeCount": 3,
        },
        "responseContext": {"statusCode": 200, "executedVersion": "$LATEST", "functionError": "Unhandled"},
        "version": "1.0",
    }
    assert timestamp.endswith("Z") and "T" in timestamp
    arrivals = [r["kinesis"]["approximateArrivalTimestamp"] for r in invoker.calls[0]]
    assert info == {
        "shardId": written[0][0],
        "startSequenceNumber": str(first[0]),
        "endSequenceNumber": str(first[-1]),
        "approximateArrivalOfFirstRecord": info["approximateArrivalOfFirstRecord"],
        "approximateArrivalOfLastRecord": info["approximateArrivalOfLastRecord"],
        "batchSize": 5,
        "streamArn": arn,
    }
    for key, arrival in zip(("approximateArrivalOfFirstRecord", "approximateArrivalOfLastRecord"), arrivals[::4]):
        assert info[key].endswith("Z")
        assert abs(datetime.fromisoformat(info[key].replace("Z", "+00:00")).timestamp() - arrival) < 0.002
    assert (stats.records_to_on_failure, stats.on_failure_messages, stats.retries) == (5, 1, 2)


def test_partial_failures_use_up_retries_too(aws: EmbeddedAWS, queue: tuple[str, str]) -> None:
    arn, written = kinesis_stream(aws, 5)
    stuck = str(written[2][1])
    invoker = ScriptedInvoker(lambda records, index: fail_at(stuck))
    stats = mapping(aws, invoker, arn, queue[1], maximum_retry_attempts=2).run_until_drained(5, timeout_s=20)
    tail = [w[1] for w in written[2:]]
    assert [seqs(call) for call in invoker.calls] == [[w[1] for w in written], tail, tail]
    [message] = failure_messages(aws, queue[0])
    assert message["responseContext"] == {"statusCode": 200, "executedVersion": "$LATEST"}  # no function error
    assert message["KinesisBatchInfo"]["batchSize"] == 3
    assert (stats.records_succeeded, stats.records_to_on_failure) == (2, 3)


def test_record_age_exceeded(aws: EmbeddedAWS, queue: tuple[str, str]) -> None:
    arn, written = kinesis_stream(aws, 5)
    offset = [0.0]

    def script(records: list[dict[str, Any]], index: int) -> Any:
        offset[0] = 7200.0  # two hours pass while the function fails
        return error()

    invoker = ScriptedInvoker(script)
    esm = mapping(aws, invoker, arn, queue[1], maximum_record_age_s=3600, clock=lambda: time.time() + offset[0])
    stats = esm.run_until_drained(5, timeout_s=20)
    assert len(invoker.calls) == 1  # the retry found the records expired
    [message] = failure_messages(aws, queue[0])
    assert message["requestContext"]["condition"] == "RecordAgeExceeded"
    assert message["requestContext"]["approximateInvokeCount"] == 1
    assert message["KinesisBatchInfo"]["batchSize"] == 5
    assert stats.records_expired == 5 and esm.checkpoints[written[0][0]] == str(written[-1][1])


def test_iterator_age_is_the_last_records_age_when_the_batch_is_sent(aws: EmbeddedAWS, queue: tuple[str, str]) -> None:
    arn, _ = kinesis_stream(aws, 25)
    sent_at: list[float] = []
    now = [0.0]

    def clock() -> float:
        return now[0]

    def script(records: list[dict[str, Any]], index: int) -> Any:
        sent_at.append(now[0])
        now[0] += 30.0  # each invocation takes 30 s on this clock
        return ok()

    invoker = ScriptedInvoker(script)
    records = aws.client("kinesis").get_records(
        ShardIterator=aws.client("kinesis").get_shard_iterator(
            StreamARN=arn, ShardId="shardId-000000000000", ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"],
        StreamARN=arn,
    )["Records"]
    arrivals = [r["ApproximateArrivalTimestamp"].timestamp() for r in records]
    now[0] = max(arrivals) + 5.0
    esm = mapping(aws, invoker, arn, queue[1], clock=clock)
    stats = esm.run_until_drained(25, timeout_s=20)
    ages = [call.iterator_age_ms for call in stats.invocation_log]
    lasts = [arrivals[min(i * 10 + 9, 24)] for i in range(3)]  # batches of 10, 10 and 5
    assert ages == pytest.approx([(at - last) * 1000 for at, last in zip(sent_at, lasts)], abs=1)
    assert 5000 <= ages[0] < 6000 and ages[2] > ages[1] + 29_000 > ages[0] + 58_000  # the backlog ages
    assert stats.iterator_age_ms(100) == max(ages) and stats.iterator_age_ms(50) == sorted(ages)[1]


# --- nothing lost, order kept -----------------------------------------------------------------------------


def flaky(seed: int) -> Script:
    """Fails about 40% of deliveries (raise, or report a failure at a random record).

    Deterministic per batch and delivery; a batch delivered a fourth time succeeds, so
    a run always ends whatever the interleaving of shards and lanes.
    """
    attempts: Counter[tuple[str, int]] = Counter()
    lock = threading.Lock()

    def script(records: list[dict[str, Any]], index: int) -> Any:
        key = (seq(records[0]), len(records))
        with lock:
            attempts[key] += 1
            attempt = attempts[key]
        rng = random.Random(f"{seed}:{key}:{attempt}")
        roll = rng.random() if attempt <= 3 else 1.0
        if roll < 0.2:
            return error()
        if roll < 0.4:
            return fail_at(seq(rng.choice(records)))
        return ok()

    return script


def test_nothing_lost_and_order_kept_per_shard(aws: EmbeddedAWS, queue: tuple[str, str]) -> None:
    arn, written = kinesis_stream(aws, 600, shards=3, keys=40)
    invoker = ScriptedInvoker(flaky(1), delay_s=0.002)
    esm = mapping(aws, invoker, arn, queue[1], batch_size=25, bisect_batch_on_function_error=True)
    stats = esm.run_until_drained(600, timeout_s=30)
    expected = grouped((shard, sequence) for shard, sequence, _ in written)
    seen = grouped((shard_of(record), int(seq(record))) for record in invoker.accepted)
    assert len(expected) == 3
    assert seen == expected  # every record accepted once, in sequence order per shard
    assert all(len({shard_of(r) for r in call}) == 1 for call in invoker.calls)  # one shard per batch
    assert set(invoker.max_by_shard.values()) == {1} and invoker.max_active > 1  # shards in parallel, one batch each
    assert all(seqs(call) == sorted(seqs(call)) for call in invoker.calls)
    assert stats.function_errors > 0 and stats.partial_failures > 0 and stats.bisections > 0
    assert (stats.records_in, stats.records_succeeded, stats.records_to_on_failure) == (600, 600, 0)
    assert esm.checkpoints == {shard: str(s[-1]) for shard, s in expected.items()}


def test_parallelization_factor_keeps_order_per_partition_key(aws: EmbeddedAWS, queue: tuple[str, str]) -> None:
    arn, written = kinesis_stream(aws, 300, shards=1, keys=12)
    invoker = ScriptedInvoker(flaky(2), delay_s=0.01)
    esm = mapping(aws, invoker, arn, queue[1], parallelization_factor=3, bisect_batch_on_function_error=True)
    stats = esm.run_until_drained(300, timeout_s=30)
    expected = grouped((key, sequence) for _, sequence, key in written)
    seen = grouped((record["kinesis"]["partitionKey"], int(seq(record))) for record in invoker.accepted)
    assert seen == expected
    assert 1 < invoker.max_active <= 3  # up to three batches of the one shard at once
    assert stats.records_succeeded == 300 and esm.checkpoints == {written[0][0]: str(written[-1][1])}


# --- DynamoDB Streams ---------------------------------------------------------------------------------------


def test_dynamodb_stream_end_to_end(aws: EmbeddedAWS, queue: tuple[str, str]) -> None:
    table = unique("table")
    stream_arn = aws.create_table_with_stream(table)
    dynamodb = aws.client("dynamodb")
    for i in range(3):
        dynamodb.put_item(TableName=table, Item={"id": {"S": f"item-{i}"}, "text": {"S": f"review {i}"}})
    for i in range(2):
        dynamodb.update_item(
            TableName=table,
            Key={"id": {"S": f"item-{i}"}},
            UpdateExpression="SET #t = :t",
            ExpressionAttributeNames={"#t": "text"},
            ExpressionAttributeValues={":t": {"S": f"edited {i}"}},
        )
    dynamodb.delete_item(TableName=table, Key={"id": {"S": "item-2"}})

    def script(records: list[dict[str, Any]], index: int) -> Any:
        return fail_at(seq(records[3])) if index == 0 else ok()

    invoker = ScriptedInvoker(script)
    # No filter: the REMOVE event's shape is checked too (by default a DynamoDB source drops it).
    esm = mapping(aws, invoker, stream_arn, queue[1], kind="dynamodb", filter_criteria=())
    stats = esm.run_until_drained(6, timeout_s=20)
    records = invoker.accepted
    assert [r["eventName"] for r in records] == ["INSERT"] * 3 + ["MODIFY"] * 2 + ["REMOVE"]
    assert seqs(invoker.calls[1]) == seqs(invoker.calls[0])[3:]  # resumed at the reported SequenceNumber
    for record in records:
        assert record["eventSource"] == "aws:dynamodb" and record["eventSourceARN"] == stream_arn
        assert record["awsRegion"] == "us-east-1" and record["eventID"]
        change = record["dynamodb"]
        assert change["StreamViewType"] == "NEW_AND_OLD_IMAGES" and isinstance(change["SizeBytes"], int)
        assert isinstance(change["ApproximateCreationDateTime"], int) and change["Keys"]["id"]["S"]
    insert, modify, remove = records[0], records[3], records[5]
    assert insert["dynamodb"]["NewImage"] == {"id": {"S": "item-0"}, "text": {"S": "review 0"}}
    assert "OldImage" not in insert["dynamodb"]
    assert modify["dynamodb"]["OldImage"]["text"] == {"S": "review 0"}
    assert modify["dynamodb"]["NewImage"]["text"] == {"S": "edited 0"}
    assert "NewImage" not in remove["dynamodb"] and remove["dynamodb"]["Keys"] == {"id": {"S": "item-2"}}
    assert stats.records_succeeded == 6 and list(esm.checkpoints.values()) == [seq(records[-1])]


def test_dynamodb_on_failure_record_shape(aws: EmbeddedAWS, queue: tuple[str, str]) -> None:
    table = unique("table")
    stream_arn = aws.create_table_with_stream(table)
    aws.client("dynamodb").put_item(TableName=table, Item={"id": {"S": "x"}, "text": {"S": "t"}})
    invoker = ScriptedInvoker(lambda records, index: error())
    mapping(aws, invoker, stream_arn, queue[1], kind="dynamodb", maximum_retry_attempts=0).run_until_drained(
        1, timeout_s=20
    )
    [message] = failure_messages(aws, queue[0])
    info = message["DDBStreamBatchInfo"]
    assert info["streamArn"] == stream_arn and info["batchSize"] == 1
    assert info["startSequenceNumber"] == info["endSequenceNumber"] == seq(invoker.calls[0][0])
    assert message["requestContext"]["approximateInvokeCount"] == 1


# --- settings, starting position, the embedded endpoint ------------------------------------------------------


def test_reads_deploy_settings_with_overrides(aws: EmbeddedAWS, queue: tuple[str, str]) -> None:
    settings = load_settings()
    source = settings.event_sources[0]
    arn, _ = kinesis_stream(aws, 3)
    invoker = ScriptedInvoker(always_ok)
    esm = EventSourceMapping.from_settings(
        invoker,
        settings,
        client_factory=aws.client,
        source_arn=arn,
        on_failure_destination_arn=queue[1],
        batch_size=2,
        maximum_batching_window_s=0,
        poll_interval_s=0.02,
    )
    assert esm.source.batch_size == 2 and esm.source.source_arn == arn
    assert esm.source.maximum_retry_attempts == source.maximum_retry_attempts
    assert esm.source.bisect_batch_on_function_error == source.bisect_batch_on_function_error
    assert esm.function_arn.endswith(f":function:{settings.function.name}:{settings.function.alias}")
    esm.run_until_drained(3, timeout_s=20)
    assert [len(call) for call in invoker.calls] == [2, 1]
    assert invoker.calls[0][0]["invokeIdentityArn"] == settings.function.role_arn
    with pytest.raises(TypeError, match="unknown EventSource field"):
        EventSourceMapping.from_settings(invoker, settings, batchsize=5)
    disabled = EventSourceMapping.from_settings(invoker, settings, enabled=False, client_factory=aws.client)
    with pytest.raises(RuntimeError, match="disabled"):
        disabled.start()


def test_latest_skips_earlier_records(aws: EmbeddedAWS, queue: tuple[str, str]) -> None:
    arn, _ = kinesis_stream(aws, 5)
    invoker = ScriptedInvoker(always_ok)
    esm = mapping(aws, invoker, arn, queue[1], starting_position="LATEST").start()
    try:
        time.sleep(0.2)
        later = put(aws, arn, [("k", b"{}")] * 3)
        esm.wait_drained(expected_records=3, timeout_s=20)
    finally:
        esm.stop()
    assert [s for call in invoker.calls for s in seqs(call)] == [w[1] for w in later]


def test_sped_up_moto_answers_like_moto(aws: EmbeddedAWS) -> None:
    """The same writes on a stock endpoint and a sped-up one (``fast_moto``); every read answers the same."""

    def read_everything(endpoint: EmbeddedAWS, tag: str) -> list[Any]:
        arn, _ = kinesis_stream(endpoint, 40, shards=2, keys=7)
        table = f"table-{tag}"
        stream_arn = endpoint.create_table_with_stream(table)
        dynamodb = endpoint.client("dynamodb")
        for i in range(12):
            item = {"id": {"S": f"i{i % 5}"}, "n": {"N": str(i)}, "b": {"B": b"\x00\xff"}}
            dynamodb.put_item(TableName=table, Item=item)
        dynamodb.delete_item(TableName=table, Key={"id": {"S": "i0"}})
        kinesis, streams = endpoint.client("kinesis"), endpoint.client("dynamodbstreams")
        pages: list[Any] = []
        for shard in kinesis.list_shards(StreamARN=arn)["Shards"]:
            it = kinesis.get_shard_iterator(StreamARN=arn, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON")
            iterator = it["ShardIterator"]
            for _ in range(6):
                page = kinesis.get_records(ShardIterator=iterator, Limit=7, StreamARN=arn)
                iterator = page["NextShardIterator"]
                # Arrival times (and so MillisBehindLatest) differ between two runs; the rest must not.
                records = [{k: v for k, v in r.items() if k != "ApproximateArrivalTimestamp"} for r in page["Records"]]
                pages.append((records, iterator))
        shard_id = streams.describe_stream(StreamArn=stream_arn)["StreamDescription"]["Shards"][0]["ShardId"]
        it = streams.get_shard_iterator(StreamArn=stream_arn, ShardId=shard_id, ShardIteratorType="TRIM_HORIZON")
        iterator = it["ShardIterator"]
        for _ in range(4):
            page = streams.get_records(ShardIterator=iterator, Limit=5)
            iterator = page["NextShardIterator"]
            # Event ids, sequence numbers and times differ between two runs, and with them
            # moto's SizeBytes (by a digit); the rest must not.
            pages.append(
                [
                    {**{k: v for k, v in r.items() if k != "eventID"},
                     "dynamodb": {k: v for k, v in r["dynamodb"].items()
                                  if k not in ("ApproximateCreationDateTime", "SequenceNumber", "SizeBytes")}}
                    for r in page["Records"]
                ]
            )  # fmt: skip
        return pages

    tag = uuid.uuid4().hex[:8]
    with EmbeddedAWS(fast_moto=True) as fast_endpoint:
        fast = read_everything(fast_endpoint, tag)
    with EmbeddedAWS() as stock_endpoint:
        slow = read_everything(stock_endpoint, tag)
    assert fast == slow
    assert sum(len(page[0]) for page in fast[:-4]) == 40 and sum(len(page) for page in fast[-4:]) == 13
