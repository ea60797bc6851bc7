"""Publishing, releases, relink / rollback and deploy against moto's Lambda (release).

Layers are small fake zips built here (the real ones are tested by the layer checks);
everything else is the real boto3 API served by ``moto.mock_aws``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from botocore.stub import Stubber
from inference.manifest import sha256_file

from release.arns import LayerArn, replace_layers
from release.aws import Clients, get_configuration
from release.cli import main
from release.deploy import ROLE_PROPAGATION_DELAYS_S, create_function_when_role_ready, deploy
from release.descriptions import format_description, model_description, parse_description
from release.errors import ReleaseError
from release.history import read_history
from release.listing import format_listing, releases
from release.model_zip import verify_model_zip
from release.publish import publish_deps_layer, publish_layer, publish_model_layer
from release.relink import relink, rollback
from release.settings import SettingsError, load_settings, parse_settings
from release.transaction import abort
from release.upload import code_sha256
from tests.helpers import FAKE_LIBRARIES, fake_deps_zip, fake_model_zip, write_zip

pytestmark = pytest.mark.aws

REGION = "us-east-1"
ACCOUNT = "123456789012"
ROLE = f"arn:aws:iam::{ACCOUNT}:role/stream-inference-role"
MUTATING = ("create_", "update_", "publish_", "tag_", "untag_", "delete_", "put_")


# --------------------------------------------------------------------------- fixtures and helpers


@pytest.fixture
def aws(mocked_aws, monkeypatch):
    """moto for the duration of the test (``mocked_aws``), without real sleeps between retries."""
    monkeypatch.setattr("release.aws._sleep", lambda seconds: None)


@pytest.fixture
def clients(aws) -> Clients:
    import boto3

    return Clients.from_session(boto3.Session(region_name=REGION))


def _write_toml(path: Path, sources: list[dict[str, Any]], **overrides: Any) -> Path:
    function = {"memory_mb": 1024, "bucket": '"artifacts-bucket"', **overrides}
    lines = [
        "[function]",
        'name = "stream-inference"',
        'runtime = "python3.11"',
        'architecture = "x86_64"',
        f"memory_mb = {function['memory_mb']}",
        "timeout_s = 60",
        f'role_arn = "{ROLE}"',
        'alias = "live"',
        "[function.environment]",
        'RESULTS_TABLE = "stream-inference-results"',
        "[layers]",
        'model_name = "model-layer"',
        'dependencies_name = "deps-layer"',
        f"artifact_bucket = {function['bucket']}",
        "[history]",
        'file = "history/releases.jsonl"',
    ]
    for source in sources:
        lines.append("[[event_sources]]")
        lines += [f"{k} = {json.dumps(v)}" for k, v in source.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


def _source(kind: str, arn: str, queue_arn: str, **overrides: Any) -> dict[str, Any]:
    return {
        "type": kind,
        "source_arn": arn,
        "batch_size": 100,
        "maximum_batching_window_s": 1,
        "starting_position": "TRIM_HORIZON",
        "parallelization_factor": 1,
        "bisect_batch_on_function_error": True,
        "maximum_retry_attempts": 3,
        "maximum_record_age_s": 3600,
        "on_failure_destination_arn": queue_arn,
        "enabled": True,
        **overrides,
    }


@pytest.fixture
def env(clients, tmp_path):
    """Role, streams, queue and bucket in moto; a deploy.toml naming them; fake zips."""
    import boto3

    iam = boto3.client("iam", region_name=REGION)
    iam.create_role(RoleName="stream-inference-role", AssumeRolePolicyDocument="{}")
    kinesis = boto3.client("kinesis", region_name=REGION)
    kinesis.create_stream(StreamName="reviews", ShardCount=1)
    stream_arn = kinesis.describe_stream(StreamName="reviews")["StreamDescription"]["StreamARN"]
    table = boto3.client("dynamodb", region_name=REGION).create_table(
        TableName="reviews",
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
        StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_IMAGE"},
    )
    table_stream_arn = table["TableDescription"]["LatestStreamArn"]
    queue_url = boto3.client("sqs", region_name=REGION).create_queue(QueueName="failures")["QueueUrl"]
    queue_arn = boto3.client("sqs", region_name=REGION).get_queue_attributes(
        QueueUrl=queue_url, AttributeNames=["QueueArn"]
    )["Attributes"]["QueueArn"]
    boto3.client("s3", region_name=REGION).create_bucket(Bucket="artifacts-bucket")
    sources = [_source("kinesis", stream_arn, queue_arn), _source("dynamodb", table_stream_arn, queue_arn)]
    toml = _write_toml(tmp_path / "deploy.toml", sources)
    function_zip = write_zip(
        tmp_path / "function.zip", {"lambda_function.py": b"def lambda_handler(e, c):\n    return {}\n"}
    )
    return {
        "settings": load_settings(toml),
        "toml": toml,
        "sources": sources,
        "tmp": tmp_path,
        "function_zip": function_zip,
        "deps_zip": deps_zip(tmp_path),
        "clients": clients,
    }


def deps_zip(tmp: Path, sklearn: str = "1.7.2", tag: str = "cpython-311-x86_64") -> Path:
    """A fake dependencies layer with that scikit-learn, for that Python and CPU."""
    libraries = {**FAKE_LIBRARIES, "scikit-learn": sklearn}
    return fake_deps_zip(tmp / f"deps-{sklearn}-{tag}.zip", libraries=libraries, extension_tag=tag)


def model_zip(
    tmp: Path, version: str, sklearn: str = "1.7.2", tamper: bool = False, extra: dict[str, bytes] | None = None
) -> Path:
    """A fake model layer whose manifest lists two artifacts with their sha256."""
    name = tmp / f"model-{version}-{sklearn}{'-bad' if tamper or extra else ''}.zip"
    libraries = {**FAKE_LIBRARIES, "scikit-learn": sklearn}
    return fake_model_zip(name, version, libraries=libraries, python="3.11.7", tamper=tamper, extra=extra)


class Recorder:
    """Wraps a client: records every method called, optionally fails some calls first."""

    def __init__(self, client: Any, fail: dict[str, int] | None = None):
        self._client, self._fail, self.calls = client, dict(fail or {}), []

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._client, name)
        if not callable(attr) or name in ("get_waiter", "get_paginator"):
            return attr

        def call(*args: Any, **kwargs: Any) -> Any:
            self.calls.append(name)
            if self._fail.get(name, 0) > 0:
                self._fail[name] -= 1
                raise self._client.exceptions.ResourceConflictException(
                    {"Error": {"Code": "ResourceConflictException", "Message": "An update is in progress"}}, name
                )
            return attr(*args, **kwargs)

        return call


def _deployed(env) -> tuple[str, str]:
    """Publish both layers and deploy; returns (deps ARN, model 1.0.0 ARN)."""
    s, c = env["settings"], env["clients"]
    deps = publish_deps_layer(s, env["deps_zip"], clients=c).layer_arn
    result = publish_model_layer(s, model_zip(env["tmp"], "1.0.0"), clients=c)
    assert result.release is None  # no function yet: published only
    deploy(s, env["function_zip"], clients=c)
    return deps, result.layer_arn


def _state(lam: Any) -> dict[str, Any]:
    """Everything a refused relink must leave alone."""
    config = lam.get_function_configuration(FunctionName="stream-inference")
    config.pop("ResponseMetadata")
    return {
        "config": config,
        "alias": lam.get_alias(FunctionName="stream-inference", Name="live")["FunctionVersion"],
        "versions": len(lam.list_versions_by_function(FunctionName="stream-inference")["Versions"]),
        "tags": lam.list_tags(Resource=config["FunctionArn"])["Tags"],
    }


def _live_layers(lam: Any) -> list[str]:
    return [
        layer["Arn"]
        for layer in lam.get_function_configuration(FunctionName="stream-inference", Qualifier="live")["Layers"]
    ]


# --------------------------------------------------------------------------- publish and deploy


def test_publish_both_layers_then_deploy_creates_function_alias_and_mappings(env):
    lam = env["clients"].lambda_
    deps, model = _deployed(env)

    deps_layer = lam.get_layer_version(LayerName="deps-layer", VersionNumber=1)
    assert deps_layer["Description"].startswith(
        "deps python=3.11 numpy=2.2.6 scipy=1.16.3 scikit-learn=1.7.2 joblib=1.6.0 sha256="
    )
    assert deps_layer["CompatibleRuntimes"] == ["python3.11"] and deps_layer["CompatibleArchitectures"] == ["x86_64"]
    model_layer = lam.get_layer_version(LayerName="model-layer", VersionNumber=1)
    kind, fields = parse_description(model_layer["Description"])
    assert (kind, fields["name"], fields["version"], fields["scikit-learn"]) == (
        "model",
        "rotten-tomatoes-sentiment",
        "1.0.0",
        "1.7.2",
    )
    assert fields["sha256"] == sha256_file(model_zip(env["tmp"], "1.0.0"))
    assert len(model_layer["Description"]) <= 256

    config = lam.get_function_configuration(FunctionName="stream-inference")
    assert [layer["Arn"] for layer in config["Layers"]] == [deps, model]
    assert (config["Runtime"], config["MemorySize"], config["Timeout"], config["Architectures"]) == (
        "python3.11",
        1024,
        60,
        ["x86_64"],
    )
    assert config["Environment"]["Variables"] == {"RESULTS_TABLE": "stream-inference-results"}
    assert lam.get_alias(FunctionName="stream-inference", Name="live")["FunctionVersion"] == "1"

    alias_arn = config["FunctionArn"] + ":live"
    for source in env["sources"]:
        (mapping,) = lam.list_event_source_mappings(EventSourceArn=source["source_arn"], FunctionName=alias_arn)[
            "EventSourceMappings"
        ]
        assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
        assert mapping["DestinationConfig"]["OnFailure"]["Destination"] == source["on_failure_destination_arn"]
        assert (mapping["BatchSize"], mapping["MaximumBatchingWindowInSeconds"], mapping["ParallelizationFactor"]) == (
            100,
            1,
            1,
        )
        assert (
            mapping["BisectBatchOnFunctionError"],
            mapping["MaximumRetryAttempts"],
            mapping["MaximumRecordAgeInSeconds"],
        ) == (True, 3, 3600)
        assert mapping["StartingPosition"] == "TRIM_HORIZON"
    assert [line["action"] for line in read_history(env["settings"].history.file)] == ["deploy"]


def test_publishing_a_new_model_relinks_publishes_a_version_and_moves_the_alias(env):
    lam = env["clients"].lambda_
    deps, v1 = _deployed(env)

    result = publish_model_layer(env["settings"], model_zip(env["tmp"], "2.0.0"), clients=env["clients"])

    assert result.layer_arn.endswith(":layer:model-layer:2")
    assert _live_layers(lam) == [deps, result.layer_arn]  # deps kept, in place; only the model swapped
    assert [layer["Arn"] for layer in lam.get_function_configuration(FunctionName="stream-inference")["Layers"]] == [
        deps,
        result.layer_arn,
    ]
    assert result.release.version == "2" and result.release.previous_version == "1"
    assert result.release.previous_model_layer_arn == v1
    version = lam.get_function_configuration(FunctionName="stream-inference", Qualifier="2")
    assert parse_description(version["Description"]) == (
        "publish-model-layer",
        {"model": "rotten-tomatoes-sentiment", "version": "2.0.0", "layer": result.layer_arn},
    )
    tags = lam.list_tags(Resource=version["FunctionArn"].rsplit(":", 1)[0])["Tags"]
    assert (
        tags["model-version"] == "2.0.0"
        and tags["model-layer-arn"] == result.layer_arn
        and tags["release-version"] == "2"
    )
    history = read_history(env["settings"].history.file)
    assert history[-1]["action"] == "publish-model-layer" and history[-1]["model_layer_arn"] == result.layer_arn


def test_publishing_the_same_zip_again_reuses_its_version_and_changes_nothing(env):
    _, v1 = _deployed(env)
    lam = Recorder(env["clients"].lambda_)
    result = publish_model_layer(
        env["settings"], model_zip(env["tmp"], "1.0.0"), clients=Clients(lam, env["clients"].s3)
    )
    assert result.reused and result.layer_arn == v1 and not result.release.changed
    assert [c for c in lam.calls if c.startswith(MUTATING)] == []


def test_relink_to_an_older_version_then_rollback_goes_back_and_forth(env):
    lam, s, c = env["clients"].lambda_, env["settings"], env["clients"]
    deps, v1 = _deployed(env)
    v2 = publish_model_layer(s, model_zip(env["tmp"], "2.0.0"), clients=c).layer_arn

    back = relink(s, v1, clients=c)
    assert _live_layers(lam) == [deps, v1]
    assert (back.version, back.previous_version, back.previous_model_layer_arn) == ("3", "2", v2)

    rolled = rollback(s, clients=c)  # the previously live model was v2
    assert _live_layers(lam) == [deps, v2] and rolled.action == "rollback" and rolled.version == "4"
    rollback(s, clients=c)
    assert _live_layers(lam) == [deps, v1]

    again = relink(s, v1, clients=c)  # already live: nothing to do
    assert not again.changed and lam.get_alias(FunctionName="stream-inference", Name="live")["FunctionVersion"] == "5"

    listing = releases(s, clients=c)
    assert [(r["version"], r["model_version"], r["live"]) for r in listing.layers] == [
        (2, "2.0.0", ""),
        (1, "1.0.0", "*"),
    ]
    assert [(r["version"], r["action"], r["model_version"], r["live"]) for r in listing.releases] == [
        ("5", "rollback", "1.0.0", "*"),
        ("4", "rollback", "2.0.0", ""),
        ("3", "relink", "1.0.0", ""),
        ("2", "publish-model-layer", "2.0.0", ""),
        ("1", "deploy", "1.0.0", ""),
    ]
    assert listing.unfinished == []
    table = format_listing(listing, s)
    assert "rotten-tomatoes-sentiment" in table and table.splitlines()[2].startswith("*")
    assert "no unfinished release" in table


@pytest.mark.parametrize("release", ["relink", "publish"])
def test_a_release_over_code_a_deploy_left_unreleased_is_refused_and_changes_nothing(env, release):
    # $LATEST holds new code that no version runs (a deploy cut short, or a change by hand): releasing a
    # model on top of it would ship that code unseen, so every release refuses and changes nothing.
    lam, s, c = env["clients"].lambda_, env["settings"], env["clients"]
    _, v1 = _deployed(env)
    publish_model_layer(s, model_zip(env["tmp"], "2.0.0"), clients=c)
    other_code = write_zip(env["tmp"] / "other-function.zip", {"lambda_function.py": b"def handler(e, c): pass\n"})
    lam.update_function_code(FunctionName="stream-inference", ZipFile=other_code.read_bytes())
    lam.get_waiter("function_updated_v2").wait(FunctionName="stream-inference")
    before = _state(lam)
    with pytest.raises(ReleaseError, match="(?s)nothing was changed.*CodeSha256.*`make deploy`"):
        if release == "relink":
            relink(s, v1, clients=c)
        else:
            publish_model_layer(s, model_zip(env["tmp"], "3.0.0"), clients=c)
    after = _state(lam)
    assert (after["alias"], after["versions"], after["config"]) == (
        before["alias"],
        before["versions"],
        before["config"],
    )


def test_rollback_without_an_earlier_model_says_what_to_do(env):
    _deployed(env)
    with pytest.raises(ReleaseError, match="relink explicitly"):
        rollback(env["settings"], clients=env["clients"])


# --------------------------------------------------------------------------- refusals leave the function alone


def _publish_model_variant(env, *, runtime="python3.11", arch="x86_64", sklearn="1.7.2") -> str:
    zip_path = model_zip(env["tmp"], "9.9.9", sklearn=sklearn)
    manifest = verify_model_zip(zip_path)
    description = model_description(manifest, sha256_file(zip_path))
    return publish_layer(zip_path, "model-layer", description, runtime, arch, None, clients=env["clients"])[
        "LayerVersionArn"
    ]


@pytest.mark.parametrize(
    ("variant", "message"),
    [
        ({"runtime": "python3.12"}, "compatible runtimes \\['python3.12'\\] do not include the function's python3.11"),
        ({"arch": "arm64"}, "compatible architectures \\['arm64'\\] do not include the function's x86_64"),
        ({"sklearn": "1.6.1"}, "scikit-learn: model built with 1.6.1, dependencies layer has 1.7.2"),
    ],
)
def test_relink_to_an_incompatible_layer_is_refused_and_changes_nothing(env, variant, message):
    lam = env["clients"].lambda_
    _deployed(env)
    bad = _publish_model_variant(env, **variant)
    before = _state(lam)
    with pytest.raises(ReleaseError, match=message):
        relink(env["settings"], bad, clients=env["clients"])
    assert _state(lam) == before


@pytest.mark.parametrize(
    ("arn", "message"),
    [
        (f"arn:aws:lambda:{REGION}:{ACCOUNT}:layer:model-layer:99", "does not exist"),
        (f"arn:aws:lambda:{REGION}:{ACCOUNT}:layer:model-layer", "not a layer version ARN"),
        ("model-layer:1", "not a layer version ARN"),
        (f"arn:aws:lambda:{REGION}:{ACCOUNT}:layer:deps-layer:1", "not the model layer 'model-layer'"),
        (f"arn:aws:lambda:eu-west-1:{ACCOUNT}:layer:model-layer:1", "is in eu-west-1"),
    ],
)
def test_relink_to_a_missing_or_wrong_arn_is_refused_and_changes_nothing(env, arn, message):
    lam = env["clients"].lambda_
    _deployed(env)
    before = _state(lam)
    with pytest.raises(ReleaseError, match=message):
        relink(env["settings"], arn, clients=env["clients"])
    assert _state(lam) == before


def test_a_model_zip_whose_artifact_does_not_match_its_manifest_is_not_published(env):
    with pytest.raises(ReleaseError, match="classifier.joblib has sha256 .* but the manifest says"):
        publish_model_layer(env["settings"], model_zip(env["tmp"], "1.0.0", tamper=True), clients=env["clients"])
    assert env["clients"].lambda_.list_layer_versions(LayerName="model-layer")["LayerVersions"] == []


def test_a_model_zip_with_files_its_manifest_does_not_list_is_not_published(env):
    """A python/ folder in a model layer is on the function's import path: code that runs unverified."""
    smuggled = model_zip(env["tmp"], "1.0.0", extra={"python/numpy/__init__.py": b"import os"})
    with pytest.raises(ReleaseError, match=r"1 file\(s\) its manifest does not list \(python/numpy/__init__.py\)"):
        publish_model_layer(env["settings"], smuggled, clients=env["clients"])
    assert env["clients"].lambda_.list_layer_versions(LayerName="model-layer")["LayerVersions"] == []


