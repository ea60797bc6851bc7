"""The batch-size cost experiment (``experiments.cost``): arithmetic, REPORT lines, projection,
recommendation, break-even, the AWS target against moto, and the report from synthetic rows.

Every expected number is computed by hand in the test, from the prices in
``pricing.prices`` (x86_64: $0.0000166667 per GB-s, $0.20 per million requests).
"""

from __future__ import annotations

import base64
import contextlib
import csv
import io
import json
import math
import subprocess
import sys
import time
import zipfile
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from experiments.cost.aws import ReportLineError, find_report_line, parse_report_line, report_from_log_result
from experiments.cost.measurement import Measurement, batch_profiles, init_profiles, spread
from experiments.cost.project import Estimate, cpu_scale, project_duration, project_estimates
from experiments.cost.recommend import LatencyTarget, cost_rows, recommend
from experiments.cost.workload import PAYLOAD_LIMIT_BYTES, make_workload
from localtwin.runtime.report import Report
from pricing.billing import (
    Usage,
    billed_ms,
    break_even_ingests_per_day,
    cost,
    cost_per_ingest,
    expected_billed_ms,
    ingest_usage,
    invocation_usage,
    invocations_per_ingest,
    monthly_cost,
)
from pricing.prices import DAYS_PER_MONTH, ENDPOINT_PRICES, LAMBDA_PRICES

X86 = LAMBDA_PRICES["x86_64"]
ARM = LAMBDA_PRICES["arm64"]
GBS, REQ = 0.0000166667, 0.20 / 1_000_000

# --------------------------------------------------------------------- arithmetic


@pytest.mark.parametrize(
    ("duration", "step", "billed"),
    [
        (12.34, 1, 13),
        (13.0, 1, 13),
        (0.2, 1, 1),
        (0.0, 1, 1),
        (1000.0001, 1, 1001),
        (3800, 100, 3800),
        (3801, 100, 3900),
    ],
)
def test_billed_duration_rounds_up_to_the_step(duration: float, step: int, billed: int) -> None:
    assert billed_ms(duration, step) == billed


def test_billed_duration_rejects_negative_durations() -> None:
    with pytest.raises(ValueError):
        billed_ms(-1)


def test_cost_of_one_warm_invocation_is_billed_per_ms() -> None:
    usage = invocation_usage(12.34, 128)  # billed 13 ms at 0.125 GB
    assert usage.requests == 1
    assert usage.gb_seconds == pytest.approx(0.013 * 0.125)
    assert cost(usage, X86) == pytest.approx(REQ + 0.001625 * GBS)  # 2.2708e-7
    assert cost(usage, ARM) == pytest.approx(REQ + 0.001625 * 0.0000133334)


def test_cold_start_rate_bills_init_on_that_share_of_invocations() -> None:
    # warm: ceil(10) = 10 ms; cold: ceil(10 + 990.5) = 1001 ms; 25 % cold -> 257.75 ms
    assert expected_billed_ms(10, 990.5, 0.25) == pytest.approx(0.75 * 10 + 0.25 * 1001)
    usage = invocation_usage(10, 1024, init_ms=990.5, cold_start_rate=0.25)
    assert usage.gb_seconds == pytest.approx(0.25775)
    assert invocation_usage(10, 1024, init_ms=990.5, cold_start_rate=0.0).gb_seconds == pytest.approx(0.010)
    with pytest.raises(ValueError):
        expected_billed_ms(10, 1, 1.5)


def test_cost_per_50k_ingest_free_tier_off() -> None:
    # batch 100 -> 500 invocations of 50 ms at 192 MB: 500 x 0.05 s x 0.1875 GB = 4.6875 GB-s
    assert invocations_per_ingest(50_000, 100) == 500
    assert invocations_per_ingest(50_000, 3) == 16_667
    per_ingest = ingest_usage(invocation_usage(50, 192), 50_000, 100)
    assert per_ingest == Usage(500, pytest.approx(4.6875))
    assert cost_per_ingest(per_ingest, X86) == pytest.approx(500 * REQ + 4.6875 * GBS)  # $0.000178


