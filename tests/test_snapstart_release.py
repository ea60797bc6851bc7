"""SnapStart in releases: the setting, what ``make deploy`` sends, and every release waiting for ``Active``.

moto reports every published version ``State: Active`` at once and keeps no SnapStart setting
(it answers ``{"ApplyOn": "None", "OptimizationStatus": "Off"}`` whatever was sent), so the
tests make Lambda's answers what a SnapStart version goes through (``Pending`` while its
snapshot is taken, then ``Active`` or ``Failed``) with botocore's public event hooks on the
client: ``before-parameter-build`` to see what is asked and ``after-call`` to set the
``State`` in the parsed answer. Everything else is moto.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import boto3
import pytest

from release.aws import Clients
from release.deploy import deploy
from release.errors import ReleaseError
from release.publish import publish_deps_layer, publish_model_layer
from release.relink import relink, rollback
from release.settings import SettingsError, load_settings
from tests.helpers import fake_deps_zip, fake_model_zip, write_zip

pytestmark = pytest.mark.aws

REGION = "us-east-1"
ROLE = "arn:aws:iam::123456789012:role/stream-inference-role"


def _toml(
    path: Path, stream_arn: str, queue_arn: str, runtime: str = "python3.12", snap_start: str = "", storage: int = 0
) -> Path:
    lines = [
        "[function]",
        'name = "stream-inference"',
        f'runtime = "{runtime}"',
        f'role_arn = "{ROLE}"',
        *([f'snap_start = "{snap_start}"'] if snap_start else []),
        *([f"ephemeral_storage_mb = {storage}"] if storage else []),
        "[layers]",
        'model_name = "model-layer"',
        'dependencies_name = "deps-layer"',
        "[history]",
        'file = "history/releases.jsonl"',
        "[[event_sources]]",
        'type = "kinesis"',
        f"source_arn = {json.dumps(stream_arn)}",
        f"on_failure_destination_arn = {json.dumps(queue_arn)}",
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


class LambdaStates:
    """Makes the lambda client report the states a SnapStart version goes through; records the alias moves.

    ``pending`` reads of a newly published version answer ``Pending``, then every read answers
    ``final`` (``Active``, or ``Failed`` with a reason). ``timeline`` lists ``("read", version,
    state)`` and ``("alias", version)`` in the order they happened.
    """

    def __init__(self, lam: Any, pending: int = 2, final: str = "Active") -> None:
        self.pending, self.final = pending, final
        self.timeline: list[tuple[str, ...]] = []
        self.created: dict[str, Any] = {}
        self._qualifier: str | None = None
        self._published: set[str] = set()
        events = lam.meta.events
        events.register("before-parameter-build.lambda.GetFunctionConfiguration", self._asked)
        events.register("after-call.lambda.GetFunctionConfiguration", self._answer)
        events.register("after-call.lambda.PublishVersion", self._publish)
        for operation in ("UpdateAlias", "CreateAlias"):
            events.register(f"before-parameter-build.lambda.{operation}", self._alias)
        for operation in ("CreateFunction", "UpdateFunctionConfiguration"):
            events.register(f"before-parameter-build.lambda.{operation}", self._configured)

    def _asked(self, params: dict[str, Any], **_: Any) -> None:
        self._qualifier = params.get("Qualifier")

    def _publish(self, parsed: dict[str, Any], **_: Any) -> None:
        self._published.add(str(parsed["Version"]))

    def _answer(self, parsed: dict[str, Any], **_: Any) -> None:
        version = self._qualifier
        if version in self._published and "State" in parsed:
            if self.pending > 0:
                self.pending -= 1
                parsed["State"] = "Pending"
            else:
                parsed["State"] = self.final
                if self.final == "Failed":
                    parsed["StateReason"] = "the init raised while the snapshot was taken"
            self.timeline.append(("read", version, parsed["State"]))

    def _alias(self, params: dict[str, Any], **_: Any) -> None:
        self.timeline.append(("alias", str(params["FunctionVersion"])))

    def _configured(self, params: dict[str, Any], model: Any = None, **_: Any) -> None:
        self.created.setdefault(params["FunctionName"], []).append(params.get("SnapStart"))


def assert_alias_moved_only_to_active_versions(timeline: list[tuple[str, ...]]) -> None:
    moves = [entry for entry in timeline if entry[0] == "alias"]
    assert moves, "no alias move was seen"
    for n, entry in enumerate(timeline):
        if entry[0] == "alias":
            reads = [e for e in timeline[:n] if e[0] == "read" and e[1] == entry[1]]
            assert reads and reads[-1][2] == "Active", f"alias moved to version {entry[1]} after reads {reads}"


@pytest.fixture
def env(mocked_aws, monkeypatch, tmp_path):
    monkeypatch.setattr("release.aws._sleep", lambda seconds: None)
    monkeypatch.setattr("release.aws.VERSION_POLL_DELAY_S", 0)
    boto3.client("iam", region_name=REGION).create_role(RoleName="stream-inference-role", AssumeRolePolicyDocument="{}")
    kinesis = boto3.client("kinesis", region_name=REGION)
    kinesis.create_stream(StreamName="reviews", ShardCount=1)
    stream_arn = kinesis.describe_stream(StreamName="reviews")["StreamDescription"]["StreamARN"]
    sqs = boto3.client("sqs", region_name=REGION)
    url = sqs.create_queue(QueueName="failures")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    clients = Clients.from_session(boto3.Session(region_name=REGION))
    return {
        "tmp": tmp_path,
        "clients": clients,
        "toml": lambda **kw: load_settings(_toml(tmp_path / "deploy.toml", stream_arn, queue_arn, **kw)),
        "function_zip": write_zip(
            tmp_path / "function.zip", {"lambda_function.py": b"def lambda_handler(e, c): pass\n"}
        ),
    }


def _layers(env: dict[str, Any], settings: Any) -> None:
    clients = env["clients"]
    publish_deps_layer(settings, fake_deps_zip(env["tmp"] / "deps.zip"), clients=clients)
    publish_model_layer(settings, fake_model_zip(env["tmp"] / "m1.zip", "1.0.0"), clients=clients)


def test_snap_start_setting_is_validated(env):
    assert env["toml"]().function.snap_start == "None"
    assert env["toml"](snap_start="PublishedVersions").function.snap_start == "PublishedVersions"
    with pytest.raises(
        SettingsError, match="snap_start = 'Always' is not allowed; use one of: None, PublishedVersions"
    ):
        env["toml"](snap_start="Always")
    with pytest.raises(SettingsError, match="needs python3.12 or later"):
        env["toml"](snap_start="PublishedVersions", runtime="python3.11")
    assert env["toml"](snap_start="PublishedVersions", storage=512).function.ephemeral_storage_mb == 512
    with pytest.raises(SettingsError, match="at most 512 MB of ephemeral storage"):
        env["toml"](snap_start="PublishedVersions", storage=1024)
    assert env["toml"](storage=1024).function.ephemeral_storage_mb == 1024


def test_every_release_waits_for_the_version_to_be_active_before_moving_the_alias(env, capsys):
    """deploy, publish-model-layer, relink and rollback: the alias only ever moves to a version read as Active."""
    settings, clients = env["toml"](snap_start="PublishedVersions"), env["clients"]
    states = LambdaStates(clients.lambda_, pending=2)
    _layers(env, settings)
    deploy(settings, env["function_zip"], clients=clients)
    assert states.created["stream-inference"] == [{"ApplyOn": "PublishedVersions"}]
    states.pending = 1
    second = publish_model_layer(settings, fake_model_zip(env["tmp"] / "m2.zip", "2.0.0"), clients=clients)
    assert second.release is not None
    states.pending = 3
    back = rollback(settings, clients=clients)
    states.pending = 1
    relink(settings, second.layer_arn, clients=clients)
    assert_alias_moved_only_to_active_versions(states.timeline)
    assert [e[1] for e in states.timeline if e[0] == "alias"] == ["1", "2", back.version, "4"]
    assert sum(1 for e in states.timeline if e[0] == "read" and e[2] == "Pending") == 2 + 1 + 3 + 1
    assert "SnapStart None, optimization Off" in capsys.readouterr().err  # what moto reports, as reported


def test_a_version_that_fails_is_never_made_live(env):
    settings, clients = env["toml"](snap_start="PublishedVersions"), env["clients"]
    _layers(env, settings)
    deploy(settings, env["function_zip"], clients=clients)
    states = LambdaStates(clients.lambda_, pending=1, final="Failed")
    with pytest.raises(
        ReleaseError, match="version 2 of stream-inference did not become Active .*Failed: the init raised"
    ):
        publish_model_layer(settings, fake_model_zip(env["tmp"] / "m2.zip", "2.0.0"), clients=clients)
    assert not [e for e in states.timeline if e[0] == "alias"]
    alias = clients.lambda_.get_alias(FunctionName="stream-inference", Name="live")
    assert alias["FunctionVersion"] == "1"


def test_deploy_turns_snap_start_on_and_off_as_a_configuration_change(env):
    settings, clients = env["toml"](), env["clients"]
    _layers(env, settings)
    states = LambdaStates(clients.lambda_, pending=0)
    deploy(settings, env["function_zip"], clients=clients)
    assert states.created["stream-inference"] == [{"ApplyOn": "None"}]
    again = deploy(env["toml"](snap_start="PublishedVersions"), env["function_zip"], clients=clients)
    assert states.created["stream-inference"][-1] == {"ApplyOn": "PublishedVersions"}
    assert any(
        change.startswith("SnapStart: {'ApplyOn': 'None'} -> {'ApplyOn': 'PublishedVersions'}")
        for change in again.function_changes
    )


def test_the_template_carries_the_setting(env):
    from infra.template import FUNCTION_ID, build_template

    for value in ("None", "PublishedVersions"):
        properties = build_template(env["toml"](snap_start=value))["Resources"][FUNCTION_ID]["Properties"]
        assert properties["SnapStart"] == {"ApplyOn": value} and properties["AutoPublishAlias"] == "live"
