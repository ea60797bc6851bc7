"""Make the function, its alias and its event source mappings match ``deploy.toml``. Idempotent.

Deploy creates the function if it is absent, otherwise changes only what differs (code
sha256, runtime, architecture, memory, timeout, role, environment, layers), then
publishes a version and moves the alias only if something changed. It puts or removes the
function's reserved concurrency (:mod:`release.concurrency`). It keeps the model
layer the alias serves (releases move it, :mod:`release.relink`; never the one ``$LATEST``
happens to hold, which an unfinished release may have staged), starts from the live
version's layer list, attaches the newest dependencies layer, and creates or updates one
event source mapping per ``[[event_sources]]`` entry on the alias. It never deletes mappings, and
refuses to run while a configured stream also feeds the function through a mapping on ``$LATEST``, a
version or another alias (:mod:`release.other_mappings`): two mappings deliver every record twice.

A deploy is a release like the others (:class:`release.transaction.Transaction`): it refuses
while another release is unfinished, and finishes a deploy that did not.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from inference.manifest import sha256_file

from layers.function_zip import DEFAULT_OUT as DEFAULT_FUNCTION_ZIP
from release.arns import LayerArn, layer_arns, replace_layers
from release.aws import (
    Clients,
    error_code,
    list_layer_versions,
    paginate,
    update_and_wait,
    wait_active,
    wait_mapping_settled,
    wait_updated,
)
from release.compatibility import check_layer
from release.concurrency import apply_reserved_concurrency
from release.descriptions import library_mismatches
from release.errors import ReleaseError
from release.filter_patterns import pattern_json
from release.other_mappings import refuse_other_mappings
from release.relink import release_model
from release.settings import EventSource, Settings
from release.state import FunctionState, refuse_if_unfinished
from release.transaction import Transaction
from release.upload import base64_sha256, code_location

__all__ = ["DEFAULT_FUNCTION_ZIP", "DeployResult", "deploy", "deploy_mappings", "desired_configuration"]


@dataclass
class DeployResult:
    """What :func:`deploy` changed; empty lists mean nothing needed changing."""

    function_changes: list[str]
    version: str | None
    mapping_changes: list[str]
    warnings: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.function_changes or self.version or self.mapping_changes)


def _latest_layer_version(lam: Any, name: str) -> str | None:
    versions = list(list_layer_versions(lam, name))
    return max(versions, key=lambda v: v["Version"])["LayerVersionArn"] if versions else None


def desired_configuration(settings: Settings, layers: list[str]) -> dict[str, Any]:
    fn = settings.function
    return {
        "Runtime": fn.runtime,
        "Role": fn.role_arn,
        "Handler": fn.handler,
        "MemorySize": fn.memory_mb,
        "Timeout": fn.timeout_s,
        "EphemeralStorage": {"Size": fn.ephemeral_storage_mb},
        "Environment": {"Variables": dict(fn.environment)},
        "Layers": layers,
        "SnapStart": {"ApplyOn": fn.snap_start},
    }


def _configuration_diff(config: dict[str, Any], desired: dict[str, Any]) -> list[str]:
    current = {
        "Runtime": config.get("Runtime"),
        "Role": config.get("Role"),
        "Handler": config.get("Handler"),
        "MemorySize": config.get("MemorySize"),
        "Timeout": config.get("Timeout"),
        "EphemeralStorage": {"Size": (config.get("EphemeralStorage") or {}).get("Size", 512)},
        "Environment": {"Variables": (config.get("Environment") or {}).get("Variables", {})},
        "Layers": layer_arns(config),
        "SnapStart": {"ApplyOn": (config.get("SnapStart") or {}).get("ApplyOn", "None")},
    }
    return [f"{key}: {current[key]!r} -> {desired[key]!r}" for key in desired if current[key] != desired[key]]


def _code_diff(config: dict[str, Any], code_sha: str, arch: str) -> list[str]:
    changes = []
    if config.get("CodeSha256") != code_sha:
        changes.append(f"code: {config.get('CodeSha256')} -> {code_sha}")
    if (config.get("Architectures") or ["x86_64"]) != [arch]:
        changes.append(f"Architectures: {config.get('Architectures')} -> {[arch]}")
    return changes


def mapping_options(source: EventSource) -> dict[str, Any]:
    """The mapping's options as ``create_event_source_mapping`` takes them (``FilterCriteria`` only with patterns)."""
    options: dict[str, Any] = {
        "BatchSize": source.batch_size,
        "MaximumBatchingWindowInSeconds": source.maximum_batching_window_s,
        "ParallelizationFactor": source.parallelization_factor,
        "BisectBatchOnFunctionError": source.bisect_batch_on_function_error,
        "MaximumRetryAttempts": source.maximum_retry_attempts,
        "MaximumRecordAgeInSeconds": source.maximum_record_age_s,
        "FunctionResponseTypes": ["ReportBatchItemFailures"],
        "DestinationConfig": {"OnFailure": {"Destination": source.on_failure_destination_arn}},
        "Enabled": source.enabled,
    }
    if source.patterns:
        options["FilterCriteria"] = filter_criteria(source)
    return options


