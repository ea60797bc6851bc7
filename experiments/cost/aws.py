"""``TARGET=aws``: the same experiment against the deployed function.

For each memory size: ``UpdateFunctionConfiguration(MemorySize=m)``, then wait for the
``function_updated_v2`` waiter (the update is asynchronous, docs/aws-notes.md §3). A
configuration change retires the old execution environments, so the first invocation
after it is a cold start (on a one-record batch); then, per batch size, a warm-up and
``repeat`` synchronous ``Invoke(LogType='Tail')`` calls with a synthetic Kinesis event
(:mod:`experiments.cost.workload`). Duration, Billed Duration, Max Memory Used and Init
Duration come from the ``REPORT`` line in the base64 log tail (:func:`parse_report_line`).
The original memory size is restored afterwards, whatever happens (the ``finally`` also
covers Ctrl-C).

What to know before running it:

* It invokes the function's unqualified ARN (``$LATEST``), because that is what
  ``UpdateFunctionConfiguration`` changes; the alias that the stream mappings invoke
  points at a published version and is not affected.
* The function writes its results wherever it is configured to (``RESULTS_*``): the
  synthetic records have ids ``shardId-cost-experiment:<n>``, so they never overwrite
  a real record's result, but they do land there. Prefer a staging copy
  (``DEPLOY_SETTINGS=staging.toml``, ``--function-name``).
* Each invocation is billed as usual (cents for the default experiment).

The ``REPORT`` line: Lambda ends every invocation's log with one line of tab-separated
``Key: value unit`` fields, e.g. (with a trailing tab, as Lambda writes it)::

    REPORT RequestId: 3604209a-e9a3-11e6-939a-754dd98c7be3\tDuration: 12.34 ms\t
    Billed Duration: 13 ms\tMemory Size: 128 MB\tMax Memory Used: 18 MB\t
    Init Duration: 120.50 ms\t

``Init Duration`` appears on cold starts only; ``Restore Duration`` / ``Billed Restore
Duration`` with SnapStart; ``Status`` and ``Error Type`` when the platform ended the
invocation (timeout, out of memory, crash). An X-Ray ``XRAY TraceId: …`` line may follow.
The local runtime writes the same format (:meth:`localtwin.runtime.report.Report.line`), and
:func:`parse_report_line` reads it back into that :class:`~localtwin.runtime.report.Report`.
"""

from __future__ import annotations

import base64
import json
import re
import statistics
from collections.abc import Callable
from typing import Any

from experiments.cost.measurement import BatchProfile, InitProfile, Measurement, invocation_error
from experiments.cost.project import Estimate
from experiments.cost.workload import Workload
from localtwin.runtime.report import Report

Progress = Callable[[str], None]

# ------------------------------------------------------------------- the REPORT line

_FIELD = re.compile(r"^(?P<key>[A-Za-z][A-Za-z ]*?):\s*(?P<value>\S+)(?:\s+(?P<unit>ms|MB))?$")


class ReportLineError(ValueError):
    """The text holds no parseable ``REPORT`` line."""


def parse_report_line(line: str) -> Report:
    """Parse one ``REPORT RequestId: …`` line into the local runtime's :class:`Report`.

    A SnapStart ``Restore Duration`` counts as the init; the line has no CPU time (``cpu_ms`` 0).

    Raises
    ------
    ReportLineError
        If the line is not a REPORT line or lacks one of the always-present fields.
    """
    text = line.strip("\r\n")
    if not text.startswith("REPORT "):
        raise ReportLineError(f"not a REPORT line: {text[:80]!r}")
    fields: dict[str, str] = {}
    for part in text[len("REPORT ") :].split("\t"):
        match = _FIELD.match(part.strip())
        if match:
            fields[match["key"]] = match["value"]
    try:
        init = fields.get("Init Duration", fields.get("Restore Duration"))
        return Report(
            request_id=fields["RequestId"],
            duration_ms=float(fields["Duration"]),
            billed_ms=int(float(fields["Billed Duration"])),
            memory_mb=int(fields["Memory Size"]),
            max_memory_mb=int(fields["Max Memory Used"]),
            init_ms=float(init) if init is not None else None,
            cpu_ms=0.0,
            status=fields.get("Status", "success"),
            error_type=fields.get("Error Type"),
        )
    except KeyError as missing:
        raise ReportLineError(f"REPORT line without {missing.args[0]!r}: {text[:200]!r}") from None
    except ValueError as bad:
        raise ReportLineError(f"REPORT line with a malformed number ({bad}): {text[:200]!r}") from None


def find_report_line(log_text: str) -> Report:
    """The last ``REPORT`` line of a log (the tail may start mid-line; the REPORT line is last)."""
    for line in reversed(log_text.splitlines()):
        if line.startswith("REPORT RequestId:"):
            return parse_report_line(line)
    raise ReportLineError(f"no REPORT line in the log tail ({len(log_text)} characters)")


def report_from_log_result(log_result_b64: str) -> Report:
    """The REPORT line of an ``Invoke`` response's ``LogResult`` (base64 of the last 4 KB of log)."""
    return find_report_line(base64.b64decode(log_result_b64).decode("utf-8", errors="replace"))


# ------------------------------------------------------------------------ measuring


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


def invoke(lam: Any, name: str, work: Workload) -> tuple[Report, str]:
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
    try:
        payload = json.loads(body)
    except ValueError:
        payload = None
    if report.status != "success":
        error_type = report.error_type or report.status
    elif response.get("FunctionError"):
        error_type = (payload.get("errorType") if isinstance(payload, dict) else None) or response["FunctionError"]
    else:
        error_type = None
    return report, invocation_error(error_type, payload)


def _row(work: Workload, report: Report, error: str, architecture: str, repetition: int) -> Measurement:
    kind = "warm" if report.init_ms is None else "cold"
    return Measurement.from_report(
        report, work, target="aws", kind=kind, architecture=architecture, repetition=repetition, error=error
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


def aws_estimates(
    rows: list[Measurement],
    profiles: dict[tuple[int, int], BatchProfile],
    inits: dict[int, InitProfile],
    architectures: list[str],
    measured_architecture: str,
) -> list[Estimate]:
    """Estimates from the warm profiles measured at each (memory, batch); other architectures ``assumed``.

    ``profiles`` and ``inits`` are :func:`experiments.cost.measurement.batch_profiles` and
    :func:`~experiments.cost.measurement.init_profiles` of ``rows``; a (memory, batch) that had an
    invocation fail (not merely report failed records) does not fit. A memory size without
    a clean cold start takes the median init of the others.
    """
    failed = {(r.memory_mb, r.batch_size) for r in rows if r.error and not r.error.endswith("batchItemFailures")}
    other_inits = [p.init.median for p in inits.values()]
    fallback_init = statistics.median(other_inits) if other_inits else 0.0
    estimates = []
    for (memory, batch), profile in sorted(profiles.items()):
        init = inits[memory].init.median if memory in inits else fallback_init
        for arch in architectures:
            estimates.append(
                Estimate(
                    architecture=arch,
                    memory_mb=memory,
                    batch_size=batch,
                    duration_ms=profile.duration.median,
                    init_ms=init,
                    max_memory_mb=profile.max_memory_mb,
                    fits=(memory, batch) not in failed and profile.max_memory_mb <= memory,
                    source="measured" if arch == measured_architecture else "assumed",
                    text_chars_max=profile.text_chars_max,
                )
            )
    return estimates
