"""A canary release of a model layer: a share of the invocations on the new version, alarms watched, then promote or roll back.

``make publish-model-layer STRATEGY=canary PERCENT=10 MINUTES=30`` is one release transaction
(:mod:`release.transaction`, action ``canary``, target the zip's sha256), in these steps:

1. the model layer is checked and published as for any release (:func:`release.publish.publish_candidate`);
2. ``$LATEST`` is staged with the live version's configuration and only the model layer swapped,
   a version N is published (the live ``CodeSha256``), and the canary waits until it is ``Active``;
3. the alias stays on the live version and sends PERCENT % of the invocations to N
   (``RoutingConfig={"AdditionalVersionWeights": {N: PERCENT / 100}}``);
4. the alarms of :mod:`release.alarms` are put for N;
5. every ``poll_s`` it reads their state (``DescribeAlarms``) until MINUTES have passed since the
   release started (the ``release-pending-started`` tag, so a re-run keeps the first deadline):
   * any alarm in ``ALARM``: **roll back**, which is :func:`release.transaction.abort`: the alias
     back on its version alone (weights cleared), ``$LATEST`` reset, version N deleted, the pending
     tags removed;
   * the time is up with no alarm: **promote**: the alias on N alone (weights cleared), the release
     tags written and the pending ones removed, the release appended to the history file; unless N
     served no invocation at all in that time (``AWS/Lambda`` ``Invocations`` by ``ExecutedVersion``):
     a canary nothing ran on proves nothing, so that rolls back too;
6. the canary's alarms are deleted.

Interrupted anywhere (Ctrl-C, a lost connection), the release is unfinished like any other: the
same command finishes it (the layer, the staged ``$LATEST``, version N, the weights and the alarms
are found and reused; the watch resumes until the first deadline, and an alarm that fired still
fires), and ``make release-abort`` undoes it. Weights apply per invocation, so on a stream a
retried batch may run on the other version (docs/releasing.md, "Canary").

The clock and the sleep between polls are parameters, so tests run a 30-minute canary in
milliseconds; progress lines go to stderr on a terminal only.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from release.alarms import (
    AlarmState,
    alarm_states,
    canary_alarms,
    delete_canary_alarms,
    put_alarms,
    version_invocations,
)
from release.arns import LayerArn, find_layer, layer_arns, replace_layers
from release.aws import (
    Clients,
    call_with_retry,
    get_configuration,
    wait_version_active,
)
from release.descriptions import parse_description, version_description
from release.errors import ReleaseError
from release.history import Release, append_history, release_tags
from release.publish import PublishResult, publish_candidate
from release.relink import NO_WEIGHTS, check_model_layer, refuse_unreleased_code, stage_configuration
from release.settings import Settings
from release.state import FunctionState, Pending
from release.transaction import Transaction, abort, configuration_of

ACTION = "canary"
#: Seconds between two reads of the alarms, unless told otherwise.
DEFAULT_POLL_S = 30.0


@dataclass(frozen=True)
class CanaryPlan:
    """How much traffic the new version gets, and for how long.

    Attributes
    ----------
    percent : float
        Share of the invocations routed to the new version, 0 < percent < 100.
    minutes : float
        How long the alarms are watched (from the release's start) before promoting; 0 or more.
    poll_s : float
        Seconds between two reads of the alarms.
    """

    percent: float
    minutes: float
    poll_s: float = DEFAULT_POLL_S

    def __post_init__(self) -> None:
        if not 0 < self.percent < 100:
            raise ReleaseError(f"PERCENT={self.percent:g} must be above 0 and below 100 (the new version's share)")
        if self.minutes < 0:
            raise ReleaseError(f"MINUTES={self.minutes:g} must be 0 or more (how long the alarms are watched)")
        if self.poll_s <= 0:
            raise ReleaseError(f"the poll interval ({self.poll_s:g} s) must be positive")


@dataclass
class CanaryResult:
    """What a canary did.

    Attributes
    ----------
    layer : PublishResult
        The model layer version (``reused`` when it was published before).
    outcome : str
        ``promoted``, ``rolled back`` or ``already served`` (the alias served that layer: nothing to do).
    version : str or None
        The canary version (deleted again after a roll back).
    from_version : str or None
        The version the alias served before.
    alarm : AlarmState or None
        The alarm that made it roll back.
    release : Release or None
        The release (a promotion).
    lines : list of str
        What was done, in order, to print.
    """

    layer: PublishResult
    outcome: str
    version: str | None = None
    from_version: str | None = None
    alarm: AlarmState | None = None
    release: Release | None = None
    lines: list[str] = field(default_factory=list)


def undo_alarms(settings: Settings, clients: Clients) -> Callable[[Pending], list[str]]:
    """The :func:`release.transaction.abort` cleanup that deletes an undone canary's alarms."""

    def cleanup(pending: Pending) -> list[str]:
        if pending.action != ACTION or clients.cloudwatch is None:
            return []
        return [f"deleted alarm {name}" for name in delete_canary_alarms(settings, clients.cloudwatch)]

    return cleanup


def _epoch(iso: str, default: float) -> float:
    try:
        return datetime.fromisoformat(iso).timestamp()
    except ValueError:
        return default


def _canary_version(txn: Transaction, layers: list[str]) -> str | None:
    """A version the unfinished canary published already: newer than its start, with the canary's layers."""
    floor = int(txn.from_version) if txn.from_version and txn.from_version.isdigit() else 0
    for version in sorted(txn.state.versions or [], key=lambda v: -int(v["Version"])):
        newer, same = int(version["Version"]) > floor, layer_arns(version) == layers
        if newer and same and parse_description(version.get("Description"))[0] == ACTION:
            return str(version["Version"])
    return None


def _progress(message: str) -> None:
    if sys.stderr.isatty():
        print(f"\r  {message}", end="", file=sys.stderr, flush=True)


def canary_model_layer(
    settings: Settings,
    zip_path: Path,
    plan: CanaryPlan,
    *,
    clients: Clients,
    clock: Callable[[], float] = time.time,
    sleep: Callable[[float], None] = time.sleep,
) -> CanaryResult:
    """Release a model layer zip to ``plan.percent`` % of the invocations, watch, promote or roll back (module docstring).

    Parameters
    ----------
    settings : Settings
    zip_path : Path
        The model layer zip.
    plan : CanaryPlan
    clients : Clients
        With a ``cloudwatch`` client.
    clock : callable
        Seconds since the epoch (``time.time``).
    sleep : callable
        Waits between polls (``time.sleep``).

    Returns
    -------
    CanaryResult

    Raises
    ------
    ReleaseError
        If nothing is live yet, the alias already splits invocations, the layer does not fit, or
        another release is unfinished (nothing was changed then).
    """
    lam, fn = clients.lambda_, settings.function
    if clients.cloudwatch is None:
        raise ReleaseError("a canary needs a CloudWatch client (its alarms)")

    def check(state: FunctionState, resume: bool) -> None:
        if state.live is None:
            raise ReleaseError(
                f"{fn.name} has no live version for a canary to run beside; release this model all at once "
                "(`make publish-model-layer`); nothing was changed"
            )
        if state.weights and not resume:
            split = ", ".join(f"version {v}: {w:.0%}" for v, w in state.weights.items())
            raise ReleaseError(
                f"alias {fn.alias} already splits invocations ({split}, RoutingConfig); a canary needs it on one "
                "version. Any release ends the split (`make relink LAYER_ARN=...` of the live layer), then run the "
                "canary again; nothing was changed"
            )
        refuse_unreleased_code(fn.name, state)

    txn, layer = publish_candidate(settings, zip_path, ACTION, clients=clients, check=check)
    if txn is None or txn.state.live is None or txn.from_version is None:
        raise ReleaseError(
            f"function {fn.name} does not exist: `make deploy` first, then release a model all at once; "
            f"the layer is published as {layer.layer_arn}"
        )
    state, live, live_config = txn.state, txn.from_version, txn.state.live
    result = CanaryResult(layer, "already served", from_version=live)
    arn = LayerArn.parse(layer.layer_arn)
    model = check_model_layer(settings, live_config, arn, lam)
    layers = replace_layers(layer_arns(live_config), {settings.layers.model_name: str(arn)})
    if layers == layer_arns(live_config) and not txn.started:
        result.lines.append(f"{fn.name}:{fn.alias} already serves {arn} (version {live}); nothing to canary")
        # alarms left by a canary whose last call failed after it was done (the client was checked above)
        result.lines += [f"deleted alarm {n}" for n in delete_canary_alarms(settings, clients.cloudwatch)]
        return result
    txn.begin()
    version = _canary_version(txn, layers)
    if version is None and state.alias_version != live:
        version = state.alias_version  # an earlier run promoted it, and did not finish
    if version is None:
        code_sha = live_config.get("CodeSha256")
        stage_configuration(lam, fn.name, state.latest, {**configuration_of(live_config), "Layers": layers})
        published = call_with_retry(
            lam,
            "publish_version",
            fn.name,
            Description=version_description(ACTION, model, str(arn)),
            CodeSha256=code_sha,
        )
        version = str(published["Version"])
        result.lines.append(f"published version {version} of {fn.name} (model layer {arn})")
    result.version = version
    wait_version_active(lam, fn.name, version)
    cloudwatch = clients.cloudwatch
    alarms = canary_alarms(settings, version)
    put_alarms(cloudwatch, alarms)
    names = [a["AlarmName"] for a in alarms]

    if state.alias_version == live:
        weight = round(plan.percent / 100, 4)
        fired = [a for a in alarm_states(cloudwatch, names) if a.state == "ALARM"]  # a re-run after it fired
        if state.weights != {version: weight} and not fired:
            lam.update_alias(
                FunctionName=fn.name,
                Name=fn.alias,
                FunctionVersion=live,
                Description=f"canary: {plan.percent:g} % to version {version}",
                RoutingConfig={"AdditionalVersionWeights": {version: weight}},
            )
        result.lines.append(
            f"{fn.name}:{fn.alias} serves version {live} and sends {plan.percent:g} % of invocations to version "
            f"{version}; watching {', '.join(names)} for {plan.minutes:g} min"
        )
        started = _epoch(txn.state.pending.started, clock()) if txn.state.pending else clock()
        deadline = started + plan.minutes * 60
        while not fired:
            now = clock()
            if now >= deadline:
                break
            _progress(
                f"canary {version} at {plan.percent:g} %: {(now - started) / 60:.1f} of {plan.minutes:g} min, no alarm"
            )
            sleep(min(plan.poll_s, deadline - now))
            fired = [a for a in alarm_states(cloudwatch, names) if a.state == "ALARM"]
        _progress("\n")
        if not fired and version_invocations(settings, cloudwatch, version, started, clock()) == 0:
            fired = [
                AlarmState(
                    "no-invocations",
                    "ALARM",
                    f"version {version} served no invocation in {plan.minutes:g} min (AWS/Lambda Invocations by "
                    "ExecutedVersion): nothing to judge it by; run the canary again with more MINUTES or PERCENT",
                )
            ]
        if fired:
            result.outcome, result.alarm = "rolled back", fired[0]
            result.lines.append(f"alarm {fired[0].name} is in ALARM ({fired[0].reason}); rolling back")
            result.lines += abort(settings, clients, undo_alarms(settings, clients))
            return result

    # Promote: the alias on the canary version alone.
    lam.update_alias(
        FunctionName=fn.name,
        Name=fn.alias,
        FunctionVersion=version,
        Description=version_description(ACTION, model, str(arn)),
        RoutingConfig=NO_WEIGHTS,
    )
    txn.finish(state.function_arn, release_tags(ACTION, version, str(arn), model, txn.caller))
    previous_model = find_layer(
        live_config if state.alias_version == live else get_configuration(lam, fn.name, live),
        settings.layers.model_name,
    )
    release = Release(
        ACTION, fn.name, fn.alias, version, str(arn), model.get("name"), model.get("version"), live, previous_model,
        caller=txn.caller,
    )  # fmt: skip
    append_history(settings.history.file, release)
    result.outcome, result.release = "promoted", release
    result.lines.append(f"no alarm in {plan.minutes:g} min: promoted version {version}")
    result.lines += [f"deleted alarm {name}" for name in delete_canary_alarms(settings, cloudwatch)]
    return result