def filter_criteria(source: EventSource) -> dict[str, Any]:
    """The mapping's ``FilterCriteria``: ``{"Filters": [{"Pattern": json}, ...]}``, or ``{}`` for no filter
    (``{}`` is how ``UpdateEventSourceMapping`` removes filters; docs/aws-notes.md §2)."""
    patterns = source.patterns
    return {"Filters": [{"Pattern": pattern_json(p)} for p in patterns]} if patterns else {}


def _patterns_of(criteria: dict[str, Any] | None) -> list[Any]:
    """A ``FilterCriteria``'s patterns parsed, to compare what Lambda holds with what is wanted."""
    return [json.loads(f.get("Pattern") or "{}") for f in (criteria or {}).get("Filters") or []]


def _mapping_diff(mapping: dict[str, Any], options: dict[str, Any]) -> list[str]:
    current = {key: mapping.get(key) for key in options}
    current["Enabled"] = mapping.get("State") in ("Enabled", "Enabling", "Creating")
    destination = (mapping.get("DestinationConfig") or {}).get("OnFailure", {}).get("Destination")
    current["DestinationConfig"] = {"OnFailure": {"Destination": destination}}
    diff = [
        f"{key}: {current[key]!r} -> {options[key]!r}"
        for key in options
        if key != "FilterCriteria" and current[key] != options[key]
    ]
    have, want = _patterns_of(mapping.get("FilterCriteria")), _patterns_of(options.get("FilterCriteria"))
    if have != want:
        diff.append(f"FilterCriteria: {len(have)} -> {len(want)} pattern(s) {[pattern_json(p) for p in want]}")
    return diff