def test_a_model_for_another_scikit_learn_is_refused_before_publishing(env):
    _deployed(env)
    with pytest.raises(ReleaseError, match="scikit-learn: model built with 1.5.0, dependencies layer has 1.7.2"):
        publish_model_layer(env["settings"], model_zip(env["tmp"], "3.0.0", sklearn="1.5.0"), clients=env["clients"])
    assert len(env["clients"].lambda_.list_layer_versions(LayerName="model-layer")["LayerVersions"]) == 1


def test_a_deps_layer_built_for_another_python_or_cpu_is_refused(env):
    s, c = env["settings"], env["clients"]
    with pytest.raises(ReleaseError, match="Python 3.12.*RUNTIME=python3.11"):
        publish_deps_layer(s, deps_zip(env["tmp"], tag="cpython-312-x86_64"), clients=c)
    with pytest.raises(ReleaseError, match="arm64 extension modules.*ARCH=x86_64"):
        publish_deps_layer(s, deps_zip(env["tmp"], tag="cpython-311-aarch64"), clients=c)


# --------------------------------------------------------------------------- S3 path, retries, idempotency


def test_a_layer_over_the_direct_upload_limit_goes_through_s3(env, monkeypatch):
    import boto3

    monkeypatch.setattr("release.upload.DIRECT_UPLOAD_LIMIT", 100)
    zip_path = model_zip(env["tmp"], "1.0.0")
    calls = Recorder(env["clients"].s3)
    clients = Clients(env["clients"].lambda_, calls)
    result = publish_model_layer(env["settings"], zip_path, clients=clients)

    assert calls.calls == ["upload_file"]
    key = f"layers/model-layer/{sha256_file(zip_path)}.zip"
    body = boto3.client("s3", region_name=REGION).get_object(Bucket="artifacts-bucket", Key=key)["Body"].read()
    assert body == zip_path.read_bytes()
    layer = env["clients"].lambda_.get_layer_version(LayerName="model-layer", VersionNumber=1)
    assert layer["LayerVersionArn"] == result.layer_arn and layer["Content"]["CodeSha256"] == code_sha256(zip_path)

    no_bucket = _write_toml(env["tmp"] / "nobucket.toml", env["sources"], bucket='""')
    with pytest.raises(
        ReleaseError, match=r"over Lambda's 100-byte direct upload limit; set \[layers\] artifact_bucket"
    ):
        publish_model_layer(load_settings(no_bucket), model_zip(env["tmp"], "2.0.0"), clients=clients)


