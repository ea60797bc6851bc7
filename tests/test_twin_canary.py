"""A canary release end to end in the twin: the real release code against the local endpoint, the local
mapping invoking the alias with its weights (``localtwin.alias``), CloudWatch's alarm evaluation
(``localtwin.alarms``), and the function's workers running each version's own layers (twin).

One endpoint, one function, two canaries in a row, each on a stream of its own written while it runs:
a healthy model is promoted; then a model that raises on every batch (a classifier fitted on other
features) is rolled back by its errors alarm. In both, every record written has exactly one result,
none is given up on.
"""

from __future__ import annotations

import shutil
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import joblib
import pytest
from inference.manifest import MANIFEST_NAME, listed_files, sha256_file
from sklearn.linear_model import LogisticRegression

from layers.model_layer import LAYER_PREFIX, build_manifest, package_model_layer, write_manifest
from layers.zipping import write_zip
from localtwin.alarms import AlarmEvaluator
from localtwin.alias import AliasInvoker, pick_version
from localtwin.embedded_aws import EmbeddedAWS
from localtwin.mapping.engine import EventSourceMapping
from release.alarms import alarm_prefix
from release.aws import Clients
from release.canary import CanaryPlan, canary_model_layer
from release.deploy import deploy
from release.publish import publish_deps_layer, publish_model_layer
from release.settings import load_settings
from tests.helpers import TEXT_FIELD, TEXT_PIPELINE

ACCOUNT = "123456789012"
FN = "stream-inference"


def _model(base: Path, out: Path, version: str, broken: bool = False) -> Path:
    """The small text model packaged as version ``version``.

    ``broken``: then its classifier is swapped for one fitted on 3 features, not the vectoriser's, so
    every prediction raises (``ValueError: X has N features``). Packaging refuses that (its golden
    check), so the layer is zipped by hand with the new artifact's sha256 in the manifest: a layer
    made outside ``make model-layer``, which the release's own check (the sha256s) lets through.
    """
    folder = out / f"model-{version}"
    shutil.copytree(base, folder)
    manifest = build_manifest(
        folder, name="test-sentiment", version=version, pipeline=TEXT_PIPELINE, text_field=TEXT_FIELD
    )
    write_manifest(folder, manifest)
    if not broken:
        return package_model_layer(folder, out / f"model-{version}.zip")[0]
    classifier = LogisticRegression().fit([[0, 0, 1], [1, 0, 0], [0, 1, 0], [1, 1, 1]], ["fresh", "rotten"] * 2)
    joblib.dump(classifier, folder / TEXT_PIPELINE[-1])
    for step in manifest["pipeline"]:
        if step["file"] == TEXT_PIPELINE[-1]:
            step["sha256"] = sha256_file(folder / TEXT_PIPELINE[-1])
    write_manifest(folder, manifest)
    files = [MANIFEST_NAME, *(file for file, _ in listed_files(manifest))]
    return write_zip(out / f"model-{version}.zip", [(LAYER_PREFIX + f, folder / f) for f in files])


