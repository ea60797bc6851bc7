"""Releases: move the function and its alias to a model layer version, forward or back.

What is live is the alias's version, never ``$LATEST``. A release starts from the live
version's configuration (its layer list above all), replaces only the model layer's ARN,
stages that in ``$LATEST``, waits until Lambda has applied it, publishes a function version
(``CodeSha256`` of the live code: Lambda refuses if other code was staged meanwhile), waits until
that version is ``Active`` (SnapStart takes its snapshot then), moves the
alias (``[function] alias``, which the event source mappings invoke) to it and tags the
function (:mod:`release.history`). Each release is a :class:`release.transaction.Transaction`:
another release left unfinished is finished by re-running it, or undone, never released by
this one (:func:`release.state.refuse_if_unfinished`). Rollback reads the published versions,
not the local history file, so it works from any machine.
"""

from __future__ import annotations

from typing import Any

from release.arns import LayerArn, find_layer, layer_arns, replace_layers
from release.aws import (
    Clients,
    call_with_retry,
    get_configuration,
    update_and_wait,
    wait_updated,
    wait_version_active,
)
from release.compatibility import check_layer, deps_layer_fields
from release.descriptions import library_mismatches, parse_description, version_description
from release.errors import ReleaseError
from release.history import Release, append_history, open_intents, release_tags
from release.settings import FunctionSettings, Settings
from release.state import FunctionState, refuse_if_unfinished
from release.transaction import Transaction, configuration_of


def _model_layer(lam: Any, settings: Settings, version: str | None) -> str | None:
    """The model layer ARN of a published version of the function (``None`` without a version)."""
    if not version:
        return None
    return find_layer(get_configuration(lam, settings.function.name, version), settings.layers.model_name)


#: ``RoutingConfig`` of an alias that sends every invocation to its version. ``UpdateAlias`` without it
#: keeps whatever weights the alias had: a release would then serve its model to only part of the stream.
NO_WEIGHTS: dict[str, Any] = {"AdditionalVersionWeights": {}}


def move_alias(lam: Any, fn: FunctionSettings, version: str, description: str, *, exists: bool) -> None:
    """Point ``[function] alias`` at ``version`` alone (weights cleared), creating the alias if it does not exist yet."""
    if exists:
        lam.update_alias(
            FunctionName=fn.name,
            Name=fn.alias,
            FunctionVersion=version,
            Description=description,
            RoutingConfig=NO_WEIGHTS,
        )
    else:
        lam.create_alias(FunctionName=fn.name, Name=fn.alias, FunctionVersion=version, Description=description)


def release_model(
    settings: Settings,
    clients: Clients,
    txn: Transaction,
    *,
    model_arn: str,
    model: dict[str, str],
    code_sha: str | None,
    function_arn: str,
) -> Release:
    """Publish a version of the settled ``$LATEST``, move the alias to it, tag the function, log it.

    Parameters
    ----------
    settings : Settings
    clients : Clients
    txn : Transaction
        The release under way (begun); its action is recorded in the version description,
        the tags and the history, and it is finished here.
    model_arn : str
        The model layer version ``$LATEST`` now has.
    model : dict of str to str
        That layer's description fields (``name``, ``version``).
    code_sha : str or None
        The ``CodeSha256`` the version must have (Lambda refuses to publish other code).
    function_arn : str
        The function's unqualified ARN (tagged).

    Returns
    -------
    Release
        The new version, and the version and model layer ARN the alias had before;
        also appended to the history file.
    """
    lam, fn, state = clients.lambda_, settings.function, txn.state
    previous = txn.from_version
    previous_model = (
        state.live_layer(settings.layers.model_name)
        if previous == state.alias_version
        else _model_layer(lam, settings, previous)
    )
    description = version_description(txn.action, model, model_arn)
    published = call_with_retry(
        lam, "publish_version", fn.name, Description=description, **({"CodeSha256": code_sha} if code_sha else {})
    )
    version = str(published["Version"])
    wait_version_active(lam, fn.name, version)  # a SnapStart version is Pending until its snapshot is taken
    move_alias(lam, fn, version, description, exists=state.alias is not None)
    txn.finish(function_arn, release_tags(txn.action, version, model_arn, model, txn.caller))
    release = Release(
        txn.action,
        fn.name,
        fn.alias,
        version,
        model_arn,
        model.get("name"),
        model.get("version"),
        previous,
        previous_model,
        caller=txn.caller,
        ended_split=state.weights,
    )
    append_history(settings.history.file, release)
    return release