def test_an_update_that_meets_an_update_in_progress_waits_and_retries(env, monkeypatch):
    _deployed(env)
    v2 = publish_layer(
        model_zip(env["tmp"], "2.0.0"), "model-layer",
        model_description(verify_model_zip(model_zip(env["tmp"], "2.0.0")), "0" * 64),
        "python3.11", "x86_64", None, clients=env["clients"],
    )["LayerVersionArn"]  # fmt: skip
    sleeps: list[float] = []
    monkeypatch.setattr("release.aws._sleep", sleeps.append)
    lam = Recorder(env["clients"].lambda_, fail={"update_function_configuration": 2})

    result = relink(env["settings"], v2, clients=Clients(lam, env["clients"].s3))

    assert lam.calls.count("update_function_configuration") == 3 and sleeps == [2.0, 4.0]
    assert result.version == "2" and _live_layers(env["clients"].lambda_)[-1] == v2


def test_retries_are_bounded(env, monkeypatch):
    deps, v1 = _deployed(env)
    v2 = publish_model_layer(env["settings"], model_zip(env["tmp"], "2.0.0"), clients=env["clients"]).layer_arn
    lam = Recorder(env["clients"].lambda_, fail={"update_function_configuration": 99})
    before = _state(env["clients"].lambda_)
    with pytest.raises(ReleaseError, match="still busy with another update after 5 tries"):
        relink(env["settings"], v1, clients=Clients(lam, env["clients"].s3))
    assert lam.calls.count("update_function_configuration") == 5
    after = _state(env["clients"].lambda_)
    assert after["tags"].pop("release-pending") == "relink"  # the release is on record as unfinished
    assert {k: v for k, v in after["tags"].items() if not k.startswith("release-pending")} == before["tags"]
    assert {**after, "tags": before["tags"]} == before and _live_layers(env["clients"].lambda_) == [deps, v2]
    abort(env["settings"], env["clients"])
    assert _state(env["clients"].lambda_) == before


