"""The fault soak (``localtwin.soak``, ``localtwin.faults``): a small soak end to end, and its parts.

The end-to-end run is ``make soak`` in miniature: 1,500 records through the function zip
and layers built from this checkout, with throttled result writes, a throttling burst,
workers killed mid-batch and a write held past the function's timeout.
"""

from __future__ import annotations

import uuid
from dataclasses import replace

import pytest
from botocore.exceptions import ClientError

from localtwin.embedded_aws import EmbeddedAWS
from localtwin.faults import FaultPlan, SinkFaults
from localtwin.replay.run import ReplayOptions, ReplayResult, run_replay
from localtwin.runtime.pool import LocalLambda
from localtwin.soak import format_soak, soak_checks, soak_settings
from release.settings import load_settings

PLAN = FaultPlan(throttle_share=0.1, kill_every=400, timeouts=1, hold_s=5.0, bursts=1, expected_records=1500, seed=5)


@pytest.fixture(scope="module")
def soaked(zips, tmp_path_factory: pytest.TempPathFactory) -> ReplayResult:
    function_zip, layers, _ = zips
    options = ReplayOptions(
        records=1500,
        shards=2,
        function_zip=function_zip,
        layer_zips=tuple(layers),
        out_dir=tmp_path_factory.mktemp("soak"),
        suffix=f"-{uuid.uuid4().hex[:8]}",
        poison_share=0.03,
        quarantine_queue=True,
        faults=PLAN,
        timeout_s=300,
    )
    return run_replay(options, soak_settings(load_settings(), timeout_s=3))


@pytest.mark.twin
@pytest.mark.slow
def test_small_soak_loses_and_duplicates_nothing_under_faults(soaked: ReplayResult) -> None:
    checks = {check.name: check for check in soak_checks(soaked, PLAN)}
    assert all(check.ok for check in checks.values()), format_soak(soaked, PLAN, list(checks.values()), 0)
    faults, errors = soaked.faults, soaked.stats.error_types
    # The faults happened and took effect: kills and a timeout failed invocations, which
    # were bisected and retried; some records were delivered (and written) again.
    assert faults is not None and faults.kills >= 1 and faults.held == 1 and faults.bursts == 1
    assert errors.get("Runtime.ExitError", 0) >= faults.kills and errors.get("Sandbox.Timedout", 0) >= 1
    assert faults.throttled_errors > 0 and faults.throttled_partial > 0 and faults.unprocessed_items > 0
    assert soaked.stats.bisections > 0 and faults.rewrites > 0
    # Exactly one result per good record; every poison record in the quarantine queue.
    assert soaked.predicted == soaked.expected["predicted"]
    assert {m["record_id"] for m in soaked.quarantine_messages} == set(soaked.function.quarantined)
    assert all(m["reason"] and "record" in m for m in soaked.quarantine_messages)
    assert soaked.checkpoints == soaked.shard_ends and all(soaked.shard_ends.values())


@pytest.mark.twin
@pytest.mark.slow
def test_soak_checks_fail_on_what_they_check(soaked: ReplayResult) -> None:
    def failed(result: ReplayResult) -> set[str]:
        return {check.name for check in soak_checks(result, PLAN) if not check.ok}

    shard = next(iter(soaked.shard_ends))
    one_poison = soaked.quarantine_messages[0]["record_id"]
    assert failed(replace(soaked, predicted=soaked.predicted + 1)) >= {"results"}  # an item for no good record
    assert failed(replace(soaked, predicted=soaked.predicted - 1)) >= {"results"}
    assert failed(replace(soaked, checkpoints={**soaked.checkpoints, shard: None})) == {"checkpoints"}
    assert failed(
        replace(soaked, quarantine_messages=[m for m in soaked.quarantine_messages if m["record_id"] != one_poison])
    ) == {"quarantine"}
    assert failed(replace(soaked, faults=replace(soaked.faults, kills=0))) == {"faults"}


# --- the fault injector on its own ---------------------------------------------------------------


@pytest.fixture(scope="module")
def aws():
    with EmbeddedAWS() as endpoint:
        yield endpoint


def _table(aws: EmbeddedAWS) -> str:
    name = f"results-{uuid.uuid4().hex[:8]}"
    aws.create_table(name, key="record_id")
    return name


