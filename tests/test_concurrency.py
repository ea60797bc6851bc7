"""``[function] reserved_concurrency``: validated when loaded, put and removed by ``make deploy`` (moto)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import boto3
import pytest

from release.aws import Clients
from release.concurrency import reserved_concurrency
from release.deploy import deploy
from release.publish import publish_deps_layer, publish_model_layer
from release.settings import SettingsError, load_settings
from tests.helpers import fake_deps_zip, fake_model_zip, write_zip

REGION = "us-east-1"
ACCOUNT = "123456789012"
NAME = "stream-inference"
#: Lambda operations that change something (the rest only read).
MUTATING = ("create_", "update_", "publish_", "tag_", "untag_", "delete_", "put_")


def write_settings(path: Path, function_line: str = "", parallelization_factor: int = 2) -> Path:
    """A deploy.toml with one Kinesis stream; ``function_line`` is added to ``[function]``."""
    path.write_text(
        f"""
[function]
name = "{NAME}"
runtime = "python3.12"
role_arn = "arn:aws:iam::{ACCOUNT}:role/stream-inference-role"
{function_line}

[layers]
model_name = "model-layer"
dependencies_name = "deps-layer"

[[event_sources]]
type = "kinesis"
source_arn = "arn:aws:kinesis:{REGION}:{ACCOUNT}:stream/reviews"
parallelization_factor = {parallelization_factor}
on_failure_destination_arn = "arn:aws:sqs:{REGION}:{ACCOUNT}:failures"

[history]
file = "releases.jsonl"
"""
    )
    return path


# --- validation ---------------------------------------------------------------------------


@pytest.mark.unit
def test_no_setting_means_no_reservation(tmp_path: Path) -> None:
    assert load_settings(write_settings(tmp_path / "deploy.toml")).function.reserved_concurrency is None


@pytest.mark.unit
@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("reserved_concurrency = 0", "out of range.*0 would throttle every invocation"),
        ("reserved_concurrency = -1", "out of range"),
        ('reserved_concurrency = "10"', "must be a whole number"),
        ("reserved_concurrency = 1", "below the 2 concurrent batches the streams take with one shard each"),
    ],
)
def test_bad_reservations_are_refused_naming_the_fix(tmp_path: Path, line: str, message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        load_settings(write_settings(tmp_path / "deploy.toml", line))


@pytest.mark.unit
def test_a_reservation_covering_the_streams_is_accepted(tmp_path: Path) -> None:
    path = write_settings(tmp_path / "deploy.toml", "reserved_concurrency = 2")
    assert load_settings(path).function.reserved_concurrency == 2


# --- make deploy, against moto ---------------------------------------------------------------


class CallRecorder:
    """A client that notes the name of every method called on it."""

    def __init__(self, client: Any) -> None:
        self.client, self.calls = client, []

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self.client, name)
        if not callable(attr) or name in ("get_waiter", "get_paginator"):
            return attr

        def call(*args: Any, **kwargs: Any) -> Any:
            self.calls.append(name)
            return attr(*args, **kwargs)

        return call


@pytest.fixture
def world(mocked_aws: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> dict[str, Any]:
    """Role, stream and queue in moto; both layers published; a function zip."""
    monkeypatch.setattr("release.aws._sleep", lambda seconds: None)
    boto3.client("iam", region_name=REGION).create_role(RoleName="stream-inference-role", AssumeRolePolicyDocument="{}")
    boto3.client("kinesis", region_name=REGION).create_stream(StreamName="reviews", ShardCount=1)
    boto3.client("sqs", region_name=REGION).create_queue(QueueName="failures")
    clients = Clients.from_session(boto3.Session(region_name=REGION))
    settings = load_settings(write_settings(tmp_path / "deploy.toml"))
    publish_deps_layer(settings, fake_deps_zip(tmp_path / "deps.zip"), clients=clients)
    publish_model_layer(settings, fake_model_zip(tmp_path / "model.zip", "1.0.0"), clients=clients)
    code = write_zip(tmp_path / "function.zip", {"lambda_function.py": b"def lambda_handler(e, c):\n    return {}\n"})
    return {"clients": clients, "tmp": tmp_path, "code": code}


def _deploy(world: dict[str, Any], function_line: str) -> tuple[list[str], list[str]]:
    """Deploy with ``function_line`` in ``[function]``; returns (the function changes, the mutating calls)."""
    path = write_settings(world["tmp"] / f"deploy-{len(function_line)}.toml", function_line)
    lam = CallRecorder(world["clients"].lambda_)
    result = deploy(load_settings(path), world["code"], clients=Clients(lam, world["clients"].s3))
    return result.function_changes, [call for call in lam.calls if call.startswith(MUTATING)]


@pytest.mark.aws
def test_deploy_puts_changes_and_removes_the_reservation(world: dict[str, Any]) -> None:
    lam = world["clients"].lambda_
    changes, calls = _deploy(world, "reserved_concurrency = 5")
    assert "put_function_concurrency" in calls and "ReservedConcurrentExecutions: None -> 5" in changes
    assert lam.get_function_concurrency(FunctionName=NAME)["ReservedConcurrentExecutions"] == 5

    changes, calls = _deploy(world, "reserved_concurrency = 5")
    assert changes == [] and calls == []  # the same setting again: nothing is called that changes anything

    changes, calls = _deploy(world, "reserved_concurrency = 8")
    assert calls == ["put_function_concurrency"] and changes == ["ReservedConcurrentExecutions: 5 -> 8"]
    assert reserved_concurrency(lam, NAME) == 8

    changes, calls = _deploy(world, "")
    assert calls == ["delete_function_concurrency"] and changes == ["ReservedConcurrentExecutions: 8 -> None"]
    assert "ReservedConcurrentExecutions" not in lam.get_function_concurrency(FunctionName=NAME)
    assert reserved_concurrency(lam, NAME) is None


@pytest.mark.aws
def test_a_reservation_set_outside_deploy_toml_is_removed_and_none_is_left_alone(world: dict[str, Any]) -> None:
    lam = world["clients"].lambda_
    _deploy(world, "")
    assert _deploy(world, "") == ([], [])  # no reservation wanted, none there: no call
    lam.put_function_concurrency(FunctionName=NAME, ReservedConcurrentExecutions=3)  # e.g. in the console
    assert _deploy(world, "") == (["ReservedConcurrentExecutions: 3 -> None"], ["delete_function_concurrency"])
