"""The replay's summary: what a person reads at a glance, with the ingest's cost at Lambda's prices.

**Cost.** Lambda's bill for this ingest at the durations measured here: the REPORT
lines' *Billed Duration* x memory, plus requests, priced with :mod:`experiments.cost`
(docs/aws-notes.md §5, no free tier). arm64 is priced at the same durations.

**What filtering saved.** Records the mapping's filter patterns dropped (``FilterCriteria``;
a DynamoDB source drops ``REMOVE`` events by default) are never delivered nor billed. The
summary prices them at this run's averages: the invocations they would have needed at the
run's records per invocation, and its cost per delivered record (:func:`filtering_savings`).

**Where the time went.** Two views of the replay (the mapping's run, cold starts included):

* the cores' time (``cores x wall``), by process (:mod:`localtwin.replay.cpu`): the
  function's workers, the endpoint's process (per operation from :mod:`localtwin.replay.meter`),
  this process, the machine's other jobs, idle;
* the function's invocations, their REPORT durations summed, placed by timestamps
  (:mod:`localtwin.replay.waits`): on a core (the worker's CPU time), waiting for a core (its
  run-queue time), its AWS calls (queued from the worker's send until moto's server reads
  the request, handled by moto, the answer written back), the Runtime API (the event
  written to the runtime, the response's body read), and the rest no stamp covers (the
  response waiting for this process's server thread, retry sleeps).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path

from localtwin.invoke import ROOT
from localtwin.mapping.stats import MappingStats
from localtwin.replay.meter import OperationTime
from localtwin.replay.results import differing_results
from localtwin.replay.run import SOURCE_NAME, ReplayResult
from pricing.billing import MB_PER_GB, Usage, cost
from pricing.prices import LAMBDA_PRICES


def ingest_cost(stats: MappingStats, memory_mb: int) -> tuple[Usage, dict[str, float]]:
    """Requests and billed GB-seconds of the invocations, and their price per architecture.

    Billed duration comes from the REPORT lines (duration rounded up to 1 ms, init
    included on cold starts); prices from :data:`pricing.prices.LAMBDA_PRICES`,
    without the free tier.
    """
    billed_ms = sum(call.result.report.billed_ms for call in stats.invocation_log)
    usage = Usage(float(len(stats.invocation_log)), billed_ms / 1000 * memory_mb / MB_PER_GB)
    return usage, {arch: cost(usage, price) for arch, price in LAMBDA_PRICES.items()}


def filtering_savings(stats: MappingStats, memory_mb: int) -> tuple[int, float, dict[str, float]]:
    """What the filter saved: records not delivered, the invocations and USD (per architecture) they would
    have cost at this run's records per invocation and cost per delivered record."""
    filtered = stats.records_filtered
    delivered = sum(call.records for call in stats.invocation_log)
    if not filtered or not delivered:
        return filtered, 0.0, {arch: 0.0 for arch in LAMBDA_PRICES}
    _, prices = ingest_cost(stats, memory_mb)
    share = filtered / delivered
    return filtered, len(stats.invocation_log) * share, {arch: usd * share for arch, usd in prices.items()}


def _rel(path: Path) -> str:
    try:
        return str(Path(path).resolve().relative_to(ROOT))
    except ValueError:
        return str(path)


def _cold_starts(inits: list[float], restores: list[float], snapshot_init_ms: float | None) -> str:
    """Init times, and with SnapStart the restore times next to the snapshot's one init."""
    parts = [f"init {inits[0]:,.0f}-{inits[-1]:,.0f} ms" if inits else ""]
    if restores:
        parts.append(f"restore {restores[0]:,.0f}-{restores[-1]:,.0f} ms")
    if snapshot_init_ms is not None:
        parts.append(f"(SnapStart: init {snapshot_init_ms:,.0f} ms once, for the snapshot)")
    return ", ".join(p for p in parts if p)