def test_deploy_twice_changes_nothing_the_second_time(env):
    _deployed(env)
    lam = Recorder(env["clients"].lambda_)
    result = deploy(env["settings"], env["function_zip"], clients=Clients(lam, Recorder(env["clients"].s3)))
    assert not result.changed and result.warnings == []
    assert [c for c in lam.calls if c.startswith(MUTATING)] == []
    assert len(read_history(env["settings"].history.file)) == 1


def test_deploy_applies_only_what_changed(env):
    lam = env["clients"].lambda_
    deps, model = _deployed(env)
    v2 = publish_model_layer(env["settings"], model_zip(env["tmp"], "2.0.0"), clients=env["clients"]).layer_arn
    sources = [env["sources"][0] | {"batch_size": 500}, env["sources"][1]]
    settings = load_settings(_write_toml(env["tmp"] / "bigger.toml", sources, memory_mb=2048))
    recorder = Recorder(lam)

    result = deploy(settings, env["function_zip"], clients=Clients(recorder, env["clients"].s3))

    assert [c for c in recorder.calls if c.startswith(MUTATING)] == [
        "tag_resource",  # the release is pending ...
        "update_function_configuration",
        "publish_version",
        "update_alias",
        "tag_resource",  # ... released
        "untag_resource",
        "update_event_source_mapping",
    ]
    assert any("MemorySize: 1024 -> 2048" in change for change in result.function_changes)
    live = lam.get_function_configuration(FunctionName="stream-inference", Qualifier="live")
    assert live["MemorySize"] == 2048 and [layer["Arn"] for layer in live["Layers"]] == [
        deps,
        v2,
    ]  # the release is kept
    (mapping,) = lam.list_event_source_mappings(EventSourceArn=sources[0]["source_arn"])["EventSourceMappings"]
    assert mapping["BatchSize"] == 500