def deploy_mappings(settings: Settings, alias_arn: str, *, clients: Clients) -> tuple[list[str], list[str]]:
    """Create or update one event source mapping per ``[[event_sources]]`` entry.

    Mappings invoke the alias; only mappings of (stream, alias) are managed, and a
    mapping is only updated when an option differs. ``StartingPosition`` cannot be
    changed on an existing mapping: a difference is reported, not applied.

    Returns
    -------
    tuple of list of str
        The changes made, and warnings.
    """
    lam = clients.lambda_
    changes, warnings = [], []
    for source in settings.event_sources:
        options = mapping_options(source)
        existing = list(
            paginate(
                lam,
                "list_event_source_mappings",
                "EventSourceMappings",
                EventSourceArn=source.source_arn,
                FunctionName=alias_arn,
            )
        )
        if not existing:
            extra: dict[str, Any] = {"StartingPosition": source.starting_position}
            if source.starting_position_timestamp is not None:
                extra["StartingPositionTimestamp"] = source.starting_position_timestamp
            created = lam.create_event_source_mapping(
                EventSourceArn=source.source_arn, FunctionName=alias_arn, **extra, **options
            )
            changes.append(f"created mapping {created['UUID']}: {source.source_arn} -> {alias_arn}")
            continue
        if len(existing) > 1:
            warnings.append(
                f"{len(existing)} mappings from {source.source_arn} to {alias_arn}; updating "
                f"{existing[0]['UUID']} only. Delete the others: each delivers every record"
            )
        mapping = existing[0]
        if mapping.get("StartingPosition") not in (None, source.starting_position):
            warnings.append(
                f"mapping {mapping['UUID']} starts at {mapping['StartingPosition']}, deploy.toml says "
                f"{source.starting_position}; Lambda cannot change that on an existing mapping (delete it to recreate)"
            )
        diff = _mapping_diff(mapping, options)
        if diff:
            wait_mapping_settled(lam, mapping["UUID"])
            # {} removes filters the mapping has and deploy.toml no longer lists.
            options.setdefault("FilterCriteria", {})
            lam.update_event_source_mapping(UUID=mapping["UUID"], FunctionName=alias_arn, **options)
            changes.append(f"updated mapping {mapping['UUID']} ({source.source_arn}): " + "; ".join(diff))
    return changes, warnings


#: How often, and how long apart (seconds), CreateFunction is tried while IAM still propagates a new role.
ROLE_PROPAGATION_DELAYS_S = (2.0, 4.0, 8.0, 16.0)


def create_function_when_role_ready(
    lam: Any, *, sleep: Callable[[float], None] = time.sleep, **request: Any
) -> dict[str, Any]:
    """``CreateFunction``, tried again while Lambda cannot assume a role IAM created moments ago.

    A role made by ``make bootstrap`` takes a few seconds to reach Lambda, which meanwhile answers
    ``InvalidParameterValueException`` ("The role defined for the function cannot be assumed by
    Lambda"). That one error is retried after each of :data:`ROLE_PROPAGATION_DELAYS_S` (30 s in all);
    any other error, or that one after the last delay, is raised.
    """
    for delay in (*ROLE_PROPAGATION_DELAYS_S, None):
        try:
            return dict(lam.create_function(**request))
        except Exception as exc:
            propagating = error_code(exc) == "InvalidParameterValueException" and "cannot be assumed" in str(exc)
            if not propagating or delay is None:
                raise
            print(
                f"  the role cannot be assumed by Lambda yet (IAM propagation); retrying in {delay:g}s", file=sys.stderr
            )
            sleep(delay)
    raise AssertionError("unreachable")