def format_summary(result: ReplayResult) -> str:
    """The summary a person reads at a glance (plain text, about 30 lines)."""
    r, stats, fn = result, result.stats, result.settings.function
    kinesis = r.options.source == "kinesis"
    source_name = SOURCE_NAME + r.options.suffix
    source = f"Kinesis stream {source_name}" if kinesis else f"DynamoDB stream of table {source_name}"
    reports = [call.result.report for call in stats.invocation_log]
    inits = sorted(report.init_ms for report in reports if report.init_ms is not None)
    restores = sorted(report.restore_ms for report in reports if report.restore_ms is not None)
    usage, prices = ingest_cost(stats, fn.memory_mb)
    wall = stats.wall_s or float("nan")
    worker_cpu_s = sum(report.cpu_ms for report in reports) / 1000
    moto, ingest = r.replay_requests, r.ingest_requests
    waits = r.waits
    cpu = r.cpu
    moto_ops_cpu = sum(op.cpu_s for op in moto.values())
    ages = [stats.iterator_age_ms(p) or 0.0 for p in (50, 95, 100)]
    alarm_ms = r.settings.monitoring.iterator_age_alarm_s * 1000
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
    filtered, saved_calls, saved = filtering_savings(stats, fn.memory_mb)
    reasons = Counter(reason.split(" (")[0] for reason in r.function.quarantined.values())
    lines += [f"                 {count:>9,}     {reason}" for reason, count in reasons.most_common()]
    lines += [
        f"  retried        {r.function.metrics['RecordsRetried']:>9,}   reported in batchItemFailures, redelivered",
        f"  filtered out   {filtered:>9,}   "
        + (
            f"dropped by the mapping's filter before invocation, never billed: ~{saved_calls:,.1f} invocations and "
            f"x86_64 ${saved['x86_64']:.7f} saved at this run's rates"
            if filtered
            else "(no filter pattern dropped a record)"
        ),
        f"  given up       {r.given_up:>9,}   sent to the on-failure queue ({r.on_failure_messages} messages)",
        f"  lost           {r.lost:>9,}   "
        + (
            "OK: every record predicted, skipped, filtered out or quarantined"
            if r.ok
            else "FAILED: see the problems below"
        ),
        "",
        f"  batches        {stats.batches:>9,}   {stats.invocations:,} invocations, {stats.retries} retries, "
        f"{stats.bisections} bisections",
        f"  cold starts    {stats.cold_starts:>9,}   " + _cold_starts(inits, restores, r.snapshot_init_ms),
        f"  duration       p50 {stats.duration_ms(50) or 0:,.1f} ms, p95 {stats.duration_ms(95) or 0:,.1f} ms "
        "(REPORT Duration)",
        f"  throughput     {stats.records_per_s:>9,.0f}   records/s ({stats.records_handled:,} records in {wall:.1f} s, "
        "cold starts included)",
        f"  Lambda cost    x86_64 ${prices['x86_64']:.5f}, arm64 ${prices['arm64']:.5f} for this ingest: "
        f"{int(usage.requests):,} requests, {usage.gb_seconds:,.1f} GB-s billed at the durations measured here "
        "(no free tier)",
        "",
        f"  iterator age   p50 {ages[0]:,.0f} ms, p95 {ages[1]:,.0f} ms, max {ages[2]:,.0f} ms (IteratorAge: a batch's "
        f"last record's age when it was sent; the template alarms on a maximum over {alarm_ms:,} ms)",
        "",
        f"  where the {cpu.wall_s:.1f} s went: {cpu.cores} cores x {cpu.wall_s:.1f} s = {cpu.capacity_s:.1f} core-s"
        + (" (moto sped up: --fast-moto)" if r.options.fast_moto else " (stock moto)"),
        f"    workers      {cpu.workers_s:>6.1f} core-s  the function: invocations {worker_cpu_s:.1f} "
        f"(predict {r.function.predict_s:.1f} s wall), inits and idle {cpu.workers_s - worker_cpu_s:.1f}",
        f"    endpoint     {cpu.endpoint_s:>6.1f} core-s  moto's process: "
        + ", ".join(f"{name} {op.calls:,} x {op.cpu_s / op.calls * 1000:.1f} ms" for name, op in _top(moto, 2))
        + f", other requests {moto_ops_cpu - sum(op.cpu_s for _, op in _top(moto, 2)):.1f}, "
        f"outside the handlers {cpu.endpoint_s - moto_ops_cpu:.1f}",
        f"    this process {cpu.this_process_s:>6.1f} core-s  the mapping, the runtime's glue, the progress bars",
        f"    other jobs   {cpu.other_s:>6.1f} core-s  the machine's other processes",
        f"    idle         {cpu.idle_s:>6.1f} core-s",
        f"    unaccounted  {cpu.unaccounted_s:>6.1f} core-s  ({abs(cpu.unaccounted_s) / cpu.capacity_s:.0%}: "
        "the readings' skew and clock ticks)",
        f"  invocations  {waits.duration_s:>8.1f} s  summed ({waits.duration_s / wall:.1f} in flight on average), "
        f"placed by timestamps: on a core {waits.on_core_s:.1f} s, waiting for a core {waits.run_queue_s:.1f} s,",
        f"                 their {waits.calls:,} AWS calls: queued for moto's server {waits.queued_s:.1f} s, "
        f"handled {waits.handled_s:.1f} s, answer written back {waits.written_back_s:.1f} s"
        + (f" ({waits.unmatched_calls:,} sends not found)" if waits.unmatched_calls else "")
        + f"; the Runtime API: event delivery {waits.event_delivery_s:.1f} s, response read "
        f"{waits.response_read_s:.1f} s; the rest {waits.rest_s:.1f} s "
        f"({waits.rest_s / waits.duration_s if waits.duration_s else 0:.0%}: the response waiting for this process "
        "to read it, retry sleeps)",
        f"    before       {r.write_s:>6.1f} s  writing the ingest: "
        + ", ".join(f"{name} {op.calls:,} x {op.wall_s / op.calls * 1000:.1f} ms" for name, op in _top(ingest, 1)),
        "",
        f"  results        DynamoDB table {r.results_table}: {r.predicted:,} items, "
        + ("one per good record" if not r.problems else "see the problems below")
        + " (read back by a table export to S3; on the local endpoint, gone when it stops)",
        f"                 {_rel(r.csv_path)} (the table, exported in {r.export_s:.1f} s)",
        f"  function log   {_rel(r.log_path)}",
    ]
    lines += [f"  PROBLEM        {problem}" for problem in r.problems]
    return "\n".join(line.rstrip() for line in lines)


def _top(operations: dict[str, OperationTime], n: int = 3) -> Iterator[tuple[str, OperationTime]]:
    yield from sorted(operations.items(), key=lambda item: -item[1].wall_s)[:n]


def format_comparison(result: ReplayResult, other: ReplayResult) -> str:
    """Two runs of one ingest, stock moto and moto sped up, side by side: throughput and every result item."""
    runs = sorted((result, other), key=lambda r: r.options.fast_moto)
    stock, fast = (r.stats.records_per_s for r in runs)
    differ = differing_results(runs[0].csv_path, runs[1].csv_path)
    items = f"{runs[0].predicted:,} and {runs[1].predicted:,} result items"
    verdict = "identical in every column" if not differ else f"{len(differ):,} differ (e.g. {differ[:3]})"
    return "\n".join(
        [
            f"  compared       stock moto {stock:,.0f} records/s, moto sped up (--fast-moto) {fast:,.0f} records/s "
            f"({fast / stock if stock else float('nan'):.2f}x), the same ingest run back to back",
            f"                 {items}: {verdict}",
        ]
    )