def test_deploy_refuses_layers_that_do_not_fit(env):
    s, c = env["settings"], env["clients"]
    deps = publish_deps_layer(s, env["deps_zip"], clients=c).layer_arn
    with pytest.raises(ReleaseError, match="no model-layer layer published yet"):
        deploy(s, env["function_zip"], clients=c)
    model = _publish_model_variant(env, sklearn="1.6.1")
    with pytest.raises(ReleaseError, match="scikit-learn: model built with 1.6.1, dependencies layer has 1.7.2"):
        deploy(s, env["function_zip"], deps, model, clients=c)
    with pytest.raises(ReleaseError, match="not the model layer"):
        deploy(s, env["function_zip"], deps, deps, clients=c)
    assert get_configuration(c.lambda_, "stream-inference") is None


def test_cli_prints_releases_and_refuses_a_bad_arn(env, capsys):
    _deployed(env)
    argv = ["--settings", str(env["toml"])]
    assert main([*argv, "releases"], clients=env["clients"]) == 0
    assert "*" in capsys.readouterr().out
    assert main([*argv, "relink", "--layer-arn", "nope"], clients=env["clients"]) == 2
    assert "not a layer version ARN" in capsys.readouterr().err
    assert main([*argv, "deploy", "--function-zip", str(env["function_zip"])], clients=env["clients"]) == 0
    assert "up to date; nothing changed" in capsys.readouterr().out


