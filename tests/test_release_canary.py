"""The canary release against moto: weights, the version's alarms, promote, roll back, interrupted and finished or undone (release).

CloudWatch does not evaluate alarms in moto; the tests trip one with ``SetAlarmState``, as an
operator can on AWS. The clock and the sleep between polls are a fake that advances by what is slept,
so a 30-minute canary runs in milliseconds; ``on_sleep`` runs at each poll, while the canary is live.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import boto3
import pytest

from release.alarms import QUARANTINE_RATE_PERCENT, canary_alarms
from release.canary import CanaryPlan, canary_model_layer
from release.cli import main
from release.errors import ReleaseError
from release.history import read_history
from release.listing import format_listing, releases
from release.publish import publish_model_layer
from release.state import FunctionState
from tests import test_release
from tests.test_release import REGION, model_zip
from tests.test_release_audit import deployed

pytestmark = pytest.mark.aws

aws, clients, env = test_release.aws, test_release.clients, test_release.env
FN = "stream-inference"


class FakeTime:
    """A clock that moves only when slept; ``on_sleep(n)`` runs before the n-th sleep returns."""

    def __init__(self, on_sleep: Callable[[int], None] | None = None) -> None:
        self.now, self.sleeps, self.on_sleep = time.time(), [], on_sleep

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds
        if self.on_sleep:
            self.on_sleep(len(self.sleeps))


def _alias(lam: Any) -> tuple[str, dict[str, float]]:
    alias = lam.get_alias(FunctionName=FN, Name="live")
    return alias["FunctionVersion"], (alias.get("RoutingConfig") or {}).get("AdditionalVersionWeights", {})


def _versions(lam: Any) -> list[str]:
    return [
        v["Version"] for v in lam.list_versions_by_function(FunctionName=FN)["Versions"] if v["Version"] != "$LATEST"
    ]


def _alarm_names() -> list[str]:
    cloudwatch = boto3.client("cloudwatch", region_name=REGION)
    return sorted(a["AlarmName"] for a in cloudwatch.describe_alarms()["MetricAlarms"])


def _trip(name: str) -> None:
    boto3.client("cloudwatch", region_name=REGION).set_alarm_state(
        AlarmName=name, StateValue="ALARM", StateReason="Threshold Crossed: 3 datapoints were greater than 1"
    )


def _invoked(version: str) -> None:
    """What Lambda publishes when the alias runs ``version`` (an invocation of the canary)."""
    dimensions = [
        {"Name": "FunctionName", "Value": FN},
        {"Name": "Resource", "Value": f"{FN}:live"},
        {"Name": "ExecutedVersion", "Value": version},
    ]
    boto3.client("cloudwatch", region_name=REGION).put_metric_data(
        Namespace="AWS/Lambda", MetricData=[{"MetricName": "Invocations", "Dimensions": dimensions, "Value": 1.0}]
    )


def _run(env: dict[str, Any], fake: FakeTime, version: str = "3.0.0", minutes: float = 30):
    return canary_model_layer(
        env["settings"], model_zip(env["tmp"], version), CanaryPlan(10, minutes, poll_s=60),
        clients=env["clients"], clock=fake.clock, sleep=fake.sleep,
    )  # fmt: skip


def test_a_healthy_canary_routes_its_share_watches_the_alarms_and_promotes(env):
    lam = env["clients"].lambda_
    deployed(env)
    seen: list[Any] = []
    fake = FakeTime(lambda n: (seen.append((_alias(lam), _alarm_names())), _invoked("3")) if n == 1 else None)

    result = _run(env, fake)

    assert result.outcome == "promoted" and result.version == "3" and result.from_version == "2"
    (alias, alarms), *_ = seen
    assert alias == ("2", {"3": 0.1})  # the live version keeps 90 %
    assert alarms == [f"{FN}-canary-v3-errors", f"{FN}-canary-v3-iterator-age", f"{FN}-canary-v3-quarantine-rate"]
    assert sum(fake.sleeps) == 30 * 60 and max(fake.sleeps) == 60
    assert _alias(lam) == ("3", {})
    assert _alarm_names() == []
    state = FunctionState.read(env["settings"], env["clients"])
    assert not state.unfinished and state.tags["release-action"] == "canary" and state.tags["release-version"] == "3"
    assert read_history(env["settings"].history.file)[-1]["action"] == "canary"


def test_an_alarm_rolls_the_canary_back_by_itself(env):
    lam = env["clients"].lambda_
    deployed(env)
    live_config = lam.get_function_configuration(FunctionName=FN, Qualifier="2")
    fake = FakeTime(lambda n: _trip(f"{FN}-canary-v3-errors") if n == 3 else None)

    result = _run(env, fake)

    assert result.outcome == "rolled back" and result.alarm.name == f"{FN}-canary-v3-errors"
    assert "Threshold Crossed" in result.alarm.reason
    assert len(fake.sleeps) == 3  # decided at the next poll, not at the end
    assert _alias(lam) == ("2", {})  # weights cleared, the alias where it was
    assert _versions(lam) == ["1", "2"]  # the canary version is gone
    latest = lam.get_function_configuration(FunctionName=FN)
    assert latest["Layers"] == live_config["Layers"]
    assert not FunctionState.read(env["settings"], env["clients"]).unfinished
    assert _alarm_names() == []


def test_an_interrupted_canary_is_reported_refused_elsewhere_and_finished_by_its_rerun(env, capsys):
    lam = env["clients"].lambda_
    deployed(env)

    def interrupt(n: int) -> None:
        if n == 5:
            raise KeyboardInterrupt

    first = FakeTime(interrupt)
    with pytest.raises(KeyboardInterrupt):
        _run(env, first)
    assert _alias(lam) == ("2", {"3": 0.1})
    report = "\n".join(FunctionState.read(env["settings"], env["clients"]).report(env["settings"], env["clients"]))
    assert "unfinished canary" in report and "make publish-model-layer STRATEGY=canary" in report
    assert "layer published: yes" in report
    assert "alias weights: stream-inference:live also sends version 3: 10% of its invocations" in report
    with pytest.raises(ReleaseError, match="refusing to publish-model-layer while a release of stream-inference is"):
        publish_model_layer(env["settings"], model_zip(env["tmp"], "3.0.0"), clients=env["clients"])

    _invoked("3")
    rerun = FakeTime()
    rerun.now = first.now  # five minutes later: the deadline is the first run's
    result = _run(env, rerun)

    assert result.outcome == "promoted" and result.version == "3"
    assert sum(rerun.sleeps) == pytest.approx(25 * 60, abs=2)
    assert _versions(lam) == ["1", "2", "3"] and _alias(lam) == ("3", {})
    assert [layer["Version"] for layer in lam.list_layer_versions(LayerName="model-layer")["LayerVersions"]] == [
        3,
        2,
        1,
    ]


def test_an_alarm_that_fired_before_an_interruption_still_rolls_back_the_rerun(env):
    lam = env["clients"].lambda_
    deployed(env)

    def trip_then_interrupt(n: int) -> None:
        _trip(f"{FN}-canary-v3-quarantine-rate")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        _run(env, FakeTime(trip_then_interrupt))
    result = _run(env, FakeTime())
    assert result.outcome == "rolled back" and result.alarm.name.endswith("quarantine-rate")
    assert _alias(lam) == ("2", {}) and _versions(lam) == ["1", "2"]


def test_a_canary_nothing_ran_on_rolls_back(env):
    lam = env["clients"].lambda_
    deployed(env)
    result = _run(env, FakeTime())
    assert result.outcome == "rolled back" and result.alarm.name == "no-invocations"
    assert "served no invocation in 30 min" in result.alarm.reason
    assert _alias(lam) == ("2", {}) and _versions(lam) == ["1", "2"]


def test_release_abort_undoes_an_interrupted_canary_and_its_alarms(env, capsys):
    lam = env["clients"].lambda_
    deployed(env)

    def interrupt(n: int) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        _run(env, FakeTime(interrupt))

    assert main(["--settings", str(env["toml"]), "abort"], clients=env["clients"]) == 0

    out = capsys.readouterr().out
    assert "cleared the alias weights (version 3: 10%)" in out and "deleted version 3" in out
    assert f"deleted alarm {FN}-canary-v3-errors" in out
    assert _alias(lam) == ("2", {}) and _versions(lam) == ["1", "2"] and _alarm_names() == []
    assert not FunctionState.read(env["settings"], env["clients"]).unfinished


def test_the_command_line_promotes_and_a_rollback_exits_non_zero(env, capsys):
    lam = env["clients"].lambda_
    deployed(env)
    args = ["--settings", str(env["toml"]), "publish-model-layer", "--strategy", "canary", "--percent", "10"]

    _invoked("3")  # the version the canary will publish
    assert main([*args, "--zip", str(model_zip(env["tmp"], "3.0.0")), "--minutes", "0"], clients=env["clients"]) == 0
    out = capsys.readouterr().out
    assert "sends 10 % of invocations to version 3" in out and "promoted version 3" in out
    assert _alias(lam) == ("3", {})

    # An alarm already in ALARM when the canary starts (put by an earlier run for this version) rolls back at once.
    for alarm in canary_alarms(env["settings"], "4"):
        boto3.client("cloudwatch", region_name=REGION).put_metric_alarm(**alarm)
    _trip(f"{FN}-canary-v4-errors")
    status = main([*args, "--zip", str(model_zip(env["tmp"], "4.0.0")), "--minutes", "30"], clients=env["clients"])
    err = capsys.readouterr().err
    assert status == 2 and "rolled back" in err and "still serves version 3" in err
    assert _alias(lam) == ("3", {})


def test_the_alarms_watch_the_new_version_through_the_alias(env):
    errors, age, rate = canary_alarms(env["settings"], "7")
    assert errors["Dimensions"] == [
        {"Name": "FunctionName", "Value": FN},
        {"Name": "Resource", "Value": f"{FN}:live"},
        {"Name": "ExecutedVersion", "Value": "7"},
    ]
    assert (errors["MetricName"], errors["Statistic"], errors["Threshold"]) == ("Errors", "Sum", 1.0)
    assert (age["MetricName"], age["Statistic"], age["Threshold"]) == ("IteratorAge", "Maximum", 300_000.0)
    assert rate["Metrics"][2]["Expression"] == "100 * quarantined / records"
    assert rate["Threshold"] == QUARANTINE_RATE_PERCENT
    assert {a["TreatMissingData"] for a in (errors, age, rate)} == {"notBreaching"}


def test_a_canary_needs_a_live_version_one_alias_version_and_a_share(env):
    lam = env["clients"].lambda_
    deployed(env)
    for percent in (0, 100, -5):
        with pytest.raises(ReleaseError, match="must be above 0 and below 100"):
            CanaryPlan(percent, 30)
    lam.update_alias(FunctionName=FN, Name="live", RoutingConfig={"AdditionalVersionWeights": {"1": 0.5}})
    with pytest.raises(ReleaseError, match="already splits invocations"):
        _run(env, FakeTime())
    text = format_listing(releases(env["settings"], clients=env["clients"]), env["settings"])
    assert "live splits invocations by weight (RoutingConfig): version 2 50%, version 1 50%" in text


# --------------------------------------------------------------------------- a lost connection at every change


#: The calls a canary of a new model makes that change something, in order (``test_the_changes_are_these``
#: keeps the list true): a fault is injected at each.
CHANGES = [
    ("lambda", "tag_resource", 1),
    ("lambda", "publish_layer_version", 1),
    ("lambda", "update_function_configuration", 1),
    ("lambda", "publish_version", 1),
    ("cloudwatch", "put_metric_alarm", 1),
    ("cloudwatch", "put_metric_alarm", 2),
    ("cloudwatch", "put_metric_alarm", 3),
    ("lambda", "update_alias", 1),
    ("lambda", "update_alias", 2),
    ("lambda", "tag_resource", 2),
    ("lambda", "untag_resource", 1),
    ("cloudwatch", "delete_alarms", 1),
]
CHANGING = ("create_", "update_", "publish_", "tag_", "untag_", "delete_", "put_")


class Faulty:
    """A client that loses the connection at one call: ``drop`` before sending it, ``timeout`` after AWS applied it."""

    def __init__(self, client: Any, service: str, log: list[tuple[str, str, int]], fault: tuple | None) -> None:
        self._client, self._service, self._log, self._fault = client, service, log, fault

    def __getattr__(self, name: str) -> Any:
        from botocore.exceptions import EndpointConnectionError, ReadTimeoutError

        attr = getattr(self._client, name)
        if not callable(attr) or not name.startswith(CHANGING):
            return attr

        def call(*args: Any, **kwargs: Any) -> Any:
            nth = 1 + sum(1 for s, n, _ in self._log if (s, n) == (self._service, name))
            self._log.append((self._service, name, nth))
            kind = self._fault[1] if self._fault and self._fault[0] == (self._service, name, nth) else None
            if kind == "drop":
                raise EndpointConnectionError(endpoint_url="https://lambda.us-east-1.amazonaws.com")
            result = attr(*args, **kwargs)
            if kind == "timeout":
                raise ReadTimeoutError(endpoint_url="https://lambda.us-east-1.amazonaws.com")
            return result

        return call


def _faulty(env: dict[str, Any], log: list, fault: tuple | None = None) -> Any:
    c = env["clients"]
    return type(c)(
        Faulty(c.lambda_, "lambda", log, fault), c.s3, c.sts, cloudwatch=Faulty(c.cloudwatch, "cloudwatch", log, fault)
    )


def test_the_changes_are_these(env):
    deployed(env)
    log: list = []
    fake = FakeTime(lambda n: _invoked("3") if n == 1 else None)
    canary_model_layer(
        env["settings"], model_zip(env["tmp"], "3.0.0"), CanaryPlan(10, 30, poll_s=600),
        clients=_faulty(env, log), clock=fake.clock, sleep=fake.sleep,
    )  # fmt: skip
    assert log == CHANGES


def _cut(env: dict[str, Any], change: tuple, kind: str) -> FakeTime:
    """A canary of 3.0.0 whose connection is lost at ``change``; returns its clock."""
    _invoked("3")
    first = FakeTime()
    with pytest.raises(Exception, match="Connect timeout|Could not connect|Read timeout"):
        canary_model_layer(
            env["settings"], model_zip(env["tmp"], "3.0.0"), CanaryPlan(10, 30, poll_s=600),
            clients=_faulty(env, [], (change, kind)), clock=first.clock, sleep=first.sleep,
        )  # fmt: skip
    served, weights = _alias(env["clients"].lambda_)
    assert served in ("2", "3") and set(weights) <= {"3"}
    return first


#: ``timeout`` (applied, the answer lost) at every change; ``drop`` (never sent) leaves what ``timeout`` at the
#: change before leaves, so it adds only the first change (nothing changed at all).
CUTS = [(change, "timeout") for change in CHANGES] + [(CHANGES[0], "drop")]


@pytest.mark.slow
@pytest.mark.parametrize(("change", "kind"), CUTS, ids=[f"{s}.{n}#{i}-{k}" for (s, n, i), k in CUTS])
def test_a_canary_cut_at_any_change_is_finished_by_its_rerun(env, change, kind):
    lam = env["clients"].lambda_
    deployed(env)
    first = _cut(env, change, kind)

    rerun = FakeTime()
    rerun.now = first.now  # the rerun keeps the first run's deadline
    result = _run(env, rerun)

    assert result.outcome in ("promoted", "already served")  # already: the cut was after the promotion
    assert _alias(lam) == ("3", {}) and _versions(lam) == ["1", "2", "3"] and _alarm_names() == []
    model = lam.get_function_configuration(FunctionName=FN, Qualifier="live")["Layers"][1]["Arn"]
    assert model.endswith(":3")
    assert [v["Version"] for v in lam.list_layer_versions(LayerName="model-layer")["LayerVersions"]] == [3, 2, 1]
    assert not FunctionState.read(env["settings"], env["clients"]).unfinished


@pytest.mark.slow
@pytest.mark.parametrize("change", CHANGES, ids=[f"{s}.{n}#{i}" for s, n, i in CHANGES])
def test_a_canary_whose_answer_was_lost_at_any_change_is_undone_by_release_abort(env, change, capsys):
    lam = env["clients"].lambda_
    deployed(env)
    _cut(env, change, "timeout")
    finished = not FunctionState.read(env["settings"], env["clients"]).unfinished

    assert main(["--settings", str(env["toml"]), "abort"], clients=env["clients"]) == 0

    if finished:  # the answer lost was the release's last (untag) or after it: it is done, nothing to undo
        assert "nothing unfinished" in capsys.readouterr().out and _alias(lam) == ("3", {})
        return
    assert _alias(lam) == ("2", {}) and _versions(lam) == ["1", "2"] and _alarm_names() == []
    assert not FunctionState.read(env["settings"], env["clients"]).unfinished
