"""Prices on the estimates: cost tables, the cheapest configuration, break-even, the classic study.

A *latency target* is either per batch (the warm duration of one invocation must not
exceed it) or per record (the warm duration divided by the batch size: the processing
time each record costs, which bounds one shard's throughput at ``1000 / target``
records per second per concurrent batch). Cold starts are excluded from the target and
reported beside it. A configuration is only recommended when its measured peak memory
leaves a headroom free (10 % by default): an out-of-memory kill fails the whole batch,
and Lambda retries it on the stream until it expires.
"""

from __future__ import annotations

from dataclasses import dataclass

from experiments.cost.project import Estimate
from pricing.billing import (
    Usage,
    break_even_ingests_per_day,
    cost,
    cost_per_ingest,
    expected_billed_ms,
    ingest_usage,
    invocation_usage,
)
from pricing.prices import CLASSIC, ENDPOINT_PRICES, INGEST_RECORDS, LAMBDA_PRICES, EndpointPrice


@dataclass(frozen=True)
class CostRow:
    """One configuration's estimate with its prices."""

    estimate: Estimate
    billed_ms: float
    per_ingest: Usage
    cost_per_invocation: float
    cost_per_ingest: float
    cold_start_rate: float
    records: int

    @property
    def per_record_ms(self) -> float:
        return self.estimate.duration_ms / self.estimate.batch_size


@dataclass(frozen=True)
class LatencyTarget:
    """``ms`` per ``batch`` (one invocation) or per ``record`` (invocation / batch size)."""

    ms: float
    per: str = "batch"

    def __post_init__(self) -> None:
        if self.per not in ("batch", "record") or self.ms <= 0:
            raise ValueError(f"latency target {self.ms} ms per {self.per!r}: need ms > 0, per 'batch' or 'record'")

    def met_by(self, row: CostRow) -> bool:
        latency = row.estimate.duration_ms if self.per == "batch" else row.per_record_ms
        return latency <= self.ms

    def __str__(self) -> str:
        return f"{self.ms:g} ms per {self.per}"


def cost_rows(
    estimates: list[Estimate],
    cold_start_rate: float,
    records: int = INGEST_RECORDS,
    free_tier: bool = False,
    ingests_per_month: float | None = None,
) -> list[CostRow]:
    """Price every estimate: per invocation and per ingest of ``records`` records.

    ``free_tier`` averages the free tier over ``ingests_per_month`` ingests; off, the
    figures are the marginal prices (an account whose free tier is used up).
    """
    rows = []
    for est in estimates:
        price = LAMBDA_PRICES[est.architecture]
        usage = invocation_usage(est.duration_ms, est.memory_mb, est.init_ms, cold_start_rate, price.billing_step_ms)
        per_ingest = ingest_usage(usage, records, est.batch_size)
        rows.append(
            CostRow(
                estimate=est,
                billed_ms=expected_billed_ms(est.duration_ms, est.init_ms, cold_start_rate, price.billing_step_ms),
                per_ingest=per_ingest,
                cost_per_invocation=cost(usage, price),
                cost_per_ingest=cost_per_ingest(per_ingest, price, free_tier, ingests_per_month),
                cold_start_rate=cold_start_rate,
                records=records,
            )
        )
    return rows


def has_headroom(estimate: Estimate, headroom: float) -> bool:
    """The measured peak memory leaves at least ``headroom`` (a share) of the memory size free."""
    return estimate.fits and estimate.max_memory_mb <= estimate.memory_mb * (1.0 - headroom)


def recommend(rows: list[CostRow], target: LatencyTarget | None = None, headroom: float = 0.0) -> CostRow | None:
    """The cheapest configuration meeting ``target`` whose peak memory leaves ``headroom`` free
    (costs within 0.5 % are a tie, won by the faster); None if none does."""
    candidates = [r for r in rows if has_headroom(r.estimate, headroom) and (target is None or target.met_by(r))]
    return _cheapest(candidates) if candidates else None


#: Costs within this share of the cheapest count as a tie (1 ms rounding makes exact ties rare).
TIE = 0.005


def _cheapest(rows: list[CostRow]) -> CostRow:
    """The cheapest of ``rows`` (not empty); among those within :data:`TIE` of it, the fastest
    (then the smallest)."""
    floor = min(r.cost_per_ingest for r in rows)
    tied = [r for r in rows if r.cost_per_ingest <= floor * (1 + TIE)]
    return min(tied, key=lambda r: (r.estimate.duration_ms, r.estimate.memory_mb))


def cheapest_per_batch(rows: list[CostRow], architecture: str, headroom: float = 0.0) -> dict[int, CostRow]:
    """For each batch size, the cheapest memory size on ``architecture`` with ``headroom`` free."""
    groups: dict[int, list[CostRow]] = {}
    for row in rows:
        est = row.estimate
        if est.architecture == architecture and has_headroom(est, headroom):
            groups.setdefault(est.batch_size, []).append(row)
    return {batch: _cheapest(group) for batch, group in sorted(groups.items())}


@dataclass(frozen=True)
class BreakEven:
    """Ingests per day at which a Lambda configuration costs as much as an endpoint."""

    row: CostRow
    endpoint: EndpointPrice
    free_tier: bool
    ingests_per_day: float

    @property
    def records_per_second(self) -> float:
        return self.ingests_per_day * self.row.records / 86_400


def break_evens(rows: list[CostRow], endpoints: list[EndpointPrice] | None = None) -> list[BreakEven]:
    """Break-even of each row against each endpoint, free tier off and on."""
    out = []
    for row in rows:
        price = LAMBDA_PRICES[row.estimate.architecture]
        for endpoint in endpoints or list(ENDPOINT_PRICES.values()):
            for free in (False, True):
                per_day = break_even_ingests_per_day(row.per_ingest, price, endpoint.per_month, free)
                out.append(BreakEven(row, endpoint, free, per_day))
    return out


@dataclass(frozen=True)
class ClassicComparison:
    """Ours at the classic study's memory size, beside its published figures."""

    batch_size: int
    classic_duration_ms: float
    classic_cost: float
    ours: CostRow
    ours_warm: CostRow

    @property
    def ratio(self) -> float:
        """How many times cheaper ours is (with the cold-start rate)."""
        return self.classic_cost / self.ours.cost_per_ingest


def classic_comparison(
    rows: list[CostRow], warm_rows: list[CostRow], architecture: str = "x86_64"
) -> list[ClassicComparison]:
    """Ours at 192 MB on ``architecture`` for the classic batch sizes (1, 10, 100).

    ``warm_rows`` are the same estimates priced with a cold-start rate of 0.
    """

    def at(source: list[CostRow], batch: int) -> CostRow | None:
        return next(
            (
                r
                for r in source
                if r.estimate.memory_mb == CLASSIC.memory_mb
                and r.estimate.batch_size == batch
                and r.estimate.architecture == architecture
            ),
            None,
        )

    out = []
    for batch, classic_cost in CLASSIC.cost_per_ingest.items():
        ours, warm = at(rows, batch), at(warm_rows, batch)
        if ours is not None and warm is not None:
            out.append(ClassicComparison(batch, CLASSIC.duration_ms, classic_cost, ours, warm))
    return out
