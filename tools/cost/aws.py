"""``TARGET=aws``: the same experiment against the deployed function.

For each memory size: ``UpdateFunctionConfiguration(MemorySize=m)``, then wait for the
``function_updated_v2`` waiter (the update is asynchronous, REFERENCE.md §3). A
configuration change retires the old execution environments, so the first invocation
after it is a cold start (on a one-record batch); then, per batch size, a warm-up and
``repeat`` synchronous ``Invoke(LogType='Tail')`` calls with a synthetic Kinesis event
(:mod:`tools.cost.workload`). Duration, Billed Duration, Max Memory Used and Init
Duration come from the ``REPORT`` line in the base64 log tail
(:mod:`tools.cost.reportline`). The original memory size is restored afterwards,
whatever happens (the ``finally`` also covers Ctrl-C).

What to know before running it:

* It invokes the function's unqualified ARN (``$LATEST``), because that is what
  ``UpdateFunctionConfiguration`` changes; the alias that the stream mappings invoke
  points at a published version and is not affected.
* The function writes its results wherever it is configured to (``RESULTS_*``): the
  synthetic records have ids ``shardId-cost-experiment:<n>``, so they never overwrite
  a real record's result, but they do land there. Prefer a staging copy
  (``DEPLOY_SETTINGS=staging.toml``, ``--function-name``).
* Each invocation is billed as usual (cents for the default experiment).
"""

from __future__ import annotations

import contextlib
import json
import statistics
from collections.abc import Callable
from typing import Any

from tools.cost.measurement import Measurement
from tools.cost.project import Estimate
from tools.cost.reportline import ReportLine, ReportLineError, report_from_log_result
from tools.cost.workload import Workload

Progress = Callable[[str], None]


def lambda_client(region: str | None = None) -> Any:
    """A boto3 Lambda client whose read timeout outlasts the longest invocation (900 s)."""
    import boto3
    from botocore.config import Config

    config = Config(read_timeout=910, connect_timeout=10, retries={"max_attempts": 3, "mode": "standard"})
    return boto3.client("lambda", region_name=region, config=config)


def wait_updated(lam: Any, name: str) -> None:
    """Block until the function's last update has been applied (``function_updated_v2``)."""
    lam.get_waiter("function_updated_v2").wait(FunctionName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 300})


def set_memory(lam: Any, name: str, memory_mb: int) -> None:
    """Set the function's memory size and wait until Lambda has applied it."""
    wait_updated(lam, name)  # an update still in progress would make this one fail
    lam.update_function_configuration(FunctionName=name, MemorySize=memory_mb)
    wait_updated(lam, name)


def invoke(lam: Any, name: str, work: Workload) -> tuple[ReportLine, str]:
    """One synchronous invocation; returns its REPORT line and '' or what went wrong."""
    response = lam.invoke(
        FunctionName=name,
        InvocationType="RequestResponse",
        LogType="Tail",
        Payload=json.dumps(work.event).encode(),
    )
    body = response["Payload"].read()
    if not response.get("LogResult"):
        raise ReportLineError("Invoke returned no LogResult: the REPORT line needs LogType='Tail'")
    report = report_from_log_result(response["LogResult"])
    error = response.get("FunctionError") or ""
    if report.status and report.status != "success":
        error = report.error_type or report.status
    elif error:
        with contextlib.suppress(ValueError, AttributeError):
            error = json.loads(body).get("errorType", error)
    else:
        try:
            failures = json.loads(body).get("batchItemFailures") or []
        except (ValueError, AttributeError):
            failures = []
        error = f"{len(failures)} batchItemFailures" if failures else ""
    return report, error


def _row(work: Workload, report: ReportLine, error: str, architecture: str, repetition: int) -> Measurement:
    return Measurement(
        target="aws",
        kind="cold" if report.cold else "warm",
        architecture=architecture,
        memory_mb=report.memory_mb,
        batch_size=work.batch_size,
        repetition=repetition,
        duration_ms=report.duration_ms,
        billed_ms=report.billed_ms,
        max_memory_mb=report.max_memory_mb,
        init_ms=report.init_ms,
        payload_bytes=work.payload_bytes,
        text_chars_max=work.text_chars_max,
        error=error,
        request_id=report.request_id,
    )


def measure_aws(
    function_name: str,
    one: Workload,
    workloads: list[Workload],
    memory_sizes: list[int],
    repeat: int,
    progress: Progress,
    lam: Any = None,
) -> tuple[list[Measurement], str]:
    """Run the experiment on the deployed function; restore its memory size afterwards.

    Returns
    -------
    rows : list of Measurement
        Every invocation (cold ones have ``init_ms``).
    architecture : str
        The function's architecture.
    """
    lam = lam or lambda_client()
    config = lam.get_function_configuration(FunctionName=function_name)
    original = int(config["MemorySize"])
    architecture = (config.get("Architectures") or ["x86_64"])[0]
    rows: list[Measurement] = []
    try:
        for memory in memory_sizes:
            set_memory(lam, function_name, memory)
            report, error = invoke(lam, function_name, one)  # new configuration: a cold start
            rows.append(_row(one, report, error, architecture, 0))
            progress(f"{memory} MB: cold start")
            for work in workloads:
                invoke(lam, function_name, work)  # warm-up
                for i in range(repeat):
                    report, error = invoke(lam, function_name, work)
                    rows.append(_row(work, report, error, architecture, i))
                progress(f"{memory} MB, batch {work.batch_size}")
    finally:
        current = lam.get_function_configuration(FunctionName=function_name)
        if int(current["MemorySize"]) != original:
            set_memory(lam, function_name, original)
    return rows, architecture


def aws_estimates(rows: list[Measurement], architectures: list[str], measured_architecture: str) -> list[Estimate]:
    """Estimates from measured warm medians per (memory, batch); other architectures ``assumed``."""
    warm: dict[tuple[int, int], list[Measurement]] = {}
    failed: set[tuple[int, int]] = set()
    for row in rows:
        key = (row.memory_mb, row.batch_size)
        if row.error and not row.error.endswith("batchItemFailures"):
            failed.add(key)
        elif row.kind == "warm":
            warm.setdefault(key, []).append(row)
    cold = [r.init_ms for r in rows if r.kind == "cold" and r.init_ms is not None and not r.error]
    cold_by_memory: dict[int, list[float]] = {}
    for row in rows:
        if row.kind == "cold" and row.init_ms is not None and not row.error:
            cold_by_memory.setdefault(row.memory_mb, []).append(row.init_ms)
    estimates = []
    for (memory, batch), group in sorted(warm.items()):
        init = cold_by_memory.get(memory) or cold
        peak = max(r.max_memory_mb for r in group)
        for arch in architectures:
            estimates.append(
                Estimate(
                    architecture=arch,
                    memory_mb=memory,
                    batch_size=batch,
                    duration_ms=statistics.median(r.duration_ms for r in group),
                    init_ms=statistics.median(init) if init else 0.0,
                    max_memory_mb=peak,
                    fits=(memory, batch) not in failed and peak <= memory,
                    source="measured" if arch == measured_architecture else "assumed",
                    text_chars_max=group[0].text_chars_max,
                )
            )
    return estimates
