"""Shadow rollouts: attach a candidate model beside the live one, then promote or reject it.

A candidate is a model layer whose files sit under ``candidate/`` (``/opt/candidate`` on Lambda,
``make model-layer`` with ``--layer-dir candidate``), published as a version of its own layer,
``[layers] model_name`` + ``-candidate`` (:func:`candidate_layer_name`). The function then has
three layers: dependencies, model, candidate; it serves the live model and scores every batch
with the candidate too, writing the candidate's results only to the shadow destination
(:mod:`inference.shadow`).

Three release commands, each a :class:`release.transaction.Transaction` like every release
(docs/release-transactions.md: interruptible, finished by re-running it, undone by
``make release-abort``):

``shadow`` (``make publish-model-layer STRATEGY=shadow``)
    publishes the model twice, or reuses versions with the same zip: as a model layer version
    (``model/``, not attached: what ``promote`` will release) and as a candidate layer version
    (``candidate/``), whose description records the model layer version
    (``promote=N``); then attaches the candidate to the live version's layer list (replacing
    any candidate already there), publishes a function version and moves the alias. The live
    model layer is not changed.
``promote`` (``make promote``)
    the normal release of the candidate's model: the live version's layers with the model layer
    replaced by the version the candidate records and the candidate detached.
``reject`` (``make reject``)
    the live version's layers without the candidate.

A relink, a rollback or a deploy while a candidate is attached keeps it (they replace only
their own layers); a rollback after a promote goes back to the model before it, without the
candidate.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from inference.manifest import sha256_file

from release.arns import LayerArn, layer_arns, layer_name, replace_layers
from release.aws import Clients
from release.compatibility import deps_layer_fields, get_layer_version
from release.descriptions import format_description, library_mismatches, model_description, parse_description
from release.errors import ReleaseError
from release.history import Release
from release.model_zip import verify_model_zip
from release.publish import publish_or_reuse
from release.relink import check_model_layer, release_layers
from release.settings import Settings
from release.state import FunctionState, refuse_if_unfinished
from release.transaction import Transaction

#: The folder a candidate layer's files sit under (``/opt/candidate``).
CANDIDATE_PREFIX = "candidate/"
#: The candidate layer zip ``make candidate-layer`` builds.
DEFAULT_CANDIDATE_ZIP = Path(__file__).resolve().parents[1] / "build" / "layers" / "candidate-layer.zip"


def candidate_layer_name(settings: Settings) -> str:
    """The candidate layer's name: ``[layers] model_name`` + ``-candidate``."""
    return f"{settings.layers.model_name}-candidate"


def candidate_description(model_zip_description: str, candidate_sha256: str, model_layer_version: int) -> str:
    """A candidate layer version's description: the model's fields, its own zip's sha256, and
    ``promote=N``, the model layer version that carries the same model."""
    _, fields = parse_description(model_zip_description)
    fields = {**fields, "sha256": candidate_sha256, "promote": str(model_layer_version)}
    return format_description("candidate", fields)


def _live_model(settings: Settings, state: FunctionState, lam: Any) -> tuple[str, dict[str, str]]:
    """The live model layer's ARN and description fields."""
    arn = state.live_layer(settings.layers.model_name)
    if arn is None or state.live is None:
        raise ReleaseError(
            f"{settings.function.name}:{settings.function.alias} serves no {settings.layers.model_name} layer: "
            "a shadow compares a candidate with the live model; release one first (`make publish-model-layer`)"
        )
    return arn, parse_description(get_layer_version(lam, LayerArn.parse(arn)).get("Description"))[1]