def check_model_layer(settings: Settings, base: dict[str, Any], arn: LayerArn, lam: Any) -> dict[str, str]:
    """Check a model layer version against the function as ``base`` configures it; its description fields.

    Raises
    ------
    ReleaseError
        If it does not fit, or its library versions differ from the dependencies layer's in ``base``.
    """
    _, model = check_layer(settings, base, arn, kind="model", lam=lam)
    problems = library_mismatches(model, deps_layer_fields(settings, base, lam))
    if problems:
        raise ReleaseError(
            f"layer version {arn} cannot serve with the function's dependencies layer: " + "; ".join(problems)
        )
    return model


def release_layer(settings: Settings, clients: Clients, txn: Transaction, arn: LayerArn) -> Release:
    """Release model layer version ``arn`` on top of the live version (module docstring).

    Changes nothing when the alias already serves it and ``$LATEST`` equals the live version,
    unless ``txn`` is finishing an unfinished release.

    Raises
    ------
    ReleaseError
        If the layer does not fit, or ``$LATEST`` holds code the alias does not serve.
    """
    lam, fn, state = clients.lambda_, settings.function, txn.state
    if state.latest is None:
        raise ReleaseError(f"function {fn.name} does not exist; create it with `make deploy`")
    base = state.live or state.latest
    model = check_model_layer(settings, base, arn, lam)
    new_layers = replace_layers(layer_arns(base), {settings.layers.model_name: str(arn)})
    return release_layers(settings, clients, txn, new_layers, str(arn), model)


def refuse_unreleased_code(function_name: str, state: FunctionState) -> None:
    """Refuse a release while ``$LATEST`` holds code the live version does not run (a deploy cut short)."""
    base = state.live or state.latest or {}
    latest_code, live_code = (state.latest or {}).get("CodeSha256"), base.get("CodeSha256")
    if latest_code != live_code:
        raise ReleaseError(
            f"$LATEST of {function_name} holds code {latest_code}, but the live version "
            f"{state.alias_version} runs {live_code}: a deploy did not finish. Run `make deploy` to release the code "
            "in build/function.zip, then release the model; nothing was changed"
        )


def stage_configuration(lam: Any, function_name: str, latest: dict[str, Any] | None, desired: dict[str, Any]) -> None:
    """Give ``$LATEST`` the configuration ``desired`` (waiting out an update in progress), unless it has it."""
    if latest is not None and configuration_of(latest) == desired:
        return
    if (latest or {}).get("LastUpdateStatus") == "InProgress":
        wait_updated(lam, function_name)
    update_and_wait(lam, "update_function_configuration", function_name, **desired)


def release_layers(
    settings: Settings, clients: Clients, txn: Transaction, layers: list[str], model_arn: str, model: dict[str, str]
) -> Release:
    """Release the live version's configuration with ``layers`` (the model layer ``model_arn`` among them):
    stage ``$LATEST``, publish a version, move the alias (:func:`release_model`).

    Changes nothing when the alias already serves exactly ``layers`` (ending a weighted split if
    there is one), unless ``txn`` is finishing an unfinished release.
    """
    lam, fn, state = clients.lambda_, settings.function, txn.state
    assert state.latest is not None
    base = state.live or state.latest
    if not txn.started and state.live is not None and layer_arns(state.live) == layers:
        if state.weights:  # served, but only in part: end the split
            move_alias(lam, fn, state.alias_version or "", f"{txn.action}: end the split", exists=True)
        version = state.alias_version or ""
        return Release(
            txn.action,
            fn.name,
            fn.alias,
            version,
            model_arn,
            model.get("name"),
            model.get("version"),
            version,
            model_arn,
            changed=False,
            ended_split=state.weights,
        )
    refuse_unreleased_code(fn.name, state)
    txn.begin()
    stage_configuration(lam, fn.name, state.latest, {**configuration_of(base), "Layers": layers})
    return release_model(
        settings,
        clients,
        txn,
        model_arn=model_arn,
        model=model,
        code_sha=base.get("CodeSha256"),
        function_arn=state.function_arn,
    )