def test_the_classic_study_is_reproduced_with_100_ms_billing() -> None:
    # ~3.8 s billed as 3.9 s at 192 MB, 100 ms steps: $0.62 / $0.062 / $0.0062 per ingest
    usage = invocation_usage(3850, 192, step_ms=100)
    assert usage.gb_seconds == pytest.approx(3.9 * 0.1875)
    for batch, published in ((1, 0.62), (10, 0.062), (100, 0.0062)):
        assert cost(ingest_usage(usage, 50_000, batch), X86) == pytest.approx(published, rel=0.01)


def test_free_tier_on_subtracts_a_months_allowance() -> None:
    month = Usage(2_000_000, 500_000)
    assert monthly_cost(month, X86, free_tier=False) == pytest.approx(2_000_000 * REQ + 500_000 * GBS)
    # 1M requests and 400,000 GB-s are free: 1M x $0.2/M + 100,000 x GBS = $1.86667
    assert monthly_cost(month, X86, free_tier=True) == pytest.approx(0.2 + 100_000 * GBS)
    assert monthly_cost(Usage(999_999, 399_999), X86, free_tier=True) == 0.0
    per_ingest = Usage(500, 4.6875)
    # 1,000 ingests a month: 500,000 requests and 4,687.5 GB-s, all inside the free tier
    assert cost_per_ingest(per_ingest, X86, free_tier=True, ingests_per_month=1000) == 0.0
    # 300,000 ingests: (150M - 1M) requests, (1,406,250 - 400,000) GB-s
    expected = ((150_000_000 - 1_000_000) * REQ + (1_406_250 - 400_000) * GBS) / 300_000
    assert cost_per_ingest(per_ingest, X86, free_tier=True, ingests_per_month=300_000) == pytest.approx(expected)
    with pytest.raises(ValueError):
        cost_per_ingest(per_ingest, X86, free_tier=True)


def test_break_even_against_an_always_on_endpoint() -> None:
    per_ingest = Usage(500, 4.6875)  # $0.000178125 per ingest
    endpoint = 0.056 * 730  # ml.t2.medium, $40.88 a month
    per_ingest_usd = 500 * REQ + 4.6875 * GBS
    off = break_even_ingests_per_day(per_ingest, X86, endpoint, free_tier=False)
    assert off == pytest.approx(endpoint / per_ingest_usd / DAYS_PER_MONTH, rel=1e-9)  # ~7,545 a day
    # free tier on, past both allowances: per_ingest_usd x N - (1M x REQ + 400,000 x GBS) = endpoint
    on = break_even_ingests_per_day(per_ingest, X86, endpoint, free_tier=True)
    assert on == pytest.approx((endpoint + 0.2 + 400_000 * GBS) / per_ingest_usd / DAYS_PER_MONTH, rel=1e-9)
    assert on > off
    assert break_even_ingests_per_day(Usage(0, 0), X86, endpoint) == math.inf
    assert ENDPOINT_PRICES["ml.t2.medium"].per_month == pytest.approx(endpoint)


# -------------------------------------------------------------------- REPORT lines

AWS_COLD = (
    "REPORT RequestId: 3604209a-e9a3-11e6-939a-754dd98c7be3\tDuration: 12.34 ms\tBilled Duration: 13 ms\t"
    "Memory Size: 128 MB\tMax Memory Used: 18 MB\tInit Duration: 120.50 ms\t"
)
AWS_WARM = (
    "REPORT RequestId: 8f5b3e9a-1c2d-4e5f-9a8b-7c6d5e4f3a2b\tDuration: 1523.77 ms\tBilled Duration: 1524 ms\t"
    "Memory Size: 1024 MB\tMax Memory Used: 131 MB\t"
)
AWS_TIMEOUT = (
    "REPORT RequestId: 0a1b2c3d-0000-4000-8000-000000000000\tDuration: 3000.00 ms\tBilled Duration: 3000 ms\t"
    "Memory Size: 128 MB\tMax Memory Used: 127 MB\tStatus: timeout"
)