def publish_shadow(
    settings: Settings, model_zip: Path, candidate_zip: Path = DEFAULT_CANDIDATE_ZIP, *, clients: Clients
) -> tuple[str, Release]:
    """Publish a candidate and attach it beside the live model (module docstring, ``shadow``).

    Parameters
    ----------
    model_zip : Path
        The model layer zip (``model/``) of the candidate's model.
    candidate_zip : Path
        The same model packaged under ``candidate/``.

    Returns
    -------
    (candidate layer version ARN, release)

    Raises
    ------
    ReleaseError
        On an unverified zip, two zips of different models, no live model, a library mismatch
        with the dependencies layer, or another unfinished release.
    """
    lam, fn = clients.lambda_, settings.function
    manifest = verify_model_zip(model_zip)
    if verify_model_zip(candidate_zip, CANDIDATE_PREFIX) != manifest:
        raise ReleaseError(
            f"{candidate_zip} and {model_zip} hold different models; build both from the same MODEL_SRC "
            "(`make publish-model-layer STRATEGY=shadow` does)"
        )
    candidate_sha = sha256_file(candidate_zip)
    target = f"sha256={candidate_sha}"
    state = FunctionState.read(settings, clients)
    if state.latest is None:
        raise ReleaseError(f"function {fn.name} does not exist; create it with `make deploy` first")
    resume = refuse_if_unfinished(state, settings, clients, "shadow", target)
    live_arn, live_model = _live_model(settings, state, lam)
    assert state.live is not None  # _live_model refuses otherwise
    model_text = model_description(manifest, sha256_file(model_zip))
    problems = library_mismatches(parse_description(model_text)[1], deps_layer_fields(settings, state.live, lam))
    if problems:
        raise ReleaseError(
            f"candidate {manifest['name']} {manifest['version']} cannot run on {fn.name}'s dependencies layer: "
            + "; ".join(problems)
        )
    txn = Transaction(settings, clients, state, "shadow", target, resume)
    attached = attached_candidate(settings, state)
    if not resume and attached is not None:
        _, fields = parse_description(get_layer_version(lam, LayerArn.parse(attached)).get("Description"))
        if fields.get("sha256") == candidate_sha:  # this very candidate is attached already
            return attached, release_layers(settings, clients, txn, layer_arns(state.live), live_arn, live_model)
    txn.begin()  # before anything is published: an interrupted shadow is visible in AWS
    model_arn = publish_or_reuse(settings, model_zip, settings.layers.model_name, model_text, clients).layer_arn
    description = candidate_description(model_text, candidate_sha, LayerArn.parse(model_arn).version)
    candidate_arn = publish_or_reuse(
        settings, candidate_zip, candidate_layer_name(settings), description, clients
    ).layer_arn
    layers = replace_layers(layer_arns(state.live), {candidate_layer_name(settings): candidate_arn})
    return candidate_arn, release_layers(settings, clients, txn, layers, live_arn, live_model)


def attached_candidate(settings: Settings, state: FunctionState) -> str | None:
    """The candidate layer version the live version has, if any."""
    return state.live_layer(candidate_layer_name(settings))


def promote(settings: Settings, *, clients: Clients) -> Release:
    """Release the attached candidate's model as the live model, detaching the candidate.

    Raises
    ------
    ReleaseError
        When no candidate is attached, its description names no model layer version, that version
        does not fit, or another release is unfinished.
    """
    lam, fn = clients.lambda_, settings.function
    state = FunctionState.read(settings, clients)
    if state.latest is None:
        raise ReleaseError(f"function {fn.name} does not exist; nothing to promote")
    resume = refuse_if_unfinished(state, settings, clients, "promote", None)
    if resume and state.pending is not None:
        model_arn = LayerArn.parse(state.pending.target)  # the alias may have moved already
    else:
        candidate = attached_candidate(settings, state)
        if candidate is None:
            raise ReleaseError(
                f"{fn.name}:{fn.alias} has no candidate attached; attach one with "
                "`make publish-model-layer STRATEGY=shadow`"
            )
        arn = LayerArn.parse(candidate)
        kind, fields = parse_description(get_layer_version(lam, arn).get("Description"))
        if kind != "candidate" or not fields.get("promote", "").isdigit():
            raise ReleaseError(
                f"candidate layer version {arn} records no model layer version (description "
                f"{kind} {fields}); publish it with `make publish-model-layer STRATEGY=shadow`"
            )
        model_arn = LayerArn(arn.partition, arn.region, arn.account, settings.layers.model_name, int(fields["promote"]))
    base = state.live or state.latest
    model = check_model_layer(settings, base, model_arn, lam)
    layers = [
        a
        for a in replace_layers(layer_arns(base), {settings.layers.model_name: str(model_arn)})
        if layer_name(a) != candidate_layer_name(settings)
    ]
    txn = Transaction(settings, clients, state, "promote", str(model_arn), resume)
    return release_layers(settings, clients, txn, layers, str(model_arn), model)


def reject(settings: Settings, *, clients: Clients) -> Release:
    """Detach the candidate; the live model stays. Changes nothing when none is attached.

    Raises
    ------
    ReleaseError
        When another release is unfinished.
    """
    lam, fn = clients.lambda_, settings.function
    state = FunctionState.read(settings, clients)
    if state.latest is None:
        raise ReleaseError(f"function {fn.name} does not exist; nothing to reject")
    candidate = attached_candidate(settings, state)
    resume = refuse_if_unfinished(state, settings, clients, "reject", None)
    target = state.pending.target if resume and state.pending is not None else candidate or "none"
    live_arn, live_model = _live_model(settings, state, lam)
    layers = [a for a in layer_arns(state.live) if layer_name(a) != candidate_layer_name(settings)]
    txn = Transaction(settings, clients, state, "reject", target, resume)
    return release_layers(settings, clients, txn, layers, live_arn, live_model)
