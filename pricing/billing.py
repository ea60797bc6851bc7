"""Lambda cost arithmetic: billed duration, cost per invocation, per ingest, per month.

Lambda bills two things (docs/aws-notes.md §5): a price per request, and a price per
GB-second of *billed* duration, where the billed duration is the duration rounded up to
the next 1 ms (100 ms before December 2020) and, on a cold start of an on-demand
function, includes the init duration. Memory in GB is the configured MB / 1024.

A *cold-start rate* ``r`` is the share of invocations that start a new execution
environment; those are billed ``ceil(init + duration)``, the rest ``ceil(duration)``:

    expected billed ms = (1 - r) * ceil(duration) + r * ceil(init + duration)

An *ingest* is ``records`` records (50,000 by default) sent in batches of
``batch_size``: ``ceil(records / batch_size)`` invocations.

The free tier (1M requests and 400,000 GB-s a month per account) only has a meaning
per month: :func:`monthly_cost` subtracts it from a month's usage. "Free tier off" is
the marginal price of one more ingest on an account that has used it up.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from pricing.prices import DAYS_PER_MONTH, FREE_TIER, FreeTier, LambdaPrice

MB_PER_GB = 1024.0


@dataclass(frozen=True)
class Usage:
    """What Lambda bills: requests and GB-seconds (both may be fractional expectations)."""

    requests: float
    gb_seconds: float

    def __mul__(self, factor: float) -> Usage:
        return Usage(self.requests * factor, self.gb_seconds * factor)


def billed_ms(duration_ms: float, step_ms: int = 1) -> int:
    """The billed duration: ``duration_ms`` rounded up to a multiple of ``step_ms``.

    Parameters
    ----------
    duration_ms : float
        The duration (plus init on a cold start).
    step_ms : int
        1 since December 2020; 100 before.

    Returns
    -------
    int
        At least one step. Float noise below a millionth of a step is ignored, so 13.0 bills 13.
    """
    if duration_ms < 0 or step_ms < 1:
        raise ValueError(f"duration_ms={duration_ms} must be >= 0 and step_ms={step_ms} >= 1")
    steps = math.ceil(round(duration_ms / step_ms, 6))
    return max(1, steps) * step_ms


def expected_billed_ms(
    duration_ms: float, init_ms: float = 0.0, cold_start_rate: float = 0.0, step_ms: int = 1
) -> float:
    """Billed ms of one invocation on average, cold starts billed with their init."""
    if not 0.0 <= cold_start_rate <= 1.0:
        raise ValueError(f"cold_start_rate={cold_start_rate} must be within 0..1")
    warm = billed_ms(duration_ms, step_ms)
    cold = billed_ms(duration_ms + init_ms, step_ms)
    return (1.0 - cold_start_rate) * warm + cold_start_rate * cold


def invocation_usage(
    duration_ms: float, memory_mb: int, init_ms: float = 0.0, cold_start_rate: float = 0.0, step_ms: int = 1
) -> Usage:
    """Requests and GB-seconds of one invocation (an expectation when ``cold_start_rate`` > 0).

    Parameters
    ----------
    duration_ms : float
        Warm duration of one invocation.
    memory_mb : int
        Configured memory.
    init_ms : float
        Init duration, billed on the cold share of invocations.
    cold_start_rate : float
        Share of invocations that are cold starts, 0..1.
    step_ms : int
        Billing step.
    """
    billed = expected_billed_ms(duration_ms, init_ms, cold_start_rate, step_ms)
    return Usage(1.0, billed / 1000.0 * memory_mb / MB_PER_GB)


def invocations_per_ingest(records: int, batch_size: int) -> int:
    """``ceil(records / batch_size)``: the last batch may be short (it is costed as full)."""
    if records < 1 or batch_size < 1:
        raise ValueError(f"records={records} and batch_size={batch_size} must be >= 1")
    return math.ceil(records / batch_size)


def ingest_usage(per_invocation: Usage, records: int, batch_size: int) -> Usage:
    """Usage of one ingest of ``records`` records in batches of ``batch_size``."""
    return per_invocation * invocations_per_ingest(records, batch_size)


def cost(usage: Usage, price: LambdaPrice) -> float:
    """USD for ``usage`` with no free tier (the marginal price)."""
    return usage.requests * price.per_request + usage.gb_seconds * price.per_gb_second


def monthly_cost(usage: Usage, price: LambdaPrice, free_tier: bool, tier: FreeTier = FREE_TIER) -> float:
    """USD for a month's ``usage``, after the free tier when ``free_tier`` is on."""
    if not free_tier:
        return cost(usage, price)
    billable = Usage(max(0.0, usage.requests - tier.requests), max(0.0, usage.gb_seconds - tier.gb_seconds))
    return cost(billable, price)


def cost_per_ingest(
    per_ingest: Usage,
    price: LambdaPrice,
    free_tier: bool = False,
    ingests_per_month: float | None = None,
    tier: FreeTier = FREE_TIER,
) -> float:
    """USD per ingest; with the free tier, averaged over ``ingests_per_month`` ingests.

    Raises
    ------
    ValueError
        ``free_tier`` without ``ingests_per_month`` (the free tier is monthly).
    """
    if not free_tier:
        return cost(per_ingest, price)
    if not ingests_per_month or ingests_per_month <= 0:
        raise ValueError("the free tier is monthly: give ingests_per_month > 0")
    return monthly_cost(per_ingest * ingests_per_month, price, True, tier) / ingests_per_month


def break_even_ingests_per_day(
    per_ingest: Usage,
    price: LambdaPrice,
    monthly_alternative: float,
    free_tier: bool = False,
    tier: FreeTier = FREE_TIER,
    days_per_month: float = DAYS_PER_MONTH,
) -> float:
    """Ingests per day above which Lambda costs more a month than ``monthly_alternative``.

    Lambda's monthly cost grows with volume (piecewise linearly once the free tier is
    used up); the alternative (an always-on endpoint) is flat. Solved by bisection.

    Returns
    -------
    float
        ``inf`` when an ingest costs nothing (Lambda never catches up).
    """
    if monthly_alternative <= 0:
        return 0.0

    def monthly(per_day: float) -> float:
        return monthly_cost(per_ingest * (per_day * days_per_month), price, free_tier, tier)

    if cost(per_ingest, price) <= 0:
        return math.inf
    low, high = 0.0, 1.0
    while monthly(high) < monthly_alternative:
        low, high = high, high * 2.0
    for _ in range(200):
        middle = (low + high) / 2.0
        if monthly(middle) < monthly_alternative:
            low = middle
        else:
            high = middle
        if high - low <= 1e-12 * high:
            break
    return (low + high) / 2.0