@pytest.fixture(scope="module")
def twin(tmp_path_factory: pytest.TempPathFactory, text_model_dir: Path, zips, deps_layer: Path) -> Any:
    """The endpoint with the function deployed (model 1.0.0 live), and everything a canary run needs."""
    out = tmp_path_factory.mktemp("twin-canary")
    function_zip = zips[0]
    models = {v: _model(text_model_dir, out, v, broken=v == "2.0.0") for v in ("1.0.0", "1.1.0", "2.0.0")}
    with EmbeddedAWS() as aws:
        role = aws.client("iam").create_role(RoleName="canary-role", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
        stream = aws.create_kinesis_stream("reviews", shards=1)
        queue_url, queue_arn = aws.create_queue("failures")
        aws.create_table("results", key="record_id")
        aws.client("s3").create_bucket(Bucket="artifacts")
        toml = (Path(__file__).parents[1] / "deploy.toml").read_text()
        for old, new in {
            "arn:aws:iam::123456789012:role/stream-inference-role": role,
            "arn:aws:kinesis:us-east-1:123456789012:stream/reviews": stream,
            "arn:aws:sqs:us-east-1:123456789012:stream-inference-failures": queue_arn,
            'RESULTS_TABLE = "stream-inference-results"': 'RESULTS_TABLE = "results"',
            'artifact_bucket = "stream-inference-artifacts-123456789012"': 'artifact_bucket = "artifacts"',
            'file = "build/releases.jsonl"': f'file = "{out / "releases.jsonl"}"',
        }.items():
            assert old in toml
            toml = toml.replace(old, new)
        (out / "deploy.toml").write_text(toml)
        settings = load_settings(out / "deploy.toml")
        clients = Clients(
            aws.client("lambda"), aws.client("s3"), aws.client("sts"), cloudwatch=aws.client("cloudwatch")
        )
        publish_deps_layer(settings, deps_layer, clients=clients)
        publish_model_layer(settings, models["1.0.0"], clients=clients)
        deploy(settings, function_zip, clients=clients)
        invoker = AliasInvoker(
            aws.client, FN, "live",
            zips=[deps_layer, *models.values()], function_zip=function_zip,
            overrides={**aws.environment(), "RESULTS_TABLE": "results"},
            workdir=out / "lambda", runtime_options={"timeout_s": 30, "max_environments": 1, "log": out / "function.log"},
            seed=7,
        )  # fmt: skip
        for model in models.values():
            invoker.stage([deps_layer, model])
        with invoker:
            yield {"aws": aws, "settings": settings, "clients": clients, "models": models, "invoker": invoker,
                   "queue_url": queue_url}  # fmt: skip


#: Minutes the twin's canaries watch: long enough for the new version's cold start on a loaded machine.
MINUTES = 0.75


def _canary(twin: dict[str, Any], model: str, records: int = 120) -> dict[str, Any]:
    """Write records to a fresh stream (2 every 0.5 s, at most ``records``) while a 50 % canary of ``model``
    runs; drain; return what happened."""
    aws, settings, invoker = twin["aws"], twin["settings"], twin["invoker"]
    stream = aws.create_kinesis_stream(f"reviews-{uuid.uuid4().hex[:6]}", shards=1)
    kinesis = aws.client("kinesis")
    written: list[str] = []
    stop = threading.Event()

    def write() -> None:
        n = 0
        while n < records:
            chunk = [
                {"PartitionKey": f"k{i}", "Data": f'{{"text": "a moving film {i}"}}'.encode()} for i in range(n, n + 2)
            ]
            response = kinesis.put_records(StreamARN=stream, Records=chunk)
            written.extend(r["SequenceNumber"] for r in response["Records"])
            n += len(chunk)
            if stop.wait(0.5):
                break

    before = invoker.counts()
    esm = EventSourceMapping.from_settings(
        invoker, settings, client_factory=aws.client, source_arn=stream, batch_size=2,
        maximum_batching_window_s=0, bisect_batch_on_function_error=False, maximum_retry_attempts=-1,
        maximum_record_age_s=-1, poll_interval_s=0.05,
    )  # fmt: skip
    writer = threading.Thread(target=write)
    with esm.start(), AlarmEvaluator(twin["clients"].cloudwatch, alarm_prefix(settings), interval_s=0.2) as evaluator:
        writer.start()
        started = time.monotonic()
        result = canary_model_layer(
            settings, twin["models"][model], CanaryPlan(50, minutes=MINUTES, poll_s=0.2), clients=twin["clients"]
        )
        canary_s = time.monotonic() - started
        stop.set()
        writer.join()
        stats = esm.wait_drained(expected_records=len(written), timeout_s=120)
    items = aws.client("dynamodb").scan(TableName="results")["Items"]
    ours = {i["sequence_number"]["S"]: i for i in items if i["sequence_number"]["S"] in set(written)}
    return {
        "result": result, "written": written, "items": ours, "stats": stats, "canary_s": canary_s,
        "counts": invoker.counts() - before, "changes": evaluator.changes,
        "on_failure": aws.receive_all(twin["queue_url"]),
    }  # fmt: skip


def _alias(twin: dict[str, Any]) -> tuple[str, dict[str, float]]:
    alias = twin["clients"].lambda_.get_alias(FunctionName=FN, Name="live")
    return alias["FunctionVersion"], (alias.get("RoutingConfig") or {}).get("AdditionalVersionWeights", {})


@pytest.mark.twin
@pytest.mark.slow
def test_a_healthy_canary_promotes_and_one_whose_model_raises_rolls_back_losing_nothing(twin: dict[str, Any]) -> None:
    # Healthy first (moto, unlike Lambda, reuses the number of a deleted version, and CloudWatch would keep
    # a rolled-back version's errors under it).
    healthy = _canary(twin, "1.1.0")

    result = healthy["result"]
    assert result.outcome == "promoted" and result.alarm is None, result
    assert (result.from_version, result.version) == ("1", "2") and _alias(twin) == ("2", {})
    assert healthy["counts"][("1", False)] >= 1 and healthy["counts"][("2", False)] >= 1  # both served the stream
    assert sum(n for (_, failed), n in healthy["counts"].items() if failed) == 0
    assert sorted(healthy["items"]) == sorted(healthy["written"])  # every record, once
    assert {i["model_version"]["S"] for i in healthy["items"].values()} == {"1.0.0", "1.1.0"}
    assert healthy["stats"].records_to_on_failure == 0 and healthy["on_failure"] == []

    broken = _canary(twin, "2.0.0")

    result = broken["result"]
    assert result.outcome == "rolled back" and result.alarm.name == f"{FN}-canary-v3-errors", result
    assert (result.from_version, result.version) == ("2", "3")
    assert broken["canary_s"] < MINUTES * 60  # decided by the alarm, before the canary's time was up
    assert (f"{FN}-canary-v3-errors", "ALARM") in broken["changes"]
    assert broken["counts"][("3", True)] >= 1 and broken["counts"][("3", False)] == 0  # it ran there, and failed
    assert _alias(twin) == ("2", {})
    # Every record once in the results, all scored by the live model (the failed batches were retried there).
    assert sorted(broken["items"]) == sorted(broken["written"]) and len(broken["written"]) >= 4
    assert {i["model_version"]["S"] for i in broken["items"].values()} == {"1.1.0"}
    assert broken["stats"].records_to_on_failure == 0 and broken["on_failure"] == []


def test_the_alias_draw_follows_the_weights() -> None:
    assert [pick_version("1", {"2": 0.1}, d) for d in (0.0, 0.099, 0.1, 0.5, 0.999)] == ["2", "2", "1", "1", "1"]
    assert pick_version("1", {}, 0.0) == "1"
    assert [pick_version("1", {"3": 0.2, "2": 0.3}, d) for d in (0.1, 0.4, 0.6)] == ["2", "3", "1"]


@pytest.mark.aws
def test_the_evaluator_sets_what_cloudwatch_would(mocked_aws: None) -> None:
    import boto3

    from release.alarms import canary_alarms

    settings = load_settings(Path(__file__).parents[1] / "deploy.toml")
    cloudwatch = boto3.client("cloudwatch", region_name="us-east-1")
    for alarm in canary_alarms(settings, "4"):
        cloudwatch.put_metric_alarm(**alarm)
    evaluator = AlarmEvaluator(cloudwatch, alarm_prefix(settings))

    def states() -> dict[str, str]:
        return {
            a["AlarmName"].rsplit("-v4-", 1)[1]: a["StateValue"] for a in cloudwatch.describe_alarms()["MetricAlarms"]
        }

    evaluator.evaluate()  # no data: not breaching
    assert states() == {"errors": "OK", "iterator-age": "OK", "quarantine-rate": "OK"}

    version = [{"Name": "FunctionName", "Value": FN}, {"Name": "Resource", "Value": f"{FN}:live"}]
    cloudwatch.put_metric_data(Namespace="AWS/Lambda", MetricData=[
        {"MetricName": "Errors", "Dimensions": [*version, {"Name": "ExecutedVersion", "Value": "4"}], "Value": 1.0},
        {"MetricName": "IteratorAge", "Dimensions": version, "Value": 1000.0},
    ])  # fmt: skip
    service = [{"Name": "Service", "Value": FN}]
    cloudwatch.put_metric_data(Namespace="StreamInference", MetricData=[
        {"MetricName": "RecordsIn", "Dimensions": service, "Value": 100.0},
        {"MetricName": "RecordsQuarantined", "Dimensions": service, "Value": 6.0},
    ])  # fmt: skip
    evaluator.evaluate()
    assert states() == {"errors": "ALARM", "iterator-age": "OK", "quarantine-rate": "ALARM"}  # 6 % > 5 %
    assert sorted(evaluator.changes) == [
        (f"{FN}-canary-v4-errors", "ALARM"),
        (f"{FN}-canary-v4-quarantine-rate", "ALARM"),
    ]
    reason = cloudwatch.describe_alarms(AlarmNames=[f"{FN}-canary-v4-errors"])["MetricAlarms"][0]["StateReason"]
    assert reason.startswith("Threshold Crossed: [1]")
