"""Serving options priced side by side (experiments.cost.options): each formula against the price table,
the recommendation with cold starts included, break-even volumes, and the headline figure."""

from __future__ import annotations

import pytest

from experiments.cost.options import (
    SECONDS_PER_MONTH,
    break_even_per_day,
    choose,
    compare_options,
    headline,
    lambda_on_demand,
    lambda_provisioned,
    lambda_snapstart,
    sagemaker_realtime,
    sagemaker_serverless,
)
from experiments.cost.project import Estimate
from experiments.cost.recommend import LatencyTarget
from pricing.prices import (
    CLASSIC,
    CLASSIC_TARGET_RATIO,
    CREATABLE_ENDPOINTS,
    DAYS_PER_MONTH,
    ENDPOINT_PRICES,
    LAMBDA_PRICES,
    PROVISIONED_CONCURRENCY,
    SAGEMAKER_DATA_PER_GB,
    SERVERLESS_INFERENCE,
    SNAPSTART,
)

pytestmark = pytest.mark.unit

X86 = LAMBDA_PRICES["x86_64"]
GB = 192 / 1024
CALLS = 500  # 50,000 records in batches of 100


def estimate(memory: int = 192, batch: int = 100, duration: float = 100.0, init: float = 1000.0) -> Estimate:
    return Estimate("x86_64", memory, batch, duration, init, 120, True, "projected")


def test_on_demand_bills_init_on_the_cold_share() -> None:
    option = lambda_on_demand(estimate(), 0.01, 50_000)
    billed_ms = 0.99 * 100 + 0.01 * 1100
    assert option.marginal == pytest.approx(CALLS * X86.per_request + CALLS * billed_ms / 1000 * GB * X86.per_gb_second)
    assert option.fixed_per_month == 0 and (option.warm_ms, option.cold_ms) == (100.0, 1100.0)


def test_snapstart_restores_instead_of_init_and_caches_the_snapshot_all_month() -> None:
    option = lambda_snapstart(estimate(), 0.01, 50_000, restore_ms=500.0)
    billed_ms = 0.99 * 100 + 0.01 * 600
    restores = CALLS * 0.01 * GB * SNAPSTART.restore_per_gb
    expected = CALLS * X86.per_request + CALLS * billed_ms / 1000 * GB * X86.per_gb_second + restores
    assert option.marginal == pytest.approx(expected)
    assert option.fixed_per_month == pytest.approx(GB * SECONDS_PER_MONTH * SNAPSTART.cache_per_gb_second)
    assert option.cold_ms == 600.0
    # two cached versions (an old release not yet deleted) cost twice the cache
    two = lambda_snapstart(estimate(), 0.01, 50_000, restore_ms=500.0, versions=2)
    assert two.fixed_per_month == pytest.approx(2 * option.fixed_per_month)


def test_provisioned_concurrency_is_fixed_per_environment_and_adds_environments_past_its_capacity() -> None:
    pc = PROVISIONED_CONCURRENCY["x86_64"]
    option = lambda_provisioned(estimate(), 50_000, environments=1)
    assert option.fixed_per_month == pytest.approx(GB * SECONDS_PER_MONTH * pc.per_gb_second_configured)
    assert option.marginal == pytest.approx(CALLS * X86.per_request + CALLS * 0.1 * GB * pc.per_gb_second_duration)
    assert option.cold_ms == option.warm_ms == 100.0
    capacity = SECONDS_PER_MONTH * 1000 / (100 * CALLS)  # one environment busy all month
    assert option.capacity_per_month == pytest.approx(capacity)
    assert option.units(capacity) == 1 and option.units(capacity * 1.01) == 2
    assert option.per_month(2 * capacity) == pytest.approx(2 * option.fixed_per_month + 2 * capacity * option.marginal)


def test_sagemaker_realtime_is_an_instance_plus_data_processing() -> None:
    endpoint = ENDPOINT_PRICES["ml.t3.medium"]
    option = sagemaker_realtime(endpoint, 10.0, 100, payload_bytes=30_000_000, records=50_000)
    assert option.fixed_per_month == pytest.approx(endpoint.per_hour * 730)
    assert option.marginal == pytest.approx((30_000_000 + 50_000 * 60) / 1e9 * SAGEMAKER_DATA_PER_GB)
    assert option.per_ingest(100) == pytest.approx(option.marginal + option.fixed_per_month / 100)
    assert "ml.t2.medium" not in CREATABLE_ENDPOINTS and not ENDPOINT_PRICES["ml.t2.medium"].creatable


def test_sagemaker_serverless_bills_processing_only_and_flags_its_payload_cap() -> None:
    option = sagemaker_serverless(10.0, 100, payload_bytes=30_000_000, records=50_000, memory_gb=2)
    compute = CALLS * 0.010 * 2 * SERVERLESS_INFERENCE.per_gb_second
    data = (30_000_000 + 50_000 * 60) / 1e9 * SAGEMAKER_DATA_PER_GB
    assert option.marginal == pytest.approx(compute + data) and option.fixed_per_month == 0
    assert option.cold_ms > option.warm_ms
    huge = sagemaker_serverless(10.0, 10_000, payload_bytes=5 * 6_000_000, records=50_000)
    assert "over its 4 MB payload cap" in huge.note


