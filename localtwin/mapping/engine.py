"""A local event source mapping (ESM) for Kinesis and DynamoDB streams, with Lambda's semantics.

It polls every shard with the real boto3 API (Kinesis ``ListShards`` /
``GetShardIterator`` / ``GetRecords``; DynamoDB Streams ``DescribeStream`` /
``GetShardIterator`` / ``GetRecords``), builds Lambda-shaped events, hands them to an
:class:`Invoker` and reacts to the outcome the way Lambda does (docs/aws-notes.md §2):

* batches of up to ``batch_size`` records, gathered for at most
  ``maximum_batching_window_s``, never over the 6 MB invocation payload (the JSON
  event is measured);
* per shard one batch in flight, in sequence order; with ``parallelization_factor``
  N > 1, up to N batches per shard, records routed by the MD5 of their partition key
  (Kinesis) or their ``Keys`` (DynamoDB), so each key keeps its order;
* a checkpoint per shard: the highest sequence number at or below which every
  record is handled (succeeded, or given up on and sent to the on-failure
  destination);
* ``ReportBatchItemFailures``: resume at the lowest reported sequence number; an
  empty or null list, or an empty or null response, is success; a null or empty
  ``itemIdentifier``, a wrong key, or a sequence number that is not in the batch fails
  the whole batch;
* a function error (the handler raised, timed out, or its runtime died) fails the
  whole batch; ``bisect_batch_on_function_error`` splits it and retries the halves
  without using up retries; ``maximum_retry_attempts`` and ``maximum_record_age_s``
  bound the retries; records given up on are described to the on-failure
  destination (SQS, SNS or S3) in Lambda's shape and the checkpoint moves past them.

Decisions where AWS leaves room (see also :func:`localtwin.mapping.judge.judge_response`):

* A batch Lambda treats as a complete failure because of an invalid response (bad
  identifiers) is handled like a function error: bisected when bisection is on,
  otherwise retried whole, using up a retry.
* A partial failure retries the batch's remainder (from the lowest reported record)
  and uses up one retry, with or without bisection (otherwise a function that keeps
  reporting its first record would be retried for ever).
* An identifier that is not in the batch is unverified in AWS: it is treated as a
  whole-batch failure, which can only redeliver, never lose, records.
* Retries go to the records already read (no re-read of the stream); new records of
  the shard wait behind them, as on Lambda.
* Every invocation records Lambda's ``IteratorAge`` (:attr:`localtwin.mapping.stats.Invocation.iterator_age_ms`):
  the age of the batch's last record (now minus its arrival time, on the injectable clock)
  when the mapping hands the event to the invoker, as Lambda measures it when it sends a
  batch to the function.
* ``maximum_record_age_s`` is checked before every invocation against an injectable
  clock; the expired records at the head of the batch are given up on
  (``RecordAgeExceeded``) and the rest is invoked.
* ``approximateInvokeCount`` of an on-failure record counts the invocations that
  carried its records (bisected halves inherit their parent's count). Records that
  expire before their first invocation get ``approximateInvokeCount`` 0 and
  ``responseContext`` ``{"statusCode": 0, "executedVersion": ""}`` (unverified).
* An invoker that raises (a bug, or the runtime refusing an over-size payload) fails
  the batch like a function error (``errorType`` ``Local.InvokerError``).
* Each shard is read ahead by up to one ``GetRecords`` limit (10,000 Kinesis records,
  1,000 DynamoDB ones; at least two batches per lane), and read again once half of that
  is left: fewer, larger reads (Lambda's pollers also read ahead; how far is not documented).
* New shards (resharding) are picked up every ``shard_refresh_s`` and read after their
  parents are done, from TRIM_HORIZON; moto does not reshard faithfully, so this path
  is untested locally.
* ``FilterCriteria`` (the source's :attr:`~release.settings.EventSource.patterns`, matched by
  :mod:`release.filter_patterns` exactly as Lambda matches them) is applied to each record as it
  is read: a record no pattern matches never enters a batch, is never invoked (nor billed), and
  counts as handled at once, so the checkpoint moves past it (``MappingStats.records_filtered``).

Settings come from ``deploy.toml`` (:func:`release.settings.load_settings`), the same
entries ``make deploy`` turns into real mappings, with per-run overrides::

    esm = EventSourceMapping.from_settings(
        invoker, client_factory=aws.client, source_arn=stream_arn,
        on_failure_destination_arn=queue_arn, batch_size=500,
    )
    stats = esm.run_until_drained(expected_records=50_000, timeout_s=600, progress=bar_update)
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, fields, replace
from datetime import UTC, datetime
from typing import Any, Literal, Protocol

from botocore.exceptions import BotoCoreError, ClientError

from localtwin.mapping.destination import Destination
from localtwin.mapping.judge import judge_response
from localtwin.mapping.stats import Invocation, MappingStats
from localtwin.mapping.streams import GET_RECORDS_LIMIT, Record, ShardInfo, Stream, open_stream
from localtwin.runtime.report import PAYLOAD_LIMIT_BYTES, InvokeResult, Report
from release.filter_patterns import filter_document, matches_any
from release.settings import EventSource, Settings, load_settings

log = logging.getLogger(__name__)

_THROTTLED = {
    "ProvisionedThroughputExceededException",
    "LimitExceededException",
    "ThrottlingException",
    "Throttling",
    "RequestLimitExceeded",
    "InternalFailure",
    "ServiceUnavailable",
}
_EVENT_OVERHEAD = len(json.dumps({"Records": []}))
_SEPARATOR = len(", ")


# --- the invoker interface (implemented by localtwin.runtime.pool) ----------------


class Invoker(Protocol):
    """Runs the function on one event; must be safe to call from several threads."""

    def invoke(self, event: dict[str, Any]) -> InvokeResult: ...


def _invoker_failure(exc: Exception) -> InvokeResult:
    """Stands in for a result when the invoker itself raised (a bug in the runtime)."""
    error = {"errorType": "Local.InvokerError", "errorMessage": repr(exc)}
    report = Report("", 0.0, 0, 0, 0, None, 0.0, status="error", error_type=error["errorType"])
    return InvokeResult(payload=None, error=error, report=report, cold=False)


@dataclass
class _Batch:
    records: list[Record]
    retries: int = 0  # retries used so far (bisecting does not use one)
    invocations: int = 0  # invocations these records have been part of
    last_result: InvokeResult | None = None


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


# --- shards and lanes ---------------------------------------------------------------------------


class _Lane:
    """One in-order pipeline of a shard (``parallelization_factor`` of them per shard)."""

    def __init__(self, index: int) -> None:
        self.index = index
        self.buffer: deque[Record] = deque()
        self.buffer_bytes = 0
        self.first_at: float | None = None  # monotonic time the oldest buffered record arrived
        self.pending: deque[_Batch] = deque()  # retries and bisected halves, front first
        self.busy = False


class _Shard:
    def __init__(self, info: ShardInfo, lanes: int) -> None:
        self.id = info.shard_id
        self.cond = threading.Condition()
        self.lanes = [_Lane(i) for i in range(lanes)]
        self.outstanding: deque[tuple[int, str]] = deque()  # read, not yet handled, in order
        self.handled: set[int] = set()
        self.checkpoint: str | None = None
        self.last_read: str | None = None
        self.caught_up = False  # the last GetRecords found nothing new
        self.closed = False  # the shard has ended (no NextShardIterator)
        self.children_started = False
        self.threads: list[threading.Thread] = []

    def buffered(self) -> int:
        return sum(len(lane.buffer) for lane in self.lanes)

    def idle(self) -> bool:
        return not self.outstanding and all(not (lane.buffer or lane.pending or lane.busy) for lane in self.lanes)

    def finished(self) -> bool:
        return self.closed and self.idle()


# --- the mapping ---------------------------------------------------------------------------------


class EventSourceMapping:
    """Lambda's stream event source mapping, run locally against any boto3 endpoint.

    Parameters
    ----------
    source : EventSource
        A ``[[event_sources]]`` entry of ``deploy.toml``.
    invoker : Invoker
        Runs the function (``localtwin.runtime.pool``, or a fake in tests).
    client_factory : callable
        ``client_factory(service_name) -> boto3 client`` (e.g.
        :meth:`localtwin.embedded_aws.EmbeddedAWS.client`; ``boto3.client`` for AWS).
    function_arn : str, optional
        Named in on-failure records; defaults to a local placeholder in the stream's
        account and region.
    invoke_identity_arn : str, optional
        The ``invokeIdentityArn`` of Kinesis records (the execution role).
    executed_version : str
        ``responseContext.executedVersion`` of on-failure records.
    report_batch_item_failures : bool
        ``FunctionResponseTypes=["ReportBatchItemFailures"]`` (the function relies on it).
    clock : callable
        Epoch seconds, for record ages and timestamps (inject one in tests).
    poll_interval_s : float, optional
        Pause between GetRecords calls on a caught-up shard; default Lambda's base rates:
        1 s for Kinesis (one read per shard per second), 0.25 s for DynamoDB (four).
    max_payload_bytes : int
        The invocation payload cap (6 MB).
    shard_refresh_s : float
        How often to look for new shards (resharding).
    progress : callable, optional
        Called with the number of records handled so far after each change.
    **overrides
        Fields of ``source`` to replace for this run (``batch_size``,
        ``maximum_batching_window_s`` (may be a float), ``source_arn``, ...).
    """

    def __init__(
        self,
        source: EventSource,
        invoker: Invoker,
        *,
        client_factory: Callable[[str], Any] | None = None,
        function_arn: str | None = None,
        invoke_identity_arn: str | None = None,
        executed_version: str = "$LATEST",
        report_batch_item_failures: bool = True,
        clock: Callable[[], float] = time.time,
        poll_interval_s: float | None = None,
        max_payload_bytes: int = PAYLOAD_LIMIT_BYTES,
        shard_refresh_s: float = 30.0,
        progress: Callable[[int], None] | None = None,
        **overrides: Any,
    ) -> None:
        unknown = sorted(set(overrides) - {f.name for f in fields(EventSource)})
        if unknown:
            raise TypeError(f"unknown EventSource field(s) {', '.join(unknown)}")
        self.source = replace(source, **overrides) if overrides else source
        if self.source.parallelization_factor < 1 or self.source.batch_size < 1:
            raise ValueError("batch_size and parallelization_factor must be at least 1")
        if client_factory is None:
            import boto3

            client_factory = boto3.client
        self.invoker = invoker
        self.client_factory = client_factory
        arn = self.source.source_arn.split(":")
        self.region, self.account = arn[3], arn[4]
        self.function_arn = function_arn or f"arn:aws:lambda:{self.region}:{self.account}:function:local-esm"
        self.invoke_identity_arn = invoke_identity_arn or f"arn:aws:iam::{self.account}:role/local-esm"
        self.executed_version = executed_version
        self.report_batch_item_failures = report_batch_item_failures
        self.clock = clock
        if poll_interval_s is None:
            poll_interval_s = 1.0 if self.source.type == "kinesis" else 0.25
        self.poll_interval_s = poll_interval_s
        self.max_payload_bytes = max_payload_bytes
        self.shard_refresh_s = shard_refresh_s
        self.progress = progress
        self.patterns = self.source.patterns
        self.stats = MappingStats()
        self._stats_lock = threading.Lock()
        self._progress_lock = threading.Lock()
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._shards: dict[str, _Shard] = {}
        self._known: dict[str, ShardInfo] = {}
        self._skipped: set[str] = set()
        self._shards_lock = threading.Lock()
        self._coordinator: threading.Thread | None = None
        self._fatal: BaseException | None = None
        self._stream: Stream | None = None
        self._destination: Destination | None = None
        self._started_at: float | None = None

    @classmethod
    def from_settings(
        cls,
        invoker: Invoker,
        settings: Settings | None = None,
        *,
        index: int | None = None,
        source_type: Literal["kinesis", "dynamodb"] | None = None,
        **kwargs: Any,
    ) -> EventSourceMapping:
        """A mapping for one ``[[event_sources]]`` entry of ``deploy.toml``.

        Parameters
        ----------
        invoker : Invoker
        settings : Settings, optional
            Defaults to :func:`release.settings.load_settings`.
        index : int, optional
            Which entry; by default the first one of ``source_type`` (or the first).
        source_type : {"kinesis", "dynamodb"}, optional
            Pick the first entry of this type; when none exists, the first entry is
            used with ``type`` overridden (give ``source_arn`` then) and that type's default
            filter (``filter_criteria`` unset) unless ``filter_criteria`` is given.
        **kwargs
            Constructor options and ``EventSource`` overrides.

        The function ARN (``[function] name`` and ``alias``) and the execution role
        (``invokeIdentityArn``) come from the settings unless given.
        """
        settings = settings or load_settings()
        if not settings.event_sources:
            raise ValueError(f"{settings.path} has no [[event_sources]] entry")
        if index is not None:
            source = settings.event_sources[index]
        else:
            matching = [s for s in settings.event_sources if source_type in (None, s.type)]
            source = matching[0] if matching else settings.event_sources[0]
        if source_type is not None and source.type != source_type:
            kwargs.setdefault("type", source_type)
            # Another type's patterns name other fields: use the new type's default unless given.
            kwargs.setdefault("filter_criteria", None)
        region, account = (kwargs.get("source_arn") or source.source_arn).split(":")[3:5]
        function = settings.function
        kwargs.setdefault(
            "function_arn", f"arn:aws:lambda:{region}:{account}:function:{function.name}:{function.alias}"
        )
        kwargs.setdefault("invoke_identity_arn", function.role_arn)
        return cls(source, invoker, **kwargs)

    # --- public control ----------------------------------------------------------------------

    @property
    def checkpoints(self) -> dict[str, str | None]:
        """Per shard: the sequence number at or below which every record is handled."""
        with self._shards_lock:
            shards = list(self._shards.values())
        result = {}
        for shard in shards:
            with shard.cond:
                result[shard.id] = shard.checkpoint
        return result

    def start(self) -> EventSourceMapping:
        """Discover the shards and start polling them in background threads."""
        if self._coordinator is not None:
            return self
        if not self.source.enabled:
            raise RuntimeError(
                f"the event source mapping for {self.source.source_arn} is disabled (enabled = false in the "
                "settings); pass enabled=True to run it anyway"
            )
        self._stream = open_stream(
            self.source.type, self.source.source_arn, self.client_factory, self.invoke_identity_arn
        )
        arn = self.source.on_failure_destination_arn
        self._destination = Destination(arn, self.client_factory) if arn else None
        self._started_at = time.perf_counter()
        self._refresh_shards(initial=True)
        self._coordinator = threading.Thread(target=self._coordinate, name="esm-coordinator", daemon=True)
        self._coordinator.start()
        return self

    def stop(self, timeout_s: float = 30.0) -> None:
        """Stop polling; wait for batches in flight to return."""
        self._stop.set()
        self._wake.set()
        with self._shards_lock:
            shards = list(self._shards.values())
        for shard in shards:
            with shard.cond:
                shard.cond.notify_all()
        deadline = time.monotonic() + timeout_s
        for thread in [t for shard in shards for t in shard.threads] + [self._coordinator]:
            if thread is not None and thread is not threading.current_thread():
                thread.join(max(0.0, deadline - time.monotonic()))
        if self._started_at is not None:
            self.stats.wall_s = time.perf_counter() - self._started_at

    def drained(self, expected_records: int | None = None) -> bool:
        """Every shard caught up, nothing buffered or in flight (and ``expected_records`` handled)."""
        if expected_records is not None and self.stats.records_handled < expected_records:
            return False
        with self._shards_lock:
            shards = list(self._shards.values())
            pending_children = any(s.closed and not s.children_started for s in shards)
        if pending_children or not shards:
            return False
        for shard in shards:
            with shard.cond:
                if not (shard.caught_up and shard.idle()):
                    return False
        return True

    def wait_drained(self, expected_records: int | None = None, timeout_s: float = 600.0) -> MappingStats:
        """Block until :meth:`drained`; raise what a worker thread raised, or ``TimeoutError``."""
        deadline = time.monotonic() + timeout_s
        while True:
            if self._fatal is not None:
                raise RuntimeError(f"the event source mapping stopped: {self._fatal!r}") from self._fatal
            if self.drained(expected_records):
                if self._started_at is not None:
                    self.stats.wall_s = time.perf_counter() - self._started_at
                return self.stats
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"not drained after {timeout_s} s: {self.stats.records_handled} records handled"
                    + (f" of {expected_records}" if expected_records is not None else "")
                    + f", {self.stats.records_in} read; checkpoints {self.checkpoints}"
                )
            time.sleep(0.01)

    def run_until_drained(
        self,
        expected_records: int | None = None,
        timeout_s: float = 600.0,
        progress: Callable[[int], None] | None = None,
    ) -> MappingStats:
        """Start, wait until every record is handled, stop; return the statistics.

        Parameters
        ----------
        expected_records : int, optional
            Also wait until this many records are handled (records written just before
            the call may not be visible to the first GetRecords yet).
        timeout_s : float
            Give up (``TimeoutError``) after this long.
        progress : callable, optional
            ``progress(records_handled)``; e.g. ``lambda n: bar.update(n - bar.n)``.
        """
        if progress is not None:
            self.progress = progress
        self.start()
        try:
            return self.wait_drained(expected_records, timeout_s)
        finally:
            self.stop()

    def __enter__(self) -> EventSourceMapping:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- shards ------------------------------------------------------------------------------

    def _coordinate(self) -> None:
        next_refresh = time.monotonic() + self.shard_refresh_s
        while not self._stop.is_set():
            with self._shards_lock:
                waiting = any(s.closed and not s.children_started for s in self._shards.values())
            self._wake.wait(0.25 if waiting else max(0.0, next_refresh - time.monotonic()))
            self._wake.clear()
            if self._stop.is_set():
                return
            if waiting or time.monotonic() >= next_refresh:
                try:
                    self._refresh_shards()
                except Exception as exc:  # noqa: BLE001 - keep polling; report if it persists
                    log.warning("listing shards of %s failed: %r", self.source.source_arn, exc)
                next_refresh = time.monotonic() + self.shard_refresh_s

    def _refresh_shards(self, initial: bool = False) -> None:
        """List the shards; start those whose parent is done (Lambda reads parents first)."""
        assert self._stream is not None
        listed = self._stream.list_shards()
        with self._shards_lock:
            for info in listed:
                self._known.setdefault(info.shard_id, info)
                if initial and self.source.starting_position == "LATEST" and info.closed:
                    self._skipped.add(info.shard_id)  # nothing new will ever arrive on it
            finished = {sid for sid, s in self._shards.items() if s.finished()} | self._skipped
            for info in listed:
                if info.shard_id in self._shards or info.shard_id in self._skipped:
                    continue
                parent = info.parent_id
                if parent is None or parent not in self._known or parent in finished:
                    shard = _Shard(info, self.source.parallelization_factor)
                    self._shards[info.shard_id] = shard
                    position = self.source.starting_position if initial else "TRIM_HORIZON"
                    self._start_shard(shard, position)
            for sid in finished & set(self._shards):
                self._shards[sid].children_started = True

    def _start_shard(self, shard: _Shard, position: str) -> None:
        reader = threading.Thread(target=self._guard, args=(self._read_loop, shard, position), daemon=True)
        reader.name = f"esm-read-{shard.id}"
        shard.threads.append(reader)
        for lane in shard.lanes:
            worker = threading.Thread(target=self._guard, args=(self._lane_loop, shard, lane), daemon=True)
            worker.name = f"esm-{shard.id}-{lane.index}"
            shard.threads.append(worker)
        for thread in shard.threads:
            thread.start()

    def _guard(self, target: Callable[..., None], *args: Any) -> None:
        try:
            target(*args)
        except BaseException as exc:
            log.exception("event source mapping thread %s failed", threading.current_thread().name)
            if self._fatal is None:
                self._fatal = exc
            self._stop.set()

    # --- reading -----------------------------------------------------------------------------

    def _first_iterator(self, shard: _Shard, position: str) -> str:
        assert self._stream is not None
        if shard.last_read is not None:
            return self._stream.iterator(shard.id, "AFTER_SEQUENCE_NUMBER", sequence=shard.last_read)
        at = self.source.starting_position_timestamp if position == "AT_TIMESTAMP" else None
        return self._stream.iterator(shard.id, position, at=at)

    def _read_loop(self, shard: _Shard, position: str) -> None:
        stream = self._stream
        assert stream is not None
        factor = self.source.parallelization_factor
        # Read ahead up to one GetRecords' worth (at least two batches per lane), and read
        # again only once half of it is taken: fewer, larger reads.
        limit_cap = GET_RECORDS_LIMIT[stream.kind]
        high_water = max(2 * self.source.batch_size * factor, limit_cap)
        low_water = high_water // 2
        iterator: str | None = None
        failures = 0
        while not self._stop.is_set():
            with shard.cond:
                while shard.buffered() > low_water and not self._stop.is_set():
                    shard.cond.wait(0.5)
                room = high_water - shard.buffered()
            if self._stop.is_set():
                return
            try:
                if iterator is None:
                    iterator = self._first_iterator(shard, position)
                raw, next_iterator, behind = stream.get_records(iterator, max(1, min(limit_cap, room)))
                failures = 0
            except (ClientError, BotoCoreError) as exc:
                code = exc.response.get("Error", {}).get("Code", "") if isinstance(exc, ClientError) else ""
                if code in ("ExpiredIteratorException", "TrimmedDataAccessException"):
                    log.info("shard %s: %s; getting a new iterator", shard.id, code)
                    iterator = None
                    if code == "TrimmedDataAccessException":
                        shard.last_read, position = None, "TRIM_HORIZON"
                    continue
                failures += 1
                if failures > 10 and code not in _THROTTLED:
                    raise
                log.warning("shard %s: GetRecords failed (%r); retrying", shard.id, exc)
                self._stop.wait(min(5.0, 0.05 * 2**failures))
                continue
            records = [stream.to_record(shard.id, item) for item in raw]
            filtered = [r for r in records if not self._delivered(r)] if self.patterns else []
            with shard.cond:
                if records:
                    shard.caught_up = False
                    now = time.monotonic()
                    dropped = {r.order for r in filtered}
                    for record in records:
                        if record.order in dropped:
                            shard.outstanding.append((record.order, record.sequence))
                            continue
                        lane = shard.lanes[self._lane_of(record, factor)]
                        if not lane.buffer:
                            lane.first_at = now
                        lane.buffer.append(record)
                        lane.buffer_bytes += record.size + _SEPARATOR
                        shard.outstanding.append((record.order, record.sequence))
                    shard.last_read = records[-1].sequence
                else:
                    shard.caught_up = not behind
                if next_iterator is None:
                    shard.closed = shard.caught_up = True
                shard.cond.notify_all()
            if records:
                with self._stats_lock:
                    self.stats.records_in += len(records)
            if filtered:
                self._settle(shard, filtered, succeeded=False, filtered=True)
            if next_iterator is None:
                self._wake.set()
                return
            iterator = next_iterator
            if not records:
                self._stop.wait(self.poll_interval_s if not behind else 0.0)

    def _delivered(self, record: Record) -> bool:
        """Whether the source's filter patterns let ``record`` through (no patterns: every record)."""
        return matches_any(self.patterns, filter_document(self.source.type, record.event))

    @staticmethod
    def _lane_of(record: Record, factor: int) -> int:
        if factor == 1:
            return 0
        return int.from_bytes(hashlib.md5(record.key.encode()).digest()[:8], "big") % factor

    # --- batching and invoking ---------------------------------------------------------------

    def _ready_in(self, shard: _Shard, lane: _Lane) -> float:
        """Seconds until ``lane``'s buffer makes a batch (0: now)."""
        if (
            len(lane.buffer) >= self.source.batch_size
            or lane.buffer_bytes + _EVENT_OVERHEAD > self.max_payload_bytes
            or shard.closed
        ):
            return 0.0
        assert lane.first_at is not None
        return lane.first_at + self.source.maximum_batching_window_s - time.monotonic()

    def _take_batch(self, lane: _Lane) -> _Batch:
        records: list[Record] = []
        size = _EVENT_OVERHEAD
        while lane.buffer and len(records) < self.source.batch_size:
            record = lane.buffer[0]
            extra = record.size + (_SEPARATOR if records else 0)
            if records and size + extra > self.max_payload_bytes:
                break
            lane.buffer.popleft()
            lane.buffer_bytes -= record.size + _SEPARATOR
            records.append(record)
            size += extra
        lane.first_at = time.monotonic() if lane.buffer else None
        return _Batch(records)

    def _next_batch(self, shard: _Shard, lane: _Lane) -> _Batch | None:
        with shard.cond:
            while not self._stop.is_set():
                if lane.pending:
                    lane.busy = True
                    return lane.pending.popleft()
                if lane.buffer:
                    wait = self._ready_in(shard, lane)
                    if wait <= 0:
                        lane.busy = True
                        return self._take_batch(lane)
                    shard.cond.wait(wait)
                elif shard.closed:
                    return None
                else:
                    shard.cond.wait(0.5)
        return None

    def _lane_loop(self, shard: _Shard, lane: _Lane) -> None:
        while True:
            batch = self._next_batch(shard, lane)
            if batch is None:
                return
            if batch.invocations == 0:  # fresh from the stream, not a retry or a half
                with self._stats_lock:
                    self.stats.batches += 1
            try:
                self._process(shard, lane, batch)
            finally:
                with shard.cond:
                    lane.busy = False
                    shard.cond.notify_all()

    def _process(self, shard: _Shard, lane: _Lane, batch: _Batch) -> None:
        records = batch.records
        age = self.source.maximum_record_age_s
        if age is not None and age >= 0:
            now = self.clock()
            expired = 0
            while expired < len(records) and now - records[expired].arrival > age:
                expired += 1
            if expired:
                self._give_up(shard, batch, records[:expired], "RecordAgeExceeded")
                records = records[expired:]
                if not records:
                    return
                batch = replace(batch, records=records)
        event = {"Records": [record.event for record in records]}
        # Lambda's IteratorAge: the age of the batch's last record when the event is sent.
        iterator_age_ms = max(0.0, (self.clock() - records[-1].arrival) * 1000)
        started = time.perf_counter()
        try:
            result = self.invoker.invoke(event)
        except Exception as exc:  # noqa: BLE001 - a broken invoker fails the batch like a crash
            log.exception("the invoker raised on a batch of shard %s", shard.id)
            result = _invoker_failure(exc)
        wall_ms = (time.perf_counter() - started) * 1000
        batch.invocations += 1
        batch.last_result = result
        verdict = judge_response(
            result.payload, result.error, [r.sequence for r in records], self.report_batch_item_failures
        )
        payload_bytes = _EVENT_OVERHEAD + sum(r.size for r in records) + _SEPARATOR * (len(records) - 1)
        with self._stats_lock:
            stats = self.stats
            stats.invocations += 1
            stats.invocation_log.append(
                Invocation(
                    shard.id,
                    lane.index,
                    records[0].sequence,
                    records[-1].sequence,
                    len(records),
                    payload_bytes,
                    batch.retries,
                    verdict,
                    wall_ms,
                    result,
                    iterator_age_ms,
                )
            )
            if verdict.kind == "partial":
                stats.partial_failures += 1
            elif verdict.kind == "error":
                stats.function_errors += 1
                stats.error_types[verdict.reason] = stats.error_types.get(verdict.reason, 0) + 1
            elif verdict.kind == "invalid":
                stats.invalid_responses += 1
                log.warning("shard %s: whole batch failed: %s", shard.id, verdict.reason)

        if verdict.kind == "success":
            self._settle(shard, records, succeeded=True)
        elif verdict.kind == "partial":
            self._settle(shard, records[: verdict.resume_at], succeeded=True)
            self._retry(shard, lane, batch, records[verdict.resume_at :])
        elif self.source.bisect_batch_on_function_error and len(records) > 1:
            middle = len(records) // 2
            halves = [
                _Batch(part, batch.retries, batch.invocations, result) for part in (records[:middle], records[middle:])
            ]
            with shard.cond:
                lane.pending.extendleft(reversed(halves))
            with self._stats_lock:
                self.stats.bisections += 1
        else:
            self._retry(shard, lane, batch, records)

    def _retry(self, shard: _Shard, lane: _Lane, batch: _Batch, records: list[Record]) -> None:
        limit = self.source.maximum_retry_attempts
        if limit is not None and 0 <= limit <= batch.retries:
            self._give_up(shard, batch, records, "RetryAttemptsExhausted")
            return
        with shard.cond:
            lane.pending.appendleft(_Batch(records, batch.retries + 1, batch.invocations, batch.last_result))
        with self._stats_lock:
            self.stats.retries += 1

    def _give_up(self, shard: _Shard, batch: _Batch, records: list[Record], condition: str) -> None:
        result = batch.last_result
        if batch.invocations and result is not None:
            response = {"statusCode": 200, "executedVersion": result.executed_version or self.executed_version}
            if result.error is not None:
                response["functionError"] = "Unhandled"
            request_id = result.report.request_id or str(uuid.uuid4())
        else:  # never invoked (expired before its first try)
            response = {"statusCode": 0, "executedVersion": ""}
            request_id = str(uuid.uuid4())
        first, last = records[0], records[-1]
        info_key = "KinesisBatchInfo" if self.source.type == "kinesis" else "DDBStreamBatchInfo"
        message = {
            "requestContext": {
                "requestId": request_id,
                "functionArn": self.function_arn,
                "condition": condition,
                "approximateInvokeCount": batch.invocations,
            },
            "responseContext": response,
            "version": "1.0",
            "timestamp": _iso(self.clock()),
            info_key: {
                "shardId": shard.id,
                "startSequenceNumber": first.sequence,
                "endSequenceNumber": last.sequence,
                "approximateArrivalOfFirstRecord": _iso(first.arrival),
                "approximateArrivalOfLastRecord": _iso(last.arrival),
                "batchSize": len(records),
                "streamArn": self.source.source_arn,
            },
        }
        if self._destination is None:
            log.warning(
                "shard %s: %s; no on-failure destination, %d records dropped: %s",
                shard.id,
                condition,
                len(records),
                json.dumps(message),
            )
        else:
            self._destination.send(message, shard.id, {"Records": [r.event for r in records]})
            with self._stats_lock:
                self.stats.on_failure_messages += 1
        with self._stats_lock:
            if condition == "RecordAgeExceeded":
                self.stats.records_expired += len(records)
        self._settle(shard, records, succeeded=False, discarded=self._destination is None)

    def _settle(
        self, shard: _Shard, records: list[Record], succeeded: bool, discarded: bool = False, filtered: bool = False
    ) -> None:
        if not records:
            return
        with shard.cond:
            shard.handled.update(record.order for record in records)
            while shard.outstanding and shard.outstanding[0][0] in shard.handled:
                order, sequence = shard.outstanding.popleft()
                shard.handled.discard(order)
                shard.checkpoint = sequence
            shard.cond.notify_all()
        with self._stats_lock:
            if succeeded:
                self.stats.records_succeeded += len(records)
            elif filtered:
                self.stats.records_filtered += len(records)
            elif discarded:
                self.stats.records_discarded += len(records)
            else:
                self.stats.records_to_on_failure += len(records)
        if self.progress is not None:
            # Outside the other locks (the callback may read checkpoints); serialised, and
            # every counter only grows, so the values passed never go down.
            with self._progress_lock:
                try:
                    self.progress(self.stats.records_handled)
                except Exception:  # noqa: BLE001 - a progress bar must not stop the mapping
                    log.exception("the progress callback raised")