# --------------------------------------------------------------------------- pure parts


def test_descriptions_round_trip_and_respect_the_limit():
    text = format_description("model", {"name": "my model=x", "version": "1"})
    assert text == "model name=my%20model%3Dx version=1"
    assert parse_description(text) == ("model", {"name": "my model=x", "version": "1"})
    with pytest.raises(ReleaseError, match="over Lambda's 256"):
        format_description("model", {"name": "x" * 300})


def test_layer_arn_parsing_and_layer_replacement():
    arn = LayerArn.parse(f"arn:aws:lambda:{REGION}:{ACCOUNT}:layer:model-layer:7")
    assert (arn.name, arn.version, arn.layer_arn) == (
        "model-layer",
        7,
        f"arn:aws:lambda:{REGION}:{ACCOUNT}:layer:model-layer",
    )
    deps, old, ext = (f"arn:aws:lambda:{REGION}:{ACCOUNT}:layer:{n}" for n in ("deps:1", "model-layer:3", "ext:2"))
    assert replace_layers([deps, old, ext], {"model-layer": str(arn)}) == [deps, str(arn), ext]
    assert replace_layers([ext], {"deps": deps, "model-layer": str(arn)}) == [ext, deps, str(arn)]


# --------------------------------------------------------------------------- settings


def test_the_repository_deploy_toml_is_valid(monkeypatch):
    monkeypatch.delenv("DEPLOY_SETTINGS", raising=False)
    settings = load_settings()
    assert settings.function.runtime == "python3.12" and settings.function.alias == "live"
    assert settings.event_sources and settings.history.file.name == "releases.jsonl"