def test_the_recommendation_counts_cold_starts_against_the_target() -> None:
    od = lambda_on_demand(estimate(init=1500.0), 0.01, 50_000)
    ss = lambda_snapstart(estimate(), 0.01, 50_000, restore_ms=400.0)
    pc = lambda_provisioned(estimate(), 50_000)
    target, month = LatencyTarget(1000.0, "batch"), 100 * DAYS_PER_MONTH
    choice = choose([od, ss, pc], target, 0.01, month)
    assert choice.chosen is ss  # on demand is cheaper, but 1,600 ms when cold
    assert od in choice.too_slow and "Cheaper but too slow when cold: Lambda on demand" in choice.reason()
    warm_only = choose([od, ss, pc], target, 0.0, month)
    assert warm_only.chosen is od  # no cold starts: the warm latency decides, and on demand is cheapest
    per_record = choose([od, ss, pc], LatencyTarget(4.0, "record"), 0.01, month)  # SnapStart: 500 ms / 100 = 5 ms
    assert per_record.chosen is pc
    assert choose([od], LatencyTarget(10.0), 0.01, month).chosen is None


def test_break_even_of_a_linear_and_a_flat_option() -> None:
    od = lambda_on_demand(estimate(), 0.01, 50_000)
    endpoint = sagemaker_realtime(ENDPOINT_PRICES["ml.t3.medium"], 10.0, 100, 0, 50_000)
    per_day = break_even_per_day(od, endpoint)
    linear = endpoint.fixed_per_month / (od.marginal - endpoint.marginal) / DAYS_PER_MONTH
    assert per_day == pytest.approx(linear, rel=1e-6)
    assert break_even_per_day(od, od) is None


def test_compare_options_prices_every_fitting_memory_and_batch_size() -> None:
    estimates = [
        estimate(m, b, duration=b * 2 * max(1, 1769 / m), init=1000.0) for m in (128, 192, 1769) for b in (10, 100)
    ]
    estimates.append(Estimate("x86_64", 128, 1000, 5000.0, 900.0, 200, False, "projected"))  # does not fit
    options, choice = compare_options(
        estimates, {10: 7000, 100: 70_000}, 0.01, 50_000, 100 * DAYS_PER_MONTH, LatencyTarget(1000.0), 0.1
    )
    kinds = {(o.option, o.memory_mb, o.batch_size) for o in options}
    assert ("lambda snapstart", 192, 100) in kinds and ("lambda on-demand", 1769, 10) in kinds
    assert not any(o.batch_size == 1000 and o.option.startswith("lambda") for o in options)  # no fitting memory
    assert sum(o.option.startswith("sagemaker ml.") for o in options) == 3 * len(CREATABLE_ENDPOINTS)
    assert choice.chosen is not None and choice.chosen.meets(LatencyTarget(1000.0), 0.01)


def test_headline_ratio_against_the_classic_figure() -> None:
    line = headline([estimate()], 0.01, 50_000, 100 * DAYS_PER_MONTH, restore_ms=None)
    assert line is not None and not line.restore_measured
    assert line.ratio(line.snapstart) == pytest.approx(CLASSIC.cost_per_ingest[100] / line.snapstart.marginal)
    # A restore is charged per GB, as much as ~8.4 s of duration: SnapStart is cheaper only past that much init.
    crossover_ms = 500.0 + SNAPSTART.restore_per_gb / X86.per_gb_second * 1000
    for init, snapstart_cheaper in ((crossover_ms - 1000, False), (crossover_ms + 1000, True)):
        at = headline([estimate(init=init)], 0.01, 50_000, 100 * DAYS_PER_MONTH, restore_ms=None)
        assert at is not None and (at.ratio(at.snapstart) > at.ratio(at.on_demand)) is snapstart_cheaper
    measured = headline([estimate()], 0.01, 50_000, 100 * DAYS_PER_MONTH, restore_ms=250.0)
    assert measured is not None and measured.restore_measured and measured.snapstart.cold_ms == 350.0
    assert "measured by the local twin" in measured.lines()[0]
    assert headline([estimate(memory=256)], 0.01, 50_000, 1.0, None) is None


def test_the_cold_start_rate_that_keeps_the_target() -> None:
    line = headline([estimate(duration=60.0, init=15_000.0)], 0.01, 50_000, 100 * DAYS_PER_MONTH, restore_ms=500.0)
    assert line is not None
    for cold, warm in ((line.on_demand, line.on_demand_warm), (line.snapstart, line.snapstart_warm)):
        rate = line.allowed_rate(cold, warm)
        assert 0 < rate < 1
        # priced at exactly that rate, the option is at the target: classic / cost = 20
        again = headline([estimate(duration=60.0, init=15_000.0)], rate, 50_000, 1.0, restore_ms=500.0)
        assert again is not None
        at_rate = again.on_demand if cold is line.on_demand else again.snapstart
        assert again.ratio(at_rate) == pytest.approx(CLASSIC_TARGET_RATIO, rel=0.01)


def test_the_endpoints_duration_without_a_full_vcpu_estimate_undoes_the_cpu_share() -> None:
    from experiments.cost.options import full_vcpu_duration

    rows = [estimate(128, 100, duration=1382.0), estimate(1024, 100, duration=172.75)]
    assert full_vcpu_duration(rows, 100, "x86_64") == pytest.approx(172.75 / (1769 / 1024))
    assert full_vcpu_duration([*rows, estimate(3008, 100, duration=90.0)], 100, "x86_64") == 90.0
    assert full_vcpu_duration(rows, 10, "x86_64") is None
