"""Ways to serve the model, priced side by side: Lambda on demand, with SnapStart, with provisioned
concurrency, SageMaker real-time endpoints and SageMaker Serverless Inference.

Each option's cost splits into what grows with the volume (``marginal``, USD per ingest) and what
does not (``fixed``, USD per month), so its monthly cost at ``n`` ingests a month is
``fixed + n x marginal``. Prices: :mod:`pricing.prices` (dated, cited). Durations: the experiment's
estimates (:class:`experiments.cost.project.Estimate`). The model, as the report states it:

* **Lambda on demand**: requests + GB-seconds of ``ceil(duration)``, and on the cold share of
  invocations ``ceil(init + duration)``: init is billed since 2025-08-01 (docs/aws-notes.md §5).
  A cold invocation's latency is ``init + duration``.
* **Lambda SnapStart** (``PublishedVersions``): init runs once, when a version is published; a cold
  start is a *restore*. Each restore is charged per GB of memory, and its duration (restore plus
  the after-restore hooks) is billed as duration. The snapshot of every active published version is
  cached, charged per GB-second all month (a fixed cost per cached version; old versions count
  until they are deleted or go inactive after 14 days unused). The restore duration is the local
  twin's measurement when given (``--restore-ms``), else :data:`ASSUMED_RESTORE_MS` (**assumed**).
  Not combinable with provisioned concurrency.
* **Lambda provisioned concurrency**: ``environments`` environments kept initialised all month
  (GB-seconds configured) and a lower duration price for what they serve; no cold starts while the
  stream needs no more than ``environments`` concurrent batches (one per shard and
  ``ParallelizationFactor``).
* **SageMaker real-time**: one always-on instance (fixed) plus SageMaker's data processing charge
  per GB in and out (marginal); its latency is the duration at one full vCPU (no cold starts). It
  does not read a stream: something must call it (e.g. a Lambda function), not priced here, as in
  the classic study.
* **SageMaker Serverless Inference**: GB-seconds of the memory size (1-6 GB) while a request is
  processed, plus data processing; duration as at one full vCPU (**assumed**: SageMaker does not
  say how much CPU a memory size gets); a cold start adds :data:`ASSUMED_SERVERLESS_COLD_START_MS`
  of latency (**assumed**, not billed). Payloads are capped at 4 MB.

**Latency, cold starts included.** An option meets a latency target when its *cold* latency does
(the warm one when the cold-start rate is 0): a batch that starts an environment is still a batch
someone waits for.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

from experiments.cost.project import FULL_VCPU_MB, Estimate, cpu_scale
from experiments.cost.recommend import LatencyTarget, has_headroom
from pricing.billing import MB_PER_GB, Usage, billed_ms, cost, expected_billed_ms, invocations_per_ingest
from pricing.prices import (
    CLASSIC,
    CLASSIC_TARGET_RATIO,
    CREATABLE_ENDPOINTS,
    DAYS_PER_MONTH,
    ENDPOINT_PRICES,
    HOURS_PER_MONTH,
    LAMBDA_PRICES,
    PROVISIONED_CONCURRENCY,
    SAGEMAKER_DATA_PER_GB,
    SERVERLESS_INFERENCE,
    SNAPSTART,
    EndpointPrice,
)

#: A SnapStart restore of this function when nothing measured it (**assumed**): AWS describes restores
#: as sub-second for Python; 500 ms is the upper half of that, for a snapshot holding scipy and
#: scikit-learn. Independent of the memory size (restoring is reading the snapshot, not computing).
ASSUMED_RESTORE_MS = 500.0
#: Latency a SageMaker Serverless Inference cold start adds (**assumed**: reported as 1-5 s for small CPU models).
ASSUMED_SERVERLESS_COLD_START_MS = 3000.0
#: Response bytes per record a SageMaker endpoint sends back (a label and a score as JSON).
RESPONSE_BYTES_PER_RECORD = 60
SECONDS_PER_MONTH = HOURS_PER_MONTH * 3600


@dataclass(frozen=True)
class OptionCost:
    """One way of serving the model at one batch size: its costs and latencies.

    Attributes
    ----------
    option : str
        ``lambda on-demand``, ``lambda snapstart``, ``lambda provisioned``, ``sagemaker <instance>``,
        ``sagemaker serverless``.
    marginal : float
        USD per ingest that grows with the volume.
    fixed_per_month : float
        USD a month whatever the volume (caching, provisioned environments, an instance).
    capacity_per_month : float or None
        Ingests a month one unit of the fixed cost (an instance, a provisioned environment) can
        serve, busy all the time; past it another unit is needed. None: no such limit (it scales).
    warm_ms, cold_ms : float
        Latency of one batch: warm, and when it starts a new environment.
    """

    option: str
    label: str
    memory_mb: int
    batch_size: int
    architecture: str
    marginal: float
    fixed_per_month: float
    warm_ms: float
    cold_ms: float
    note: str = ""
    capacity_per_month: float | None = None

    def units(self, ingests_per_month: float) -> int:
        """Instances or provisioned environments needed for the volume (1 when capacity is unlimited)."""
        if not self.capacity_per_month or ingests_per_month <= self.capacity_per_month:
            return 1
        return math.ceil(ingests_per_month / self.capacity_per_month)

    def per_month(self, ingests_per_month: float) -> float:
        return self.fixed_per_month * self.units(ingests_per_month) + ingests_per_month * self.marginal

    def per_ingest(self, ingests_per_month: float) -> float:
        """USD per ingest with the fixed costs spread over ``ingests_per_month`` ingests."""
        if ingests_per_month <= 0:
            return math.inf if self.fixed_per_month else self.marginal
        return self.per_month(ingests_per_month) / ingests_per_month

    def latency_ms(self, cold_start_rate: float) -> float:
        """The latency a target is checked against: the cold one when any invocation is cold."""
        return self.cold_ms if cold_start_rate > 0 else self.warm_ms

    def meets(self, target: LatencyTarget, cold_start_rate: float) -> bool:
        """The target per batch, or per record (the latency over the batch size), cold starts included."""
        latency = self.latency_ms(cold_start_rate)
        return (latency if target.per == "batch" else latency / self.batch_size) <= target.ms


def _gb(memory_mb: float) -> float:
    return memory_mb / MB_PER_GB


def _ingest_bytes(payload_bytes: float, records: int) -> float:
    """Bytes in and out of an endpoint for one ingest (the events' payload, and the answers)."""
    return payload_bytes + records * RESPONSE_BYTES_PER_RECORD


def lambda_on_demand(est: Estimate, cold_start_rate: float, records: int) -> OptionCost:
    """Lambda on demand: init billed on the cold share of invocations."""
    price = LAMBDA_PRICES[est.architecture]
    billed = expected_billed_ms(est.duration_ms, est.init_ms, cold_start_rate, price.billing_step_ms)
    usage = Usage(1.0, billed / 1000 * _gb(est.memory_mb)) * invocations_per_ingest(records, est.batch_size)
    return OptionCost(
        "lambda on-demand",
        f"Lambda on demand (init billed, {est.architecture})",
        est.memory_mb,
        est.batch_size,
        est.architecture,
        cost(usage, price),
        0.0,
        est.duration_ms,
        est.init_ms + est.duration_ms,
    )


def lambda_snapstart(
    est: Estimate, cold_start_rate: float, records: int, restore_ms: float = ASSUMED_RESTORE_MS, versions: int = 1
) -> OptionCost:
    """Lambda with SnapStart: restores instead of inits; the snapshot cache is a fixed monthly cost."""
    price = LAMBDA_PRICES[est.architecture]
    step = price.billing_step_ms
    gb = _gb(est.memory_mb)
    per_call_ms = (1 - cold_start_rate) * billed_ms(est.duration_ms, step) + cold_start_rate * billed_ms(
        restore_ms + est.duration_ms, step
    )
    calls = invocations_per_ingest(records, est.batch_size)
    usage = Usage(calls, calls * per_call_ms / 1000 * gb)
    restores = calls * cold_start_rate * gb * SNAPSTART.restore_per_gb
    cache = versions * gb * SECONDS_PER_MONTH * SNAPSTART.cache_per_gb_second
    return OptionCost(
        "lambda snapstart",
        f"Lambda SnapStart ({est.architecture})",
        est.memory_mb,
        est.batch_size,
        est.architecture,
        cost(usage, price) + restores,
        cache,
        est.duration_ms,
        restore_ms + est.duration_ms,
        f"restore {restore_ms:,.0f} ms; cache of {versions} version(s)",
    )


def lambda_provisioned(est: Estimate, records: int, environments: int = 1) -> OptionCost:
    """Lambda with ``environments`` provisioned environments serving every invocation."""
    price, pc = LAMBDA_PRICES[est.architecture], PROVISIONED_CONCURRENCY[est.architecture]
    gb = _gb(est.memory_mb)
    calls = invocations_per_ingest(records, est.batch_size)
    duration = calls * billed_ms(est.duration_ms, price.billing_step_ms) / 1000 * gb * pc.per_gb_second_duration
    return OptionCost(
        "lambda provisioned",
        f"Lambda provisioned concurrency ({environments}, {est.architecture})",
        est.memory_mb,
        est.batch_size,
        est.architecture,
        calls * price.per_request + duration,
        environments * gb * SECONDS_PER_MONTH * pc.per_gb_second_configured,
        est.duration_ms,
        est.duration_ms,
        f"{environments} environment(s) always initialised; more as the volume needs",
        environments * _busy_capacity(est.duration_ms, calls),
    )


def sagemaker_realtime(
    endpoint: EndpointPrice, full_vcpu_ms: float, batch_size: int, payload_bytes: float, records: int
) -> OptionCost:
    """One always-on SageMaker real-time instance, plus data processing."""
    data = _ingest_bytes(payload_bytes, records) / 1e9 * SAGEMAKER_DATA_PER_GB
    return OptionCost(
        f"sagemaker {endpoint.instance}",
        f"SageMaker {endpoint.instance}",
        int(endpoint.memory_gib * 1024),
        batch_size,
        "x86_64",
        data,
        endpoint.per_month,
        full_vcpu_ms,
        full_vcpu_ms,
        f"always on, {endpoint.vcpus} vCPU; a caller (e.g. a Lambda function) still reads the stream",
        endpoint.vcpus * _busy_capacity(full_vcpu_ms, invocations_per_ingest(records, batch_size)),
    )


def sagemaker_serverless(
    full_vcpu_ms: float,
    batch_size: int,
    payload_bytes: float,
    records: int,
    memory_gb: int = 1,
    cold_start_ms: float = ASSUMED_SERVERLESS_COLD_START_MS,
) -> OptionCost:
    """SageMaker Serverless Inference at ``memory_gb``: per GB-second of processing, plus data processing."""
    calls = invocations_per_ingest(records, batch_size)
    compute = calls * full_vcpu_ms / 1000 * memory_gb * SERVERLESS_INFERENCE.per_gb_second
    data = _ingest_bytes(payload_bytes, records) / 1e9 * SAGEMAKER_DATA_PER_GB
    fits = payload_bytes / max(1, calls) <= SERVERLESS_INFERENCE.max_payload_bytes
    return OptionCost(
        "sagemaker serverless",
        f"SageMaker Serverless ({memory_gb} GB)",
        memory_gb * 1024,
        batch_size,
        "x86_64",
        compute + data,
        0.0,
        full_vcpu_ms,
        cold_start_ms + full_vcpu_ms,
        "cold start assumed" + ("" if fits else "; a batch is over its 4 MB payload cap"),
    )


def full_vcpu_duration(estimates: Iterable[Estimate], batch_size: int, architecture: str) -> float | None:
    """A batch's warm duration on one full vCPU, for the endpoints: the estimate at 1,769 MB or more, else
    the largest memory size's with its CPU share undone as if it were all CPU work (a lower bound)."""
    rows = [e for e in estimates if e.batch_size == batch_size and e.architecture == architecture]
    full = [e.duration_ms for e in rows if e.memory_mb >= FULL_VCPU_MB]
    if full:
        return min(full)
    if not rows:
        return None
    largest = max(rows, key=lambda e: e.memory_mb)
    return largest.duration_ms / cpu_scale(largest.memory_mb)


@dataclass(frozen=True)
class Choice:
    """The recommendation among options, with why."""

    chosen: OptionCost | None
    ingests_per_month: float
    target: LatencyTarget
    cold_start_rate: float
    too_slow: list[OptionCost]
    dearer: list[OptionCost]

    def reason(self) -> str:
        """One paragraph: what is chosen, what it costs, and why the others are not."""
        if self.chosen is None:
            fastest = min((o.cold_ms for o in self.too_slow), default=math.nan)
            return (
                f"No option meets {self.target} with cold starts included; the fastest cold latency is "
                f"{fastest:,.0f} ms."
            )
        c, n = self.chosen, self.ingests_per_month
        text = (
            f"**{c.label}** ({c.memory_mb:,} MB, batch {c.batch_size:,}) is the cheapest option that meets "
            f"{self.target} with cold starts included: ${c.per_month(n):,.2f} a month at "
            f"{n / DAYS_PER_MONTH:,.0f} ingests a day (${c.per_ingest(n):.6f} per ingest), latency "
            f"{c.latency_ms(self.cold_start_rate):,.0f} ms."
        )
        if self.dearer:
            runner = self.dearer[0]
            text += (
                f" Next: {runner.label} at ${runner.per_month(n):,.2f} a month"
                + (" (its fixed cost dominates at this volume)" if runner.fixed_per_month > runner.marginal * n else "")
                + "."
            )
        cheaper_but_slow = [o for o in self.too_slow if o.per_month(n) < c.per_month(n)]
        if cheaper_but_slow:
            slow = ", ".join(
                f"{o.label} ({o.memory_mb:,} MB, batch {o.batch_size:,}: {o.latency_ms(self.cold_start_rate):,.0f} ms "
                f"cold, ${o.per_month(n):,.2f}/month)"
                for o in _one_per_label(cheaper_but_slow)
            )
            text += f" Cheaper but too slow when cold: {slow}."
        return text


def _one_per_label(options: list[OptionCost]) -> list[OptionCost]:
    """The first (cheapest) option of each label."""
    seen: dict[str, OptionCost] = {}
    for option in options:
        seen.setdefault(option.label, option)
    return list(seen.values())


def choose(
    options: list[OptionCost], target: LatencyTarget, cold_start_rate: float, ingests_per_month: float
) -> Choice:
    """The cheapest option a month at ``ingests_per_month`` meeting ``target`` with cold starts included
    (ties: the faster)."""
    fast = [o for o in options if o.meets(target, cold_start_rate)]
    slow = sorted((o for o in options if o not in fast), key=lambda o: o.per_month(ingests_per_month))
    ranked = sorted(fast, key=lambda o: (o.per_month(ingests_per_month), o.latency_ms(cold_start_rate)))
    return Choice(
        ranked[0] if ranked else None, ingests_per_month, target, cold_start_rate, slow, _one_per_label(ranked)[1:]
    )


def compare_options(
    estimates: list[Estimate],
    payload_bytes: dict[int, int],
    cold_start_rate: float,
    records: int,
    ingests_per_month: float,
    target: LatencyTarget,
    headroom: float,
    architectures: tuple[str, ...] = ("x86_64",),
    restore_ms: float | None = None,
    environments: int = 1,
    full_vcpu_ms: dict[int, float] | None = None,
) -> tuple[list[OptionCost], Choice]:
    """Every option at every memory size (with ``headroom`` free), batch size and architecture, and the
    recommendation among them. The endpoints' duration is the first architecture's at one full vCPU.

    Parameters
    ----------
    payload_bytes : dict
        Batch size -> the JSON bytes of one event of that size (SageMaker's data processing).
    full_vcpu_ms : dict, optional
        Batch size -> a batch's duration on one full vCPU (the endpoints'); default
        :func:`full_vcpu_duration` of the estimates.
    """
    restore = ASSUMED_RESTORE_MS if restore_ms is None else restore_ms
    options: list[OptionCost] = []
    batches = sorted({e.batch_size for e in estimates if e.architecture in architectures})
    for batch in batches:
        full = (full_vcpu_ms or {}).get(batch) or full_vcpu_duration(estimates, batch, architectures[0])
        calls = invocations_per_ingest(records, batch)
        ingest_bytes = payload_bytes.get(batch, 0) * calls
        for est in estimates:
            if est.architecture in architectures and est.batch_size == batch and has_headroom(est, headroom):
                options += [
                    lambda_on_demand(est, cold_start_rate, records),
                    lambda_snapstart(est, cold_start_rate, records, restore),
                    lambda_provisioned(est, records, environments),
                ]
        if full is not None:
            options += [
                sagemaker_realtime(ENDPOINT_PRICES[name], full, batch, ingest_bytes, records)
                for name in CREATABLE_ENDPOINTS
            ]
            options.append(sagemaker_serverless(full, batch, ingest_bytes, records))
    return options, choose(options, target, cold_start_rate, ingests_per_month)


def _busy_capacity(batch_ms: float, calls_per_ingest: int) -> float:
    """Ingests a month one worker (a vCPU, an environment) serves if it does nothing else."""
    return SECONDS_PER_MONTH * 1000 / max(batch_ms * calls_per_ingest, 1e-9)


def break_even_per_day(a: OptionCost, b: OptionCost, low: float = 0.01, high: float = 1e7) -> float | None:
    """The lowest volume (ingests a day, within ``low``..``high``) at which ``a`` stops being cheaper than
    ``b`` a month, or ``b`` than ``a``; None when neither overtakes the other there."""

    def diff(per_day: float) -> float:
        n = per_day * DAYS_PER_MONTH
        return a.per_month(n) - b.per_month(n)

    steps = 480
    points = [low * (high / low) ** (i / steps) for i in range(steps + 1)]
    for left, right in zip(points, points[1:]):
        if (diff(left) < 0) != (diff(right) < 0):
            for _ in range(60):
                middle = (left + right) / 2
                if (diff(middle) < 0) == (diff(left) < 0):
                    left = middle
                else:
                    right = middle
            return (left + right) / 2
    return None


@dataclass(frozen=True)
class Headline:
    """The issue's figure: one 50,000-record ingest at batch 100, 192 MB, with and without SnapStart."""

    on_demand: OptionCost
    snapstart: OptionCost
    restore_ms: float
    restore_measured: bool
    ingests_per_month: float
    #: The same two priced with no cold starts (for the cold-start rate the target allows).
    on_demand_warm: OptionCost
    snapstart_warm: OptionCost
    cold_start_rate: float

    @property
    def classic(self) -> float:
        return CLASSIC.cost_per_ingest[100]

    def ratio(self, option: OptionCost, with_fixed: bool = False) -> float:
        usd = option.per_ingest(self.ingests_per_month) if with_fixed else option.marginal
        return self.classic / usd

    def allowed_rate(self, cold: OptionCost, warm: OptionCost) -> float:
        """The cold-start rate up to which ``cold`` stays :data:`CLASSIC_TARGET_RATIO` times below the classic
        figure (marginal prices; 0 when even warm invocations miss it)."""
        budget = self.classic / CLASSIC_TARGET_RATIO - warm.marginal
        per_rate = (cold.marginal - warm.marginal) / self.cold_start_rate if self.cold_start_rate > 0 else 0.0
        if budget <= 0:
            return 0.0
        return min(1.0, budget / per_rate) if per_rate > 0 else 1.0

    def lines(self) -> list[str]:
        od, ss, n = self.on_demand, self.snapstart, self.ingests_per_month
        where = "measured by the local twin" if self.restore_measured else "assumed (no twin measurement given)"
        target = f"{CLASSIC_TARGET_RATIO:g}x"
        return [
            f"per {CLASSIC.memory_mb} MB / batch 100 ingest, {self.cold_start_rate:.0%} cold starts, vs the classic "
            f"${self.classic}: on demand ${od.marginal:.6f} ({self.ratio(od):.1f}x); SnapStart ${ss.marginal:.6f} "
            f"({self.ratio(ss):.1f}x; restore {self.restore_ms:,.0f} ms {where}); target {target}: "
            f"{'met' if self.ratio(ss) >= CLASSIC_TARGET_RATIO else 'NOT met'} with SnapStart",
            f"  {target} holds up to a cold-start rate of {self.allowed_rate(od, self.on_demand_warm):.2%} on demand, "
            f"{self.allowed_rate(ss, self.snapstart_warm):.2%} with SnapStart (a restore is charged "
            f"${SNAPSTART.restore_per_gb:.7f}/GB: ~{SNAPSTART.restore_per_gb / LAMBDA_PRICES['x86_64'].per_gb_second:.1f}"
            " s of duration at any memory size)",
            f"  SnapStart's snapshot cache adds ${ss.fixed_per_month:.2f}/month: at {n / DAYS_PER_MONTH:,.0f} "
            f"ingests/day ${ss.per_ingest(n):.6f} per ingest ({self.ratio(ss, True):.1f}x)",
        ]


def headline(
    estimates: list[Estimate],
    cold_start_rate: float,
    records: int,
    ingests_per_month: float,
    restore_ms: float | None,
    architecture: str = "x86_64",
) -> Headline | None:
    """The issue's headline figures, or None when the estimates have no 192 MB / batch 100 row."""
    est = next(
        (
            e
            for e in estimates
            if e.memory_mb == CLASSIC.memory_mb and e.batch_size == 100 and e.architecture == architecture
        ),
        None,
    )
    if est is None:
        return None
    restore = ASSUMED_RESTORE_MS if restore_ms is None else restore_ms
    return Headline(
        lambda_on_demand(est, cold_start_rate, records),
        lambda_snapstart(est, cold_start_rate, records, restore),
        restore,
        restore_ms is not None,
        ingests_per_month,
        lambda_on_demand(est, 0.0, records),
        lambda_snapstart(est, 0.0, records, restore),
        cold_start_rate,
    )