def test_deploy_settings_env_var_overrides_the_path(tmp_path, monkeypatch):
    path = _write_toml(tmp_path / "other.toml", [], memory_mb=512)
    monkeypatch.setenv("DEPLOY_SETTINGS", str(path))
    assert load_settings().function.memory_mb == 512
    monkeypatch.setenv("DEPLOY_SETTINGS", str(tmp_path / "missing.toml"))
    with pytest.raises(SettingsError, match="no such settings file"):
        load_settings()


QUEUE = f"arn:aws:sqs:{REGION}:{ACCOUNT}:failures"
STREAM = f"arn:aws:kinesis:{REGION}:{ACCOUNT}:stream/reviews"


@pytest.mark.parametrize(
    ("table", "key", "value", "message"),
    [
        ("function", "memory_mb", 64, r"\[function\] memory_mb = 64 is out of range; allowed: 128-10240 MB"),
        ("function", "timeout_s", 901, r"timeout_s = 901 is out of range; allowed: 1-900 seconds"),
        ("function", "architecture", "x86", r"architecture = 'x86' is not allowed; use one of: x86_64, arm64"),
        ("function", "runtime", "python2.7", r"runtime = 'python2.7' is not allowed; use one of: python3.10"),
        ("function", "memroy_mb", 512, r"unknown key\(s\) memroy_mb"),
        ("function", "role_arn", "my-role", r"role_arn = 'my-role' is not an IAM role ARN"),
        ("source", "batch_size", 0, r"#1 batch_size = 0 is out of range; allowed: 1-10000"),
        ("source", "batch_size", "100", r"batch_size = '100' must be a whole number"),
        (
            "source",
            "maximum_batching_window_s",
            301,
            r"maximum_batching_window_s = 301 is out of range; allowed: 0-300",
        ),
        ("source", "parallelization_factor", 11, r"parallelization_factor = 11 is out of range; allowed: 1-10"),
        (
            "source",
            "starting_position",
            "EARLIEST",
            r"starting_position = 'EARLIEST' is not allowed; use one of: TRIM_HORIZON, LATEST",
        ),
        ("source", "maximum_retry_attempts", -2, r"maximum_retry_attempts = -2 is out of range; allowed: -1-10000"),
        (
            "source",
            "maximum_record_age_s",
            30,
            r"maximum_record_age_s = 30 is out of range; allowed: 60-604800 seconds, or -1",
        ),
        (
            "source",
            "bisect_batch_on_function_error",
            "yes",
            r"bisect_batch_on_function_error = 'yes' must be true or false",
        ),
        ("source", "type", "sqs", r"type = 'sqs' is not allowed; use one of: kinesis, dynamodb"),
        (
            "source",
            "source_arn",
            "arn:aws:sqs:us-east-1:123456789012:q",
            r"source_arn = .* is not a kinesis stream ARN",
        ),
        (
            "source",
            "on_failure_destination_arn",
            "",
            r"on_failure_destination_arn = '' is not an SQS queue, SNS topic or S3",
        ),
    ],
)
def test_settings_errors_name_the_key_and_what_is_allowed(table, key, value, message):
    data = {
        "function": {"name": "f", "role_arn": ROLE},
        "layers": {"model_name": "m", "dependencies_name": "d"},
        "event_sources": [{"type": "kinesis", "source_arn": STREAM, "on_failure_destination_arn": QUEUE}],
    }
    (data["function"] if table == "function" else data["event_sources"][0])[key] = value
    with pytest.raises(SettingsError, match=message):
        parse_settings(data, Path("deploy.toml"))