def deploy(
    settings: Settings,
    function_zip: Path = DEFAULT_FUNCTION_ZIP,
    deps_layer_arn: str | None = None,
    model_layer_arn: str | None = None,
    *,
    clients: Clients,
) -> DeployResult:
    """Create or update the function, its alias and its event source mappings. Idempotent.

    Parameters
    ----------
    settings : Settings
    function_zip : Path
        The function code (``make function-zip``).
    deps_layer_arn : str, optional
        Default: the newest version of ``[layers] dependencies_name``.
    model_layer_arn : str, optional
        Default: the model layer the alias serves (releases move it, not deploy),
        else (nothing live yet) the newest version of ``[layers] model_name``.
    clients : Clients

    Returns
    -------
    DeployResult
        Nothing is created, updated or published when the function, the alias's
        version and the mappings already match: a second run makes no change.

    Raises
    ------
    ReleaseError
        If a layer is missing or does not fit, or an update fails.
    """
    lam, fn = clients.lambda_, settings.function
    function_zip = Path(function_zip)
    if not function_zip.is_file():
        raise ReleaseError(f"{function_zip} does not exist; build it with `make function-zip`")
    zip_sha256 = sha256_file(function_zip)
    code_sha = base64_sha256(zip_sha256)
    state = FunctionState.read(settings, clients)
    resume = state.latest is not None and refuse_if_unfinished(state, settings, clients, "deploy", None)
    if state.latest is not None:  # a second mapping of a stream delivers every record twice
        refuse_other_mappings(settings, lam, f"{state.function_arn}:{fn.alias}")
    config, live = state.latest, state.live

    pending_model = state.pending.target if resume and state.pending is not None else None
    model_arn = model_layer_arn or pending_model or state.live_layer(settings.layers.model_name)
    model_arn = model_arn or _latest_layer_version(lam, settings.layers.model_name)
    deps_arn = deps_layer_arn or _latest_layer_version(lam, settings.layers.dependencies_name)
    if deps_arn is None:
        raise ReleaseError(f"no {settings.layers.dependencies_name} layer published yet: run `make publish-deps-layer`")
    if model_arn is None:
        raise ReleaseError(f"no {settings.layers.model_name} layer published yet: run `make publish-model-layer`")
    # Check both layers against the function as it will be (runtime, architecture, region).
    target = {"FunctionName": fn.name, "Runtime": fn.runtime, "Architectures": [fn.architecture]}
    _, deps = check_layer(settings, target, LayerArn.parse(deps_arn), kind="deps", lam=lam)
    _, model = check_layer(settings, target, LayerArn.parse(model_arn), kind="model", lam=lam)
    problems = library_mismatches(model, deps)
    if problems:
        raise ReleaseError(
            f"model layer {model_arn} cannot run on dependencies layer {deps_arn}: " + "; ".join(problems)
        )

    # The live version's layer list (never $LATEST's) with the two layers of ours swapped.
    layers = replace_layers(
        layer_arns(live), {settings.layers.dependencies_name: deps_arn, settings.layers.model_name: model_arn}
    )
    desired = desired_configuration(settings, layers)
    # Uploads the zip to S3 first when it is over the direct upload limit.
    function_code = partial(
        code_location,
        function_zip,
        settings.layers.artifact_bucket,
        f"functions/{fn.name}/{zip_sha256}.zip",
        clients.s3,
        "function zip",
    )
    txn = Transaction(settings, clients, state, "deploy", model_arn, resume)
    changes: list[str] = []
    if config is None:
        created = create_function_when_role_ready(
            lam,
            FunctionName=fn.name,
            Code=function_code(),
            Architectures=[fn.architecture],
            Description="stream inference (make deploy)",
            Publish=False,
            Tags=txn.creation_tags(),
            **desired,
        )
        function_arn = str(created["FunctionArn"])
        wait_active(lam, fn.name)
        changes.append(f"created function {fn.name}")
    else:
        function_arn = state.function_arn
        code_changes = _code_diff(config, code_sha, fn.architecture)
        config_changes = _configuration_diff(config, desired)
        if code_changes or config_changes:
            txn.begin()
            if config.get("LastUpdateStatus") == "InProgress":
                wait_updated(lam, fn.name)
        if code_changes:
            update_and_wait(lam, "update_function_code", fn.name, Architectures=[fn.architecture], **function_code())
            changes += code_changes
        if config_changes:
            update_and_wait(lam, "update_function_configuration", fn.name, **desired)
            changes += config_changes

    stale = live is None or bool(_code_diff(live, code_sha, fn.architecture) or _configuration_diff(live, desired))
    version = None
    if changes or stale or txn.started:
        txn.begin()
        release = release_model(
            settings, clients, txn, model_arn=model_arn, model=model, code_sha=code_sha, function_arn=function_arn
        )
        version = release.version
    # Function-wide, not part of a version: applied before the mappings so that a new stream starts under the cap.
    changes += apply_reserved_concurrency(lam, fn.name, fn.reserved_concurrency)
    mapping_changes, warnings = deploy_mappings(settings, f"{function_arn}:{fn.alias}", clients=clients)
    return DeployResult(changes, version, mapping_changes, warnings)