def test_report_line_with_init_duration() -> None:
    line = parse_report_line(AWS_COLD)
    assert line.request_id == "3604209a-e9a3-11e6-939a-754dd98c7be3"
    assert (line.duration_ms, line.billed_ms, line.memory_mb, line.max_memory_mb) == (12.34, 13, 128, 18)
    assert line.init_ms == 120.5 and line.status == "success" and line.cpu_ms == 0.0


def test_report_line_without_init_duration_and_with_a_status() -> None:
    warm = parse_report_line(AWS_WARM)
    assert (warm.duration_ms, warm.billed_ms, warm.memory_mb, warm.max_memory_mb) == (1523.77, 1524, 1024, 131)
    assert warm.init_ms is None
    timeout = parse_report_line(AWS_TIMEOUT)
    assert timeout.status == "timeout" and timeout.billed_ms == 3000


def test_report_line_in_a_base64_log_tail() -> None:
    tail = "\n".join(
        [
            'ds": ["RecordsIn"]}]}}',  # the 4 KB tail starts mid-line
            "END RequestId: 3604209a-e9a3-11e6-939a-754dd98c7be3",
            AWS_COLD,
            "XRAY TraceId: 1-5e1b4151-5ac6c58f5b5dbd9a8c4d1f2e\tSegmentId: 6b4d5e6f7a8b9c0d\tSampled: true\t",
            "",
        ]
    )
    assert report_from_log_result(base64.b64encode(tail.encode()).decode()).init_ms == 120.5
    with pytest.raises(ReportLineError):
        find_report_line("START RequestId: x Version: $LATEST\nEND RequestId: x\n")
    with pytest.raises(ReportLineError):
        parse_report_line("REPORT RequestId: x\tDuration: 1.00 ms\t")  # no billed duration


def test_report_line_of_the_local_runtime_parses_the_same() -> None:
    report = Report("abc", 5.5, 1506, 512, 130, 1500.25, 4.0, "error", "Runtime.OutOfMemory")
    line = parse_report_line(report.line())
    assert (line.duration_ms, line.billed_ms, line.init_ms, line.status, line.error_type) == (
        5.5,
        1506,
        1500.25,
        "error",
        "Runtime.OutOfMemory",
    )


# ------------------------------------------------------------------ projection


def test_cpu_share_is_proportional_to_memory_up_to_one_vcpu() -> None:
    assert cpu_scale(1769) == 1.0 and cpu_scale(3008) == 1.0 and cpu_scale(10240) == 1.0
    assert cpu_scale(128) == pytest.approx(1769 / 128)
    assert project_duration(10.0, 2.0, 884.5) == pytest.approx(22.0)  # half a vCPU: CPU doubles, I/O doesn't
    assert project_duration(10.0, 2.0, 3008) == pytest.approx(12.0)  # single-threaded: flat above 1,769 MB


def _warm(batch: int, cpu: float, wall: float, memory: int = 300, rep: int = 0, **kw: Any) -> Measurement:
    return Measurement(
        "local", "warm", "x86_64", 10240, batch, rep, wall, math.ceil(wall), memory, cpu_ms=cpu, runq_wait_ms=0.0, **kw
    )


def _cold(init: float, init_cpu: float, rep: int = 0, memory: int = 120) -> Measurement:
    return Measurement(
        "local", "cold", "x86_64", 10240, 1, rep, 2.0, 3, memory, init_ms=init, init_cpu_ms=init_cpu, runq_wait_ms=0.0
    )