def _puts(ids: list[str]) -> list[dict]:
    return [{"PutRequest": {"Item": {"record_id": {"S": rid}, "label": {"S": "fresh"}}}} for rid in ids]


def _stored(aws: EmbeddedAWS, table: str) -> set[str]:
    return {item["record_id"]["S"] for item in aws.client("dynamodb").scan(TableName=table)["Items"]}


@pytest.mark.aws
@pytest.mark.slow
def test_partial_throttling_writes_the_first_items_and_returns_the_rest(aws: EmbeddedAWS) -> None:
    table, ids = _table(aws), [f"r{i}" for i in range(20)]
    plan = replace(PLAN, throttle_share=0.999, kill_every=0, timeouts=0, bursts=0, seed=1)
    with SinkFaults(plan, table, aws.endpoint_url) as faults:
        client = aws.client("dynamodb", faults.url, retries={"mode": "standard", "max_attempts": 1})
        outcomes = []
        for _ in range(12):
            try:
                response = client.batch_write_item(RequestItems={table: _puts(ids)})
                outcomes.append(response["UnprocessedItems"][table])
            except ClientError as exc:
                outcomes.append(exc.response["Error"]["Code"])
    assert "ProvisionedThroughputExceededException" in outcomes
    partial = [o for o in outcomes if isinstance(o, list)]
    assert partial and all(0 < len(o) <= 20 for o in partial)
    # What was not returned as unprocessed was written, and counted, once per call.
    first = partial[0]
    assert {r["PutRequest"]["Item"]["record_id"]["S"] for r in first} <= set(ids)
    assert _stored(aws, table) == set(faults.counts.writes)
    assert faults.counts.throttled_partial == len(partial) and faults.counts.unprocessed_items == sum(map(len, partial))


@pytest.mark.aws
def test_other_tables_and_calls_pass_untouched(aws: EmbeddedAWS) -> None:
    results, other = _table(aws), _table(aws)
    plan = replace(PLAN, throttle_share=0.999, kill_every=0, timeouts=0, bursts=0)
    with SinkFaults(plan, results, aws.endpoint_url) as faults:
        client = aws.client("dynamodb", faults.url, retries={"mode": "standard", "max_attempts": 1})
        assert client.batch_write_item(RequestItems={other: _puts(["a", "b"])})["UnprocessedItems"] == {}
        client.put_item(TableName=results, Item={"record_id": {"S": "c"}})
    assert _stored(aws, other) == {"a", "b"} and _stored(aws, results) == {"c"}
    assert faults.counts.calls == 0


@pytest.mark.aws
def test_kills_come_every_kill_every_records_written(aws: EmbeddedAWS) -> None:
    table = _table(aws)
    kills: list[int] = []
    plan = replace(PLAN, throttle_share=0.0, kill_every=50, timeouts=0, bursts=0)
    with SinkFaults(plan, table, aws.endpoint_url) as faults:
        client = aws.client("dynamodb", faults.url)
        faults.kill = lambda: kills.append(sum(faults.counts.writes.values())) or True
        for n in range(10):
            client.batch_write_item(RequestItems={table: _puts([f"{n}-{i}" for i in range(25)])})
    assert kills == [50, 100, 150, 200] and faults.counts.kills == 4
    assert len(_stored(aws, table)) == 250 and faults.counts.rewrites == 0


@pytest.mark.twin
def test_no_invocation_in_flight_means_no_kill(zips) -> None:
    function_zip, layers, _ = zips
    with LocalLambda(function_zip, layers, max_environments=1) as runtime:
        assert runtime.kill_invoking_environment() is False


def test_plan_rejects_nonsense() -> None:
    with pytest.raises(ValueError, match="throttle_share"):
        FaultPlan(throttle_share=1.5)
    with pytest.raises(ValueError, match=">= 0"):
        FaultPlan(kill_every=-1)


def test_soak_cli_rejects_bad_options(capsys: pytest.CaptureFixture) -> None:
    from localtwin.soak import main

    with pytest.raises(SystemExit):
        main(["--timeout-s", "0"])
    assert "--timeout-s" in capsys.readouterr().err
