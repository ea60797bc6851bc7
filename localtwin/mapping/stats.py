"""The statistics of one mapping's run: counters, and the log of every invocation with its REPORT."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from localtwin.mapping.judge import Verdict
from localtwin.runtime.report import InvokeResult


@dataclass(frozen=True)
class Invocation:
    """One invocation the mapping made."""

    shard_id: str
    lane: int
    first_sequence: str
    last_sequence: str
    records: int
    payload_bytes: int
    #: Retries the batch had used before this invocation.
    retry: int
    verdict: Verdict
    wall_ms: float
    result: InvokeResult
    #: Lambda's ``IteratorAge`` for this batch: its last record's age when the event was sent (ms).
    iterator_age_ms: float = 0.0


@dataclass
class MappingStats:
    """Counters of one mapping's run (read them after :meth:`localtwin.mapping.engine.EventSourceMapping.wait_drained`).

    Attributes
    ----------
    records_in : int
        Records read from the stream (each once).
    records_succeeded, records_to_on_failure : int
        Records handled: accepted by the function, or given up on and described to the
        on-failure destination (``records_expired`` of those for their age).
    records_filtered : int
        Records no filter pattern matched: dropped before invocation (not billed), handled.
    batches : int
        Batches formed from newly read records.
    invocations : int
        Function invocations (first tries, retries and bisected halves).
    retries : int
        Retries used up (what ``maximum_retry_attempts`` counts).
    bisections : int
        Failing batches split in two.
    partial_failures, function_errors, invalid_responses : int
        Invocations that reported failed items / failed / gave an unreadable report.
    error_types : dict
        ``errorType`` -> count over function errors.
    on_failure_messages : int
        Records sent to the on-failure destination (one per given-up batch).
    invocation_log : list of Invocation
        Every invocation with the invoker's result (and its REPORT).
    wall_s : float
        The run's wall time.
    """

    records_in: int = 0
    records_succeeded: int = 0
    records_to_on_failure: int = 0
    records_expired: int = 0
    records_discarded: int = 0
    records_filtered: int = 0
    batches: int = 0
    invocations: int = 0
    retries: int = 0
    bisections: int = 0
    partial_failures: int = 0
    function_errors: int = 0
    invalid_responses: int = 0
    error_types: dict[str, int] = field(default_factory=dict)
    on_failure_messages: int = 0
    invocation_log: list[Invocation] = field(default_factory=list)
    wall_s: float = 0.0

    @property
    def records_handled(self) -> int:
        """Records the checkpoint may move past: succeeded or given up on."""
        return self.records_succeeded + self.records_to_on_failure + self.records_discarded + self.records_filtered

    @property
    def cold_starts(self) -> int:
        return sum(1 for call in self.invocation_log if call.result.cold)

    def duration_ms(self, percentile: float) -> float | None:
        """Nearest-rank percentile of the REPORT ``Duration`` over all invocations."""
        values = sorted(call.result.report.duration_ms for call in self.invocation_log)
        if not values:
            return None
        rank = max(1, math.ceil(percentile / 100 * len(values)))
        return values[min(rank, len(values)) - 1]

    def iterator_age_ms(self, percentile: float) -> float | None:
        """Nearest-rank percentile of the batches' ``IteratorAge`` (100: the maximum Lambda's alarm watches)."""
        values = sorted(call.iterator_age_ms for call in self.invocation_log)
        if not values:
            return None
        rank = max(1, math.ceil(percentile / 100 * len(values)))
        return values[min(rank, len(values)) - 1]

    @property
    def records_per_s(self) -> float:
        return self.records_handled / self.wall_s if self.wall_s > 0 else 0.0