def test_profiles_take_medians_and_projection_marks_what_does_not_fit() -> None:
    rows = [_warm(100, c, c + 1, memory=140 + i) for i, c in enumerate([4.0, 5.0, 6.0, 50.0])]
    rows += [_warm(1000, 40.0, 41.0, memory=200), _cold(900.0, 800.0), _cold(1100.0, 1000.0, 1)]
    profiles = batch_profiles(rows)
    assert profiles[(10240, 100)].cpu.median == 5.5 and profiles[(10240, 100)].max_memory_mb == 143
    assert spread([4.0, 5.0, 6.0, 50.0]).q3 == pytest.approx(17.0)
    init = init_profiles(rows)[10240]
    assert init.init.median == 1000.0 and init.cpu.median == 900.0 and init.off_cpu.median == 100.0
    estimates = project_estimates(profiles, init, [128, 192, 1769], ["x86_64", "arm64"])
    by = {(e.architecture, e.memory_mb, e.batch_size): e for e in estimates}
    e = by[("x86_64", 192, 100)]
    assert e.duration_ms == pytest.approx(5.5 * 1769 / 192 + 1.0)
    assert e.init_ms == pytest.approx(900 * 1769 / 192 + 100)
    assert e.fits and e.source == "projected" and by[("arm64", 192, 100)].source == "assumed"
    assert not by[("x86_64", 128, 100)].fits  # peak 143 MB
    assert not by[("x86_64", 192, 1000)].fits and by[("x86_64", 1769, 1000)].fits  # peak 200 MB


# --------------------------------------------------------------- recommendation


def _estimate(batch: int, memory: int, duration: float, peak: int = 100, arch: str = "x86_64") -> Estimate:
    return Estimate(arch, memory, batch, duration, 1000.0, peak, peak <= memory, "projected")


def test_recommendation_is_the_cheapest_meeting_the_latency_target() -> None:
    estimates = [
        _estimate(100, 128, 400.0),  # cheapest, but slow
        _estimate(100, 1024, 60.0),
        _estimate(1000, 128, 3000.0, peak=150),  # cheapest per record, but does not fit
        _estimate(1000, 256, 2000.0, peak=150),
        _estimate(10, 1769, 2.0),
    ]
    rows = cost_rows(estimates, cold_start_rate=0.0)
    cheapest = recommend(rows)
    assert (cheapest.estimate.batch_size, cheapest.estimate.memory_mb) == (1000, 256)  # 128 MB never: no fit
    per_batch = recommend(rows, LatencyTarget(100, "batch"))
    assert (per_batch.estimate.batch_size, per_batch.estimate.memory_mb) == (100, 1024)
    # per record: 100 @ 128 MB (4 ms/record) and 1000 @ 256 MB (2 ms) are too slow; 100 @ 1024 MB (0.6 ms)
    # is cheaper than 10 @ 1769 MB (0.2 ms, but 5,000 requests per ingest)
    per_record = recommend(rows, LatencyTarget(1.0, "record"))
    assert (per_record.estimate.batch_size, per_record.estimate.memory_mb) == (100, 1024)
    assert recommend(rows, LatencyTarget(1.0, "batch")) is None
    tight = cost_rows([_estimate(100, 128, 10.0, peak=124), _estimate(100, 192, 10.0, peak=124)], 0.0)
    assert recommend(tight, headroom=0.1).estimate.memory_mb == 192  # 124 of 128 MB leaves < 10 %
    with pytest.raises(ValueError):
        LatencyTarget(100, "shard")


# ------------------------------------------------------------------- workload


def test_workload_cuts_texts_to_fit_the_payload_cap() -> None:
    pool = ["a fairly long review text that goes on and on about the film " * 3] * 10
    fits = make_workload(5, pool)
    assert fits.text_chars_max is None and fits.payload_bytes <= PAYLOAD_LIMIT_BYTES
    cut = make_workload(50, pool, limit=30_000)
    assert cut.text_chars_max is not None and cut.payload_bytes <= 30_000
    assert len(cut.event["Records"]) == 50
    assert json.loads(base64.b64decode(cut.event["Records"][0]["kinesis"]["data"]))["text"]
    assert cut.event["Records"][0]["eventID"].startswith("shardId-cost-experiment:")