def test_settings_defaults_and_record_age_minus_one():
    data = {
        "function": {"name": "f", "role_arn": ROLE},
        "layers": {"model_name": "m", "dependencies_name": "d"},
        "event_sources": [
            {"type": "kinesis", "source_arn": STREAM, "on_failure_destination_arn": QUEUE, "maximum_record_age_s": -1}
        ],
    }
    settings = parse_settings(data, Path("/x/deploy.toml"))
    assert (settings.function.memory_mb, settings.function.timeout_s, settings.function.architecture) == (
        1024,
        60,
        "x86_64",
    )
    assert settings.event_sources[0].maximum_record_age_s == -1 and settings.event_sources[0].batch_size == 100
    assert settings.history.file == Path("/x/build/releases.jsonl")
    data["layers"]["dependencies_name"] = "m"
    with pytest.raises(SettingsError, match="model_name and dependencies_name must differ"):
        parse_settings(data, Path("deploy.toml"))


def test_a_truncated_zip_is_named_by_the_layer_checks_not_a_bare_bad_zip_file(tmp_path):
    from layers.checks import run_checks

    good = write_zip(tmp_path / "f.zip", {"lambda_function.py": b"x = 1\n"})
    truncated = tmp_path / "deps-layer.zip"
    truncated.write_bytes(deps_zip(tmp_path).read_bytes()[:200])
    (finding,) = run_checks(function_zip=good, deps_zip=truncated, model_zip=good)
    assert (
        not finding.ok and f"not a readable zip (truncated or corrupt): {truncated} (make deps-layer" in finding.detail
    )


def test_an_interrupted_relink_is_reported_refused_elsewhere_finished_by_its_rerun(env, capsys):
    """In process (the HTTP suite is tests/test_release_faults.py): the alias, not $LATEST, is what deploy keeps."""
    lam, s, c = env["clients"].lambda_, env["settings"], env["clients"]
    deps, v1 = _deployed(env)
    v2 = publish_model_layer(s, model_zip(env["tmp"], "2.0.0"), clients=c).layer_arn

    class Dead(Exception):
        pass

    def publish_version(**kwargs):
        raise Dead("connection lost")

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(lam, "publish_version", publish_version)
        with pytest.raises(Dead):
            relink(s, v1, clients=c)
    assert _live_layers(lam) == [deps, v2]
    argv = ["--settings", str(env["toml"])]
    assert main([*argv, "deploy", "--function-zip", str(env["function_zip"])], clients=c) == 2
    err = capsys.readouterr().err
    assert "unfinished relink" in err and f"make relink LAYER_ARN={v1}" in err and _live_layers(lam) == [deps, v2]
    assert main([*argv, "releases"], clients=c) == 0
    assert "$LATEST changed, not published" in capsys.readouterr().out
    assert relink(s, v1, clients=c).changed and _live_layers(lam) == [deps, v1]
    assert main([*argv, "deploy", "--function-zip", str(env["function_zip"])], clients=c) == 0
    assert _live_layers(lam) == [deps, v1]


def test_create_function_waits_for_a_new_role_to_reach_lambda_and_no_longer():
    """IAM propagation: "cannot be assumed" is retried, with the delays printed; other errors are not."""
    lam = boto3.client("lambda", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
    request = {
        "FunctionName": "fn",
        "Role": "arn:aws:iam::123456789012:role/new-role",
        "Code": {"ZipFile": b"zip"},
        "Runtime": "python3.12",
        "Handler": "lambda_function.lambda_handler",
    }
    assumed = "The role defined for the function cannot be assumed by Lambda."
    slept: list[float] = []
    with Stubber(lam) as stub:
        for _ in range(2):
            stub.add_client_error(
                "create_function", "InvalidParameterValueException", assumed, 400, expected_params=request
            )
        stub.add_response("create_function", {"FunctionArn": "arn:aws:lambda:us-east-1:123456789012:function:fn"})
        created = create_function_when_role_ready(lam, sleep=slept.append, **request)
        stub.assert_no_pending_responses()
    assert created["FunctionArn"].endswith(":function:fn")
    assert slept == list(ROLE_PROPAGATION_DELAYS_S[:2])

    with Stubber(lam) as stub:
        for _ in range(len(ROLE_PROPAGATION_DELAYS_S) + 1):
            stub.add_client_error(
                "create_function", "InvalidParameterValueException", assumed, 400, expected_params=request
            )
        with pytest.raises(ClientError, match="cannot be assumed"):
            create_function_when_role_ready(lam, sleep=lambda s: None, **request)

    with Stubber(lam) as stub:
        stub.add_client_error("create_function", "InvalidParameterValueException", "Runtime is not supported", 400)
        with pytest.raises(ClientError, match="Runtime"):
            create_function_when_role_ready(lam, sleep=slept.append, **request)
    assert len(slept) == 2