def relink(settings: Settings, layer_arn: str, *, clients: Clients, action: str = "relink") -> Release:
    """Switch the function's model layer to exactly ``layer_arn`` and move the alias to it.

    Checks first, changing nothing on failure: the ARN's format, that the version
    exists, that it is the model layer, that it lists the function's runtime and
    architecture, that its library versions (scikit-learn above all) equal those
    of the dependencies layer the live version has, and that no other release is
    unfinished. Then stages the live version's configuration with only the model
    layer's ARN replaced, waits for the update, publishes a version, moves the alias,
    tags the function and appends to the history file. Re-running a relink that did
    not finish finishes it.

    Parameters
    ----------
    settings : Settings
    layer_arn : str
        ``arn:aws:lambda:REGION:ACCOUNT:layer:NAME:N``, forward or back.
    clients : Clients
    action : str
        Recorded in the history and the version description.

    Returns
    -------
    Release
        ``changed`` is false when the alias already served that layer.

    Raises
    ------
    ReleaseError
        Why the layer cannot be used, or why the function cannot be updated
        (:class:`release.state.UnfinishedRelease` when another release is unfinished).
    """
    arn = LayerArn.parse(layer_arn)
    state = FunctionState.read(settings, clients)
    if state.latest is None:
        raise ReleaseError(f"function {settings.function.name} does not exist; create it with `make deploy`")
    resume = refuse_if_unfinished(state, settings, clients, action, str(arn))
    return release_layer(settings, clients, Transaction(settings, clients, state, action, str(arn), resume), arn)


def _rollback_completed_unconfirmed(settings: Settings, state: FunctionState) -> bool:
    """Did this machine's last rollback fail only after AWS had finished it (the answer to its last call lost)?

    AWS then holds no trace of anything unfinished, and a second rollback would roll the first back;
    the local journal says it was tried, the release tags that it went through after that.
    """
    tried = [i for i in open_intents(settings.history.file, settings.function.name) if i.get("outcome")]
    if not tried or tried[-1].get("command") != "rollback":
        return False
    tags = state.tags
    return (
        tags.get("release-action") == "rollback"
        and tags.get("release-version") == state.alias_version
        and tags.get("released-at", "") >= str(tried[-1].get("time", "~"))
    )


def rollback(settings: Settings, *, clients: Clients) -> Release:
    """Relink to the model layer that was live before the current one.

    The record is the function's published versions (they survive a lost laptop):
    every release publishes a version with its layer list, and versions are numbered
    in publication order. Starting below the version the alias points at, the first
    version whose model layer differs from the live one is the previous release;
    its layer version is relinked (and checked) like any other. Rolling back twice
    therefore returns to where you started. A rollback that did not finish is finished
    by running it again: it goes to the layer it set out for, not one further back.

    Raises
    ------
    ReleaseError
        If nothing is live, no earlier version used another model layer, or another
        release is unfinished.
    """
    fn = settings.function
    state = FunctionState.read(settings, clients, versions=True)
    live = state.alias_version
    if state.latest is None or live is None or not live.isdigit():
        raise ReleaseError(f"alias {fn.alias} of {fn.name} does not point at a published version; nothing to roll back")
    resume = refuse_if_unfinished(state, settings, clients, "rollback", None)
    if not resume and _rollback_completed_unconfirmed(settings, state):
        served = state.live_layer(settings.layers.model_name) or ""
        _, fields = parse_description(state.live.get("Description") if state.live else None)
        return Release(
            "rollback", fn.name, fn.alias, live, served, fields.get("model"), fields.get("version"),
            live, served, changed=False,
        )  # fmt: skip
    if resume and state.pending is not None:
        target = state.pending.target
    else:
        live_model = state.live_layer(settings.layers.model_name)
        earlier = [v for v in state.versions or [] if int(v["Version"]) < int(live)]
        found = (find_layer(v, settings.layers.model_name) for v in sorted(earlier, key=lambda v: -int(v["Version"])))
        previous = next((arn for arn in found if arn and arn != live_model), None)
        if previous is None:
            raise ReleaseError(
                f"no version of {fn.name} before {live} used another model layer than {live_model}; "
                "relink explicitly: make relink LAYER_ARN=... (see make releases)"
            )
        target = previous
    txn = Transaction(settings, clients, state, "rollback", target, resume)
    return release_layer(settings, clients, txn, LayerArn.parse(target))