# ----------------------------------------------------------- AWS target, with moto

ORIGINAL_MEMORY = 512


@pytest.fixture
def moto_lambda(mocked_aws: None) -> Any:
    """A function in moto (arm64, 512 MB); create/update/get configuration go to moto."""
    import boto3

    role = boto3.client("iam").create_role(RoleName="cost-test", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    code = io.BytesIO()
    with zipfile.ZipFile(code, "w") as zf:
        zf.writestr("lambda_function.py", "def lambda_handler(event, context):\n    return {}\n")
    lam = boto3.client("lambda", region_name="us-east-1")
    lam.create_function(
        FunctionName="stream-inference",
        Runtime="python3.11",
        Role=role,
        Handler="lambda_function.lambda_handler",
        Code={"ZipFile": code.getvalue()},
        MemorySize=ORIGINAL_MEMORY,
        Architectures=["arm64"],
    )
    yield lam


class FakeInvoke:
    """Stands in for Lambda's Invoke only (moto's needs Docker): answers at the boto3 client's
    ``before-call`` hook with a realistic LogResult (base64 log tail ending in a REPORT line).

    The memory size comes from moto's configuration; the first call after it changes is a
    cold start; the duration follows the CPU-share model (1 ms + 0.05 ms per record at 1,769 MB).
    """

    def __init__(self, lam: Any, fail_on_call: int | None = None) -> None:
        self.lam, self.fail_on_call = lam, fail_on_call
        self.calls: list[tuple[int, int]] = []
        self.memory_seen: int | None = None
        lam.meta.events.register("before-call.lambda.Invoke", self)

    def __call__(self, params: dict[str, Any], **_: Any) -> tuple[Any, dict[str, Any]]:
        from botocore.exceptions import ClientError
        from botocore.response import StreamingBody

        if self.fail_on_call is not None and len(self.calls) + 1 == self.fail_on_call:
            raise ClientError({"Error": {"Code": "TooManyRequestsException", "Message": "Rate exceeded"}}, "Invoke")
        memory = self.lam.get_function_configuration(FunctionName="stream-inference")["MemorySize"]
        records = len(json.loads(params["body"])["Records"])
        self.calls.append((memory, records))
        cold, self.memory_seen = memory != self.memory_seen, memory
        duration = (1.0 + 0.05 * records) * max(1.0, 1769 / memory)
        init = 1500.0 * max(1.0, 1769 / memory) if cold else None
        request_id = f"00000000-0000-4000-8000-{len(self.calls):012d}"
        billed = math.ceil(duration + (init or 0))
        report = Report(request_id, duration, billed, memory, 120 + records // 100, init, cpu_ms=0.0).line()
        tail = f'{{"_aws": {{"CloudWatchMetrics": []}}}}\nEND RequestId: {request_id}\n{report}\t\n'
        body = json.dumps({"batchItemFailures": []}).encode()
        return SimpleNamespace(status_code=200, headers={}), {
            "StatusCode": 200,
            "LogResult": base64.b64encode(tail.encode()).decode(),
            "ExecutedVersion": "$LATEST",
            "Payload": StreamingBody(io.BytesIO(body), len(body)),
        }


def _memory(lam: Any) -> int:
    return lam.get_function_configuration(FunctionName="stream-inference")["MemorySize"]


@pytest.mark.aws
def test_aws_target_sets_each_memory_size_reads_report_lines_and_restores_memory(moto_lambda: Any) -> None:
    from experiments.cost.aws import measure_aws

    fake = FakeInvoke(moto_lambda)
    pool = ["a warm and funny film", "tedious and overlong"]
    one, works = make_workload(1, pool), [make_workload(1, pool), make_workload(100, pool)]
    rows, arch = measure_aws("stream-inference", one, works, [128, 1024], 2, lambda _: None, lam=moto_lambda)

    assert arch == "arm64"
    assert _memory(moto_lambda) == ORIGINAL_MEMORY  # restored
    assert [m for m, _ in fake.calls] == [128] * 7 + [1024] * 7  # cold + (warm-up + 2) x 2 batch sizes each
    assert [r.memory_mb for r in rows] == [128] * 5 + [1024] * 5
    cold = [r for r in rows if r.kind == "cold"]
    assert [(r.memory_mb, r.batch_size) for r in cold] == [(128, 1), (1024, 1)]
    assert cold[0].init_ms == pytest.approx(1500 * 1769 / 128, abs=0.01)
    warm = [r for r in rows if r.kind == "warm" and r.memory_mb == 128 and r.batch_size == 100]
    assert [r.duration_ms for r in warm] == [pytest.approx(6 * 1769 / 128, abs=0.01)] * 2
    assert all(r.target == "aws" and not r.error and r.max_memory_mb >= 120 for r in rows)


@pytest.mark.aws
def test_aws_target_restores_memory_when_an_invocation_fails(moto_lambda: Any) -> None:
    from botocore.exceptions import ClientError

    from experiments.cost.aws import measure_aws

    FakeInvoke(moto_lambda, fail_on_call=3)
    work = make_workload(10, ["a film"])
    with pytest.raises(ClientError):
        measure_aws("stream-inference", work, [work], [128, 256], 2, lambda _: None, lam=moto_lambda)
    assert _memory(moto_lambda) == ORIGINAL_MEMORY


@pytest.mark.aws
@pytest.mark.slow
def test_aws_experiment_end_to_end_writes_the_report(moto_lambda: Any, tmp_path: Path) -> None:
    from experiments.cost.experiment import ExperimentConfig, run_experiment

    FakeInvoke(moto_lambda)
    cfg = ExperimentConfig.small(
        target="aws", batch_sizes=[1, 100], function_name="stream-inference", out=tmp_path, progress=False
    )
    results = run_experiment(cfg, lam=moto_lambda)
    assert _memory(moto_lambda) == ORIGINAL_MEMORY
    assert {e.source for e in results.estimates if e.architecture == "arm64"} == {"measured"}
    assert {e.source for e in results.estimates if e.architecture == "x86_64"} == {"assumed"}
    assert {e.memory_mb for e in results.estimates} == {128, 192, 1024}  # 192: the classic comparison
    assert [c.batch_size for c in results.classic] == [1, 100]
    assert (tmp_path / "report.md").read_text().count("classic") > 3
    with (tmp_path / "measurements.csv").open() as fh:
        assert len(list(csv.DictReader(fh))) == len(results.measurements) == 3 * (1 + 2 * 2)


# ------------------------------------------------------- local analysis and report


@pytest.mark.slow
def test_report_from_synthetic_local_measurements(tmp_path: Path) -> None:
    from experiments.cost.experiment import ExperimentConfig, analyse
    from experiments.cost.report import write_outputs

    rows = [_cold(1000.0 + i, 900.0, i) for i in range(3)]
    for batch, cpu in ((1, 1.5), (10, 2.0), (100, 5.0), (1000, 40.0)):
        rows += [_warm(batch, cpu, cpu + 0.5, memory=124 + batch // 100, rep=i) for i in range(3)]
    quota = _warm(100, 5.0, 60.0, rep=0, throttled_ms=50.0)
    quota.kind, quota.memory_mb = "quota", 128
    cfg = ExperimentConfig(batch_sizes=[1, 10, 100, 1000], memory_sizes=[128, 512, 1769], out=tmp_path)
    works = [make_workload(b, ["a film"]) for b in cfg.batch_sizes]
    results = analyse(cfg, [*rows, quota], "x86_64", works, "cgroup CFS quota, period 100 ms", 9000)
    files = write_outputs(results, tmp_path)

    assert {p.name for p in files.values()} >= {"report.md", "measurements.csv", "estimates.csv", "quota_check.csv"}
    for name in ("cost_per_ingest.png", "duration.png", "break_even.png", "options.png"):
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    report = (tmp_path / "report.md").read_text()
    assert "$0.00620" in report and "3,800 ms" in report and "classic / ours" in report
    assert "## Serving options" in report and "SnapStart" in report and "ml.c6i.large" in report
    assert "invocations saved" in report  # what event filtering saves
    assert results.choice is not None and results.headline is not None
    assert "✗" in report  # 128 MB cannot hold the 1000-record batch's 134 MB
    assert results.recommended is not None and results.recommended.estimate.max_memory_mb <= 0.9 * 512
    assert results.checks[0].projected_ms == pytest.approx(5.0 * 1769 / 128 + 0.5)
    with (tmp_path / "estimates.csv").open() as fh:
        assert len(list(csv.DictReader(fh))) == 4 * 4 * 2  # batch sizes x (3 + 192 MB) x architectures


# ----------------------------------------------------------------- CPU quota


def test_cpu_quota_slows_a_busy_process_to_its_share() -> None:
    from experiments.cost.quota import CpuQuota, QuotaUnavailableError

    busy = "import sys, time\nsys.stdin.readline()\nt = time.process_time()\nwhile time.process_time() - t < 0.2: pass"
    with contextlib.ExitStack() as stack:
        try:
            quota = stack.enter_context(CpuQuota(0.25, period_us=100_000))
        except QuotaUnavailableError as exc:
            pytest.skip(f"no CPU quota mechanism here: {exc}")
        child = subprocess.Popen([sys.executable, "-c", busy], stdin=subprocess.PIPE)
        try:
            quota.add(child.pid)
            started = time.perf_counter()
            child.communicate(b"go\n", timeout=30)
            wall = time.perf_counter() - started
        finally:
            child.kill()
        assert wall > 0.5  # 200 ms of CPU at 25 ms per 100 ms
        assert quota.throttled_ms() > 0
    assert not quota.path.exists()


def test_measurements_csv_round_trips_for_re_pricing(tmp_path: Path) -> None:
    from experiments.cost.measurement import read_measurements
    from experiments.cost.report import write_csvs

    rows = [_cold(1000.0, 900.0), _warm(100, 5.0, 6.5, rep=1, text_chars_max=84, error="1 batchItemFailures")]
    results = SimpleNamespace(measurements=rows, warm_costs=[], costs=[], checks=[])
    write_csvs(results, tmp_path)  # type: ignore[arg-type]
    again = read_measurements(tmp_path / "measurements.csv")
    assert again == rows


# ------------------------------------------------------------------ command line


def test_command_line_options_override_the_small_or_default_configuration() -> None:
    from experiments.cost.cli import config_from_args, parser

    def config(*argv: str) -> Any:
        return config_from_args(parser().parse_args(argv))

    default, small = config(), config("--small")
    assert (default.batch_sizes, default.repeat, default.quota_check) == ([1, 10, 100, 1000, 10000], 20, True)
    assert (small.batch_sizes, small.memory_sizes, small.repeat) == ([1, 10, 100], [128, 1024], 2)
    # an option given explicitly wins over --small's value, even when it equals the default one
    chosen = config("--small", "--repeat", "20", "--memory", "256", "--latency-per", "record", "--no-quota-check")
    assert (chosen.batch_sizes, chosen.memory_sizes, chosen.repeat) == ([1, 10, 100], [256], 20)
    assert (chosen.latency.ms, chosen.latency.per, chosen.quota_check) == (1000.0, "record", False)
