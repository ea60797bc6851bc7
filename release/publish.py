"""Publish the dependencies and model layers: inline up to about 48.5 MiB (:mod:`release.upload`), else through S3.

Each layer version's description records what it holds (library versions, the model's
name and version, the zip's sha256; :mod:`release.descriptions`), so publishing
the same zip twice reuses the first version: a publish cut short is finished by running it
again. A model layer is released on publishing when the function exists
(:func:`release.relink.release_layer`), as one transaction whose target is the zip's sha256
(:mod:`release.transaction`): the function is tagged as under release before the layer is
published.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from inference.manifest import sha256_file

from layers.checks import UNZIPPED_LIMIT
from layers.deps_layer import DEFAULT_OUT as DEFAULT_DEPS_ZIP
from layers.deps_zip import LayerZipError, inspect_deps_zip
from layers.model_layer import DEFAULT_OUT as DEFAULT_MODEL_ZIP
from release.arns import LayerArn
from release.aws import Clients, list_layer_versions
from release.compatibility import deps_layer_fields
from release.descriptions import (
    DESCRIPTION_LIMIT,
    deps_description,
    library_mismatches,
    model_description,
    parse_description,
)
from release.errors import ReleaseError
from release.history import Release
from release.model_artifacts import move_artifacts_to_s3, placement
from release.model_zip import verify_model_zip
from release.relink import release_layer
from release.settings import Settings
from release.state import FunctionState, refuse_if_unfinished
from release.transaction import Transaction
from release.upload import base64_sha256, code_location

__all__ = [
    "DEFAULT_DEPS_ZIP",
    "DEFAULT_MODEL_ZIP",
    "PublishResult",
    "publish_deps_layer",
    "publish_candidate",
    "publish_layer",
    "publish_model_layer",
    "publish_or_reuse",
]


@dataclass
class PublishResult:
    """What a ``publish_*_layer`` call did.

    Attributes
    ----------
    layer_arn : str
        The layer version now carrying the zip.
    reused : bool
        True when a version with this exact description (same sha256, same library
        versions, same runtime and architecture) already existed, so nothing was published.
    release : Release or None
        The release that moved the function to it (model layer with a function only).
    """

    layer_arn: str
    reused: bool = False
    release: Release | None = None
    #: ``s3://...`` where the model's artifacts went, when they did not fit in the layer
    #: (:mod:`release.model_artifacts`); ``None`` for a model in its layer.
    artifacts_uri: str | None = None


def publish_layer(
    zip_path: Path,
    layer_name: str,
    description: str,
    runtime: str,
    arch: str,
    bucket: str | None,
    *,
    clients: Clients,
) -> dict[str, Any]:
    """Publish a layer version, inline when the zip fits the request (:mod:`release.upload`), else through S3.

    Parameters
    ----------
    zip_path : Path
        The layer zip.
    layer_name : str
        Layer name; each call adds an immutable version to it.
    description : str
        At most 256 characters (:func:`release.descriptions.format_description`).
    runtime, arch : str
        Recorded as the layer's only compatible runtime and architecture.
    bucket : str or None
        S3 bucket for zips over :data:`release.upload.DIRECT_UPLOAD_LIMIT` (key
        ``layers/NAME/SHA256.zip``, uploaded with a progress bar).
    clients : Clients

    Returns
    -------
    dict
        The ``PublishLayerVersion`` response (``LayerVersionArn``, ``Version``, ...).

    Raises
    ------
    ReleaseError
        If the zip is too large and no bucket is set, or Lambda stored other bytes.
    """
    zip_path = Path(zip_path)
    if not zip_path.is_file():
        raise ReleaseError(f"{zip_path} does not exist; build it first (make deps-layer / make model-layer)")
    if len(description) > DESCRIPTION_LIMIT:
        raise ReleaseError(f"layer description is {len(description)} characters; Lambda allows {DESCRIPTION_LIMIT}")
    sha = sha256_file(zip_path)
    content = code_location(zip_path, bucket, f"layers/{layer_name}/{sha}.zip", clients.s3, "layer zip")
    response = clients.lambda_.publish_layer_version(
        LayerName=layer_name,
        Description=description,
        Content=content,
        CompatibleRuntimes=[runtime],
        CompatibleArchitectures=[arch],
    )
    stored = response.get("Content", {}).get("CodeSha256")
    expected = base64_sha256(sha)
    if stored and stored != expected:
        raise ReleaseError(
            f"Lambda stored {response['LayerVersionArn']} with CodeSha256 {stored}, but {zip_path} has {expected}; "
            "delete that version (aws lambda delete-layer-version) and publish again"
        )
    published: dict[str, Any] = response
    return published


def _find_published(settings: Settings, layer_name: str, description: str, clients: Clients) -> str | None:
    """The version of ``layer_name`` with exactly this description, runtime and architecture, if any."""
    fn = settings.function
    for version in list_layer_versions(clients.lambda_, layer_name):
        if (
            version.get("Description") == description
            and fn.runtime in version.get("CompatibleRuntimes", [])
            and fn.architecture in version.get("CompatibleArchitectures", [])
        ):
            return str(version["LayerVersionArn"])
    return None


def _publish_once(
    settings: Settings, zip_path: Path, layer_name: str, description: str, clients: Clients
) -> PublishResult:
    """:func:`publish_layer` for the function's runtime and architecture, via its artifact bucket,
    unless a version with the same description already exists.

    The description holds the zip's sha256, so publishing the same zip twice reuses the
    first version instead of adding an identical one.
    """
    fn = settings.function
    existing = _find_published(settings, layer_name, description, clients)
    if existing is not None:
        return PublishResult(existing, reused=True)
    response = publish_layer(
        zip_path,
        layer_name,
        description,
        fn.runtime,
        fn.architecture,
        settings.layers.artifact_bucket,
        clients=clients,
    )
    return PublishResult(response["LayerVersionArn"])


def publish_or_reuse(
    settings: Settings, zip_path: Path, layer_name: str, description: str, clients: Clients
) -> PublishResult:
    """Publish ``zip_path`` as a version of ``layer_name`` for the function's runtime and architecture,
    unless a version with exactly this description (which holds the zip's sha256) exists: then that one."""
    return _publish_once(settings, zip_path, layer_name, description, clients)


def publish_deps_layer(settings: Settings, zip_path: Path = DEFAULT_DEPS_ZIP, *, clients: Clients) -> PublishResult:
    """Publish the dependencies layer; its description lists the library versions it serves.

    The zip's extension modules must be built for ``[function] runtime`` and
    ``architecture``. The function is not changed: ``make deploy`` attaches the newest
    dependencies layer version.

    Returns
    -------
    PublishResult
        The layer version ARN (an existing one if this very zip was published before).

    Raises
    ------
    ReleaseError
        If the zip's Python or CPU differ from the settings, or it has no scikit-learn.
    """
    fn = settings.function
    try:
        info = inspect_deps_zip(zip_path)
    except LayerZipError as exc:
        raise ReleaseError(str(exc)) from None
    want_python = fn.runtime.removeprefix("python")
    if info.get("python", want_python) != want_python:
        raise ReleaseError(
            f"{zip_path} holds extension modules for Python {info['python']}, but [function] runtime is "
            f"{fn.runtime}; rebuild with `make deps-layer RUNTIME={fn.runtime}` or change the runtime in deploy.toml"
        )
    if info.get("arch", fn.architecture) != fn.architecture:
        raise ReleaseError(
            f"{zip_path} holds {info['arch']} extension modules, but [function] architecture is "
            f"{fn.architecture}; rebuild with `make deps-layer ARCH={fn.architecture}` or change deploy.toml"
        )
    description = deps_description(want_python, info, sha256_file(zip_path))
    return _publish_once(settings, zip_path, settings.layers.dependencies_name, description, clients)


def publish_candidate(
    settings: Settings,
    zip_path: Path,
    action: str,
    *,
    clients: Clients,
    check: Callable[[FunctionState, bool], None] | None = None,
    function_zip: Path | None = None,
    deps_zip: Path | None = None,
    limit: int | None = None,
) -> tuple[Transaction | None, PublishResult]:
    """Verify a model layer zip, check it against the live function and publish it, inside release ``action``.

    Every artifact's sha256 must equal the manifest's; with a function, the model's library versions
    must equal its dependencies layer's (checked *before* publishing), no other release may be
    unfinished, and the function is tagged as under release before the layer is published (unless
    the alias already serves that very layer). A zip published before is not published again.
    Given the ``function_zip`` and ``deps_zip`` it will run with, a model whose artifacts would push
    the function over ``limit`` bytes unzipped (default :data:`layers.checks.UNZIPPED_LIMIT`,
    Lambda's) has them uploaded to S3 and a layer with just the manifest (+ golden predictions and
    code) published instead (:mod:`release.model_artifacts`; the result's ``artifacts_uri`` says where).

    Parameters
    ----------
    action : str
        The release (``publish-model-layer``, ``canary``): the transaction's action.
    check : callable, optional
        Called with the function's state and whether this re-runs an unfinished release, before
        anything is changed; raises to refuse.
    function_zip, deps_zip : Path, optional
        The zips the model will run with, for the 250 MB unzipped check.
    limit : int, optional
        The unzipped limit in bytes (tests lower it).

    Returns
    -------
    tuple
        The transaction (``None`` when the function does not exist: the layer is only published) and
        the layer version.

    Raises
    ------
    ReleaseError
        On an unverified zip, a library mismatch, or another unfinished release.
    """
    lam, fn = clients.lambda_, settings.function
    manifest = verify_model_zip(zip_path)
    artifacts_uri = None
    if function_zip is not None and deps_zip is not None:
        placed = placement(function_zip, deps_zip, zip_path, UNZIPPED_LIMIT if limit is None else limit)
        if placed.in_s3:
            artifacts_uri, zip_path = move_artifacts_to_s3(settings, zip_path, clients.s3)
            manifest = verify_model_zip(zip_path)
    zip_sha256 = sha256_file(zip_path)
    description = model_description(manifest, zip_sha256)
    state = FunctionState.read(settings, clients)
    if state.latest is None:
        result = _publish_once(settings, zip_path, settings.layers.model_name, description, clients)
        result.artifacts_uri = artifacts_uri
        return None, result
    target = f"sha256={zip_sha256}"
    resume = refuse_if_unfinished(state, settings, clients, action, target)
    if check is not None:
        check(state, resume)
    base = state.live or state.latest
    problems = library_mismatches(parse_description(description)[1], deps_layer_fields(settings, base, lam))
    if problems:
        raise ReleaseError(
            f"model {manifest['name']} {manifest['version']} cannot run on function {fn.name}'s dependencies "
            "layer: " + "; ".join(problems) + ". Retrain with the pinned requirements, or publish and deploy "
            "a dependencies layer built from the model's versions"
        )
    txn = Transaction(settings, clients, state, action, target, resume)
    existing = _find_published(settings, settings.layers.model_name, description, clients)
    if existing is None or existing != state.live_layer(settings.layers.model_name):
        txn.begin()  # before the layer is published: an interrupted publish is visible in AWS
    if existing is not None:
        result = PublishResult(existing, reused=True)
    else:
        published = publish_layer(
            zip_path,
            settings.layers.model_name,
            description,
            fn.runtime,
            fn.architecture,
            settings.layers.artifact_bucket,
            clients=clients,
        )
        result = PublishResult(str(published["LayerVersionArn"]))
    result.artifacts_uri = artifacts_uri
    return txn, result


def publish_model_layer(
    settings: Settings,
    zip_path: Path = DEFAULT_MODEL_ZIP,
    *,
    clients: Clients,
    function_zip: Path | None = None,
    deps_zip: Path | None = None,
    limit: int | None = None,
) -> PublishResult:
    """Verify, publish and release a model layer zip, all at once (:func:`publish_candidate`).

    If the function exists, :func:`release.relink.release_layer` then moves the function and alias
    to the new version; without a function the layer is only published (``make deploy`` attaches it).
    A zip published before is not published again: its version is relinked. ``function_zip``,
    ``deps_zip`` and ``limit``: the 250 MB unzipped check (:func:`publish_candidate`).

    Raises
    ------
    ReleaseError
        On an unverified zip, a library mismatch, another unfinished release, or a failed
        release step.
    """
    txn, result = publish_candidate(
        settings,
        zip_path,
        "publish-model-layer",
        clients=clients,
        function_zip=function_zip,
        deps_zip=deps_zip,
        limit=limit,
    )
    if txn is not None:
        result.release = release_layer(settings, clients, txn, LayerArn.parse(result.layer_arn))
    return result
