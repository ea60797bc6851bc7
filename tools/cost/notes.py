"""The prose of ``report.md``: the recommendation, what the quota check says, and the notes."""

from __future__ import annotations

from typing import TYPE_CHECKING

from tools.cost import tables
from tools.cost.project import MODEL_STATEMENT

if TYPE_CHECKING:
    from tools.cost.experiment import Results

#: Lambda's init phase limit (a longer init is retried inside the first invocation).
INIT_LIMIT_MS = 10_000.0


def recommendation_lines(results: Results) -> list[str]:
    cfg = results.config
    lines = []
    for title, row in (
        (f"meeting the latency target ({cfg.latency}, warm)", results.recommended),
        ("with no latency target", results.cheapest),
    ):
        if row is None:
            lines.append(f"- **Cheapest {title}:** none of the configurations measured meets it.")
            continue
        est = row.estimate
        lines.append(
            f"- **Cheapest {title}:** batch size **{est.batch_size:,}**, **{est.memory_mb:,} MB**, "
            f"**{est.architecture}**: {tables.usd(row.cost_per_ingest)} per {row.records:,}-record ingest, "
            f"{est.duration_ms:,.1f} ms per warm invocation ({row.per_record_ms:.3f} ms per record), "
            f"cold start ~{est.init_ms:,.0f} ms ({est.source})."
            + (
                f" Its texts were cut to {est.text_chars_max} characters to fit 6 MB: with full-length records "
                f"Lambda delivers at most ~{results.max_records_fit:,} per invocation, at about the same cost per record."
                if est.text_chars_max
                else ""
            )
        )
    return lines


def note_lines(results: Results) -> list[str]:
    cfg = results.config
    notes = [
        f"- **Model ({tables.est_source(results)}):** {MODEL_STATEMENT}."
        if cfg.target == "local"
        else "- **Durations** are medians measured on AWS at each memory size; the other architecture is priced "
        "with the same durations (assumed).",
        f"- **Cold starts:** {cfg.cold_start_rate:.1%} of invocations are billed their init as well "
        "(on-demand functions are billed for init since August 2025). Lambda keeps an environment warm while "
        "batches keep arriving; a shard with a batch every few seconds sees few cold starts.",
        (
            f"- **Free tier:** the tables spread the free tier over {cfg.ingests_per_day:g} ingests a day "
            "(1M requests + 400,000 GB-s a month, per account); the break-even table shows it off and on."
            if cfg.free_tier
            else "- **Free tier:** the tables are marginal prices (free tier used up, e.g. by other functions); "
            "the break-even table shows it off and on (1M requests + 400,000 GB-s a month, per account)."
        ),
        "- **Not included:** Kinesis / DynamoDB Streams charges (the same at every batch size), CloudWatch "
        "Logs ingestion, the results sink's writes, data transfer; SageMaker's data processing charges.",
        f"- **Payload:** Lambda accepts at most 6 MB per invocation. At this data set's lengths about "
        f"{results.max_records_fit:,} Kinesis records fit; "
        + (
            ", ".join(
                f"batch {w.batch_size:,} was sent with texts cut to {w.text_chars_max} characters "
                f"(mean {w.mean_text_chars:.0f}) to fit ({w.payload_bytes / 1e6:.2f} MB), and Lambda's event "
                f"source mapping would deliver fewer records per batch"
                for w in results.workloads
                if w.text_chars_max
            )
            or "every batch fitted with uncut texts"
        )
        + ".",
        "- **Endpoint capacity:** an always-on endpoint is flat-priced only while one instance keeps up; past "
        "that it needs more instances (the break-even's records/s column says what that volume means).",
    ]
    slow_init = sorted({e.memory_mb for e in results.estimates if e.init_ms > INIT_LIMIT_MS and e.source != "assumed"})
    if slow_init:
        notes.append(
            f"- **Init over 10 s:** the init is projected past Lambda's 10 s init phase at "
            f"{', '.join(f'{m:,}' for m in slow_init)} MB. Lambda would then run init again inside the first "
            "invocation, under the function's timeout. Init is projected with the same CPU share as the handler; "
            "Lambda has been reported to give init more CPU than that at small memory sizes (unverified), so "
            "these init figures, and the cold-start share of the costs, are pessimistic."
        )
    rates = [
        (p.batch_size, 1000.0 * p.batch_size / p.cpu.median)
        for p in results.profiles.values()
        if p.cpu and p.cpu.median > 0
    ]
    if rates:
        batch, rate = max(rates)
        notes.append(
            f"- **Throughput:** one full vCPU scores about {rate:,.0f} records/s in batches of {batch:,} "
            "(CPU time measured here): the ceiling of one endpoint vCPU at that batching."
        )
    if cfg.target == "local":
        notes.append(
            "- **Local figures** are one x86_64 machine's CPU, not Lambda's; `make cost-experiment TARGET=aws` "
            "measures the deployed function. No results destination is set locally (the predictions come back "
            "in the response), so no sink writes are timed."
        )
    return notes


def check_lines(results: Results) -> list[str]:
    """What the quota check says, from its long (throttled) points."""
    long = [c for c in results.checks if c.throttled_ms > 0 and c.projected_ms >= 200]
    lines = [
        "A warm worker moved into a cgroup allowed `memory / 1769` of one CPU per CFS period. Below one "
        "period's quota an invocation runs at full speed (CFS lets it spend the quota in a burst), so the "
        "proportional model overestimates short invocations; it is meant for the long ones that dominate "
        "cost. Lambda's own period is not documented (unverified)."
    ]
    if long:
        own = sorted(c.ratio_own for c in long)
        tables_ratio = sorted(c.ratio for c in long)
        drift = sorted(c.cpu_ms / c.unthrottled_cpu_ms for c in long if c.unthrottled_cpu_ms)
        lines += [
            "",
            f"On the {len(long)} throttled points projected at 200 ms or more, the model applied to the CPU time "
            f"the throttled invocations themselves used is within {min(own):.2f}-{max(own):.2f}x of the measured "
            "duration: the CPU-share mechanism holds. Against the projection the tables use (the unthrottled "
            f"median CPU time) the ratio is {min(tables_ratio):.2f}-{max(tables_ratio):.2f}x, because the CPU time "
            f"of the same work was {min(drift):.2f}-{max(drift):.2f}x the unthrottled figure: throttling makes it "
            "refill caches after every period, and other tenants of this shared machine inflate CPU time "
            "whenever they run (the `load_1m` column of the CSV). That spread is the projection's uncertainty.",
        ]
    return lines
