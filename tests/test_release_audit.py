"""The audit's release fixes, against moto: alias weights a release ends, stray event source mappings
``make deploy`` refuses beside its own, the inline upload sized by its base64 request, and Kinesis
enhanced fan-out consumer ARNs in the settings, the template and the role (release).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from release.cli import main
from release.deploy import deploy
from release.errors import ReleaseError
from release.listing import format_listing, releases
from release.publish import publish_deps_layer, publish_model_layer
from release.relink import relink
from release.settings import SettingsError, load_settings
from release.upload import (
    DIRECT_UPLOAD_LIMIT,
    REQUEST_LIMIT_BYTES,
    REQUEST_MARGIN_BYTES,
    base64_size,
    code_location,
)
from tests import test_release
from tests.test_release import model_zip
from tests.test_template import Case, lint

# The release tests' fixtures: moto, its clients, and a deployable environment (role, streams, queue, zips).
aws, clients, env = test_release.aws, test_release.clients, test_release.env

FN = "stream-inference"


def deployed(env: dict[str, Any]) -> dict[str, str]:
    """Both layers published, the function deployed with model 1.0.0, then 2.0.0 released (version 2 live)."""
    s, c = env["settings"], env["clients"]
    publish_deps_layer(s, env["deps_zip"], clients=c)
    v1 = publish_model_layer(s, model_zip(env["tmp"], "1.0.0"), clients=c).layer_arn
    deploy(s, env["function_zip"], clients=c)
    v2 = publish_model_layer(s, model_zip(env["tmp"], "2.0.0"), clients=c).layer_arn
    return {"v1": v1, "v2": v2}


def _split(lam: Any, weights: dict[str, float]) -> None:
    """Weights set outside the release commands (by hand, or CodeDeploy for a stack)."""
    lam.update_alias(FunctionName=FN, Name="live", RoutingConfig={"AdditionalVersionWeights": weights})


def _routing(lam: Any) -> dict[str, float]:
    return (lam.get_alias(FunctionName=FN, Name="live").get("RoutingConfig") or {}).get("AdditionalVersionWeights", {})


# --------------------------------------------------------------------------- (b) alias weights


@pytest.mark.aws
def test_a_release_ends_a_split_it_finds_and_says_so(env, capsys):
    lam = env["clients"].lambda_
    layers = deployed(env)
    _split(lam, {"1": 0.25})

    status = main(["--settings", str(env["toml"]), "publish-model-layer", "--zip", str(model_zip(env["tmp"], "3.0.0"))],
                  clients=env["clients"])  # fmt: skip

    out = capsys.readouterr().out
    assert status == 0
    alias = lam.get_alias(FunctionName=FN, Name="live")
    assert alias["FunctionVersion"] == "3" and _routing(lam) == {}
    assert "also sent invocations to version 1: 25% (alias weights, RoutingConfig); cleared" in out
    # Relinking to what the alias already serves, with a split, ends the split and changes nothing else.
    _split(lam, {"2": 0.5})
    served = relink(env["settings"], lam.get_function_configuration(FunctionName=FN, Qualifier="3")["Layers"][1]["Arn"],
                    clients=env["clients"])  # fmt: skip
    assert not served.changed and served.ended_split == {"2": 0.5}
    assert _routing(lam) == {} and lam.get_alias(FunctionName=FN, Name="live")["FunctionVersion"] == "3"
    assert layers["v2"] != layers["v1"]


@pytest.mark.aws
def test_make_releases_shows_the_weights(env):
    lam = env["clients"].lambda_
    deployed(env)
    _split(lam, {"1": 0.1})
    text = format_listing(releases(env["settings"], clients=env["clients"]), env["settings"])
    assert "live splits invocations by weight (RoutingConfig): version 2 90%, version 1 10%" in text
    rows = {line.split()[1]: line.split()[0] for line in text.splitlines()[3:5]}
    assert rows == {"2": "*90%", "1": "10%"}


# --------------------------------------------------------------------------- (c) other mappings


@pytest.mark.aws
@pytest.mark.parametrize("qualifier", ["", "arn", ":1", ":other"], ids=["name", "unqualified-arn", "version", "alias"])
def test_deploy_refuses_a_second_mapping_of_a_stream_and_changes_nothing(env, qualifier):
    lam = env["clients"].lambda_
    deployed(env)
    lam.create_alias(FunctionName=FN, Name="other", FunctionVersion="1")
    arn = lam.get_function_configuration(FunctionName=FN)["FunctionArn"]
    target = arn if qualifier == "arn" else FN + qualifier
    stream = env["sources"][0]["source_arn"]
    # The managed mapping is gone (deleted by hand): before the fix deploy made a second one beside this.
    for mapping in lam.list_event_source_mappings(EventSourceArn=stream)["EventSourceMappings"]:
        lam.delete_event_source_mapping(UUID=mapping["UUID"])
    stray = lam.create_event_source_mapping(EventSourceArn=stream, FunctionName=target, StartingPosition="LATEST")
    before = sorted(m["UUID"] for m in lam.list_event_source_mappings()["EventSourceMappings"])

    with pytest.raises(ReleaseError) as refused:
        deploy(env["settings"], env["function_zip"], clients=env["clients"])

    message = str(refused.value)
    assert f"mapping {stray['UUID']}" in message and stream in message
    assert "every record would be processed twice" in message and "delete-event-source-mapping" in message
    assert "nothing was changed" in message
    assert sorted(m["UUID"] for m in lam.list_event_source_mappings()["EventSourceMappings"]) == before
    # Once it is deleted, deploy makes the managed mapping again.
    lam.delete_event_source_mapping(UUID=stray["UUID"])
    result = deploy(env["settings"], env["function_zip"], clients=env["clients"])
    assert [c for c in result.mapping_changes if c.startswith("created mapping")] != []


@pytest.mark.aws
def test_mappings_of_other_functions_on_the_same_stream_are_not_ours(env):
    lam = env["clients"].lambda_
    deployed(env)
    role = lam.get_function_configuration(FunctionName=FN)["Role"]
    lam.create_function(FunctionName="archiver", Runtime="python3.12", Role=role, Handler="a.h",
                        Code={"ZipFile": env["function_zip"].read_bytes()})  # fmt: skip
    stream = env["sources"][0]["source_arn"]
    lam.create_event_source_mapping(EventSourceArn=stream, FunctionName="archiver", StartingPosition="LATEST")
    result = deploy(env["settings"], env["function_zip"], clients=env["clients"])
    assert not result.changed


# --------------------------------------------------------------------------- (d) the inline upload


class _S3:
    """Records uploads (stands in for an S3 client: ``upload_file`` only)."""

    def __init__(self) -> None:
        self.uploads: list[tuple[str, str]] = []

    def upload_file(self, path: str, bucket: str, key: str, Callback: Any = None) -> None:  # noqa: N803 - boto3's
        self.uploads.append((bucket, key))


def test_the_inline_limit_is_the_base64_request_with_margin():
    assert base64_size(3) == 4 and base64_size(4) == 8 and base64_size(0) == 0
    assert base64_size(DIRECT_UPLOAD_LIMIT) + REQUEST_MARGIN_BYTES <= REQUEST_LIMIT_BYTES
    assert base64_size(DIRECT_UPLOAD_LIMIT + 3) + REQUEST_MARGIN_BYTES > REQUEST_LIMIT_BYTES
    assert DIRECT_UPLOAD_LIMIT < 50 * 1024 * 1024 - 1024 * 1024  # well before 50 MiB


def test_a_zip_just_under_50_mib_goes_through_s3(tmp_path: Path):
    big = tmp_path / "layer.zip"
    with big.open("wb") as f:  # sparse: 52,000,000 bytes, base64 69,333,336: refused inline by Lambda
        f.truncate(52_000_000)
    s3 = _S3()
    assert code_location(big, "bucket", "layers/x.zip", s3, "layer zip") == {
        "S3Bucket": "bucket",
        "S3Key": "layers/x.zip",
    }
    assert s3.uploads == [("bucket", "layers/x.zip")]
    with pytest.raises(ReleaseError, match=r"base64-encoded, 69,333,336 bytes, in a request Lambda caps at 69,905,067"):
        code_location(big, None, "layers/x.zip", s3, "layer zip")
    small = tmp_path / "small.zip"
    small.write_bytes(b"PK")
    assert code_location(small, "bucket", "k", s3, "layer zip") == {"ZipFile": b"PK"}


# --------------------------------------------------------------------------- (e) consumer ARNs

CONSUMER = "arn:aws:kinesis:us-east-1:123456789012:stream/reviews/consumer/scorer:1764748800"


def _with_source(tmp_path: Path, source_arn: str, *extra: str) -> Path:
    text = (Path(__file__).parents[1] / "deploy.toml").read_text()
    text = text.replace('"arn:aws:kinesis:us-east-1:123456789012:stream/reviews"', f'"{source_arn}"', 1)
    path = tmp_path / "deploy.toml"
    path.write_text(text + "".join(extra))
    return path


def test_a_consumer_arn_is_a_kinesis_source(tmp_path: Path):
    source = load_settings(_with_source(tmp_path, CONSUMER)).event_sources[0]
    assert source.consumer_arn == CONSUMER
    assert source.stream_arn == "arn:aws:kinesis:us-east-1:123456789012:stream/reviews"
    with pytest.raises(SettingsError, match="is not a kinesis stream ARN"):
        load_settings(_with_source(tmp_path, CONSUMER.rsplit(":", 1)[0]))  # a consumer ARN ends in :N
    twice = (
        '\n[[event_sources]]\ntype = "kinesis"\nsource_arn = "arn:aws:kinesis:us-east-1:123456789012:stream/reviews"\n'
    )
    twice += 'on_failure_destination_arn = "arn:aws:sqs:us-east-1:123456789012:stream-inference-failures"\n'
    with pytest.raises(SettingsError, match="lists arn:aws:kinesis:us-east-1:123456789012:stream/reviews twice"):
        load_settings(_with_source(tmp_path, CONSUMER, twice))


def test_the_template_reads_a_consumer_with_the_grants_it_needs(tmp_path: Path):
    case = Case(load_settings(_with_source(tmp_path, CONSUMER)))
    assert lint(case.text, case.region) == []
    (mapping,) = case.of_type("AWS::Lambda::EventSourceMapping").values()
    assert mapping["Properties"]["EventSourceArn"] == CONSUMER
    grants: dict[str, set[str]] = {}
    for policy in case.resources["FunctionRole"]["Properties"]["Policies"]:
        for statement in policy["PolicyDocument"]["Statement"]:
            for action in statement["Action"]:
                grants.setdefault(action, set()).update(case.resolve(statement["Resource"]))
    stream = "arn:aws:kinesis:us-east-1:123456789012:stream/reviews"
    assert grants["kinesis:SubscribeToShard"] == {CONSUMER} == grants["kinesis:DescribeStreamConsumer"]
    assert grants["kinesis:GetRecords"] == {stream} == grants["kinesis:ListShards"]


# --------------------------------------------------------------------------- the stack's canary


def test_the_stack_deploys_new_versions_as_a_canary_stopped_by_the_alarms():
    case = Case(load_settings(Path(__file__).parents[1] / "deploy.toml"))
    preference = case.sam["Resources"]["Function"]["Properties"]["DeploymentPreference"]
    assert preference["Type"] == "Canary10Percent30Minutes"
    assert preference["Alarms"] == [{"Ref": "IteratorAgeAlarm"}, {"Ref": "ErrorsAlarm"}, {"Ref": "QuarantineAlarm"}]
    (group,) = case.of_type("AWS::CodeDeploy::DeploymentGroup").values()
    assert group["Properties"]["ServiceRoleArn"] == {"Fn::GetAtt": ["DeploymentRole", "Arn"]}
    alarms = group["Properties"]["AlarmConfiguration"]
    assert alarms["Enabled"] is True and len(alarms["Alarms"]) == 3
    statements = case.resources["DeploymentRole"]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"]
    grants = {action: case.resolve(s["Resource"]) for s in statements for action in s["Action"]}
    function = "arn:aws:lambda:us-east-1:123456789012:function:stream-inference"
    assert grants["lambda:UpdateAlias"] == [function, f"{function}:live"]
    assert grants["cloudwatch:DescribeAlarms"] == [
        "<IteratorAgeAlarm.Arn>",
        "<ErrorsAlarm.Arn>",
        "<QuarantineAlarm.Arn>",
    ]
