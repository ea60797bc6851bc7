"""Does a layer version fit the function? Checked before anything is changed.

A layer version fits when it exists, is the layer ``deploy.toml`` names for its kind,
is in the function's region, lists the function's runtime and architecture, and carries
a description of its kind. A model layer must also have the library versions of the
dependencies layer beside it (:func:`release.descriptions.library_mismatches`).
"""

from __future__ import annotations

from typing import Any

from release.arns import LayerArn, find_layer
from release.aws import error_code
from release.descriptions import parse_description
from release.errors import ReleaseError
from release.settings import Settings


def get_layer_version(lam: Any, arn: LayerArn) -> dict[str, Any]:
    """The ``GetLayerVersion`` response for a layer version.

    Asks by layer ARN and number, which also works across accounts (moto lacks
    ``GetLayerVersionByArn``).

    Raises
    ------
    ReleaseError
        If the version does not exist or may not be read.
    """
    try:
        found: dict[str, Any] = lam.get_layer_version(LayerName=arn.layer_arn, VersionNumber=arn.version)
        return found
    except Exception as exc:
        code = error_code(exc)
        if code == "ResourceNotFoundException":
            raise ReleaseError(
                f"layer version {arn} does not exist (never published, or deleted); `make releases` lists "
                "the model layer's versions"
            ) from None
        if code == "AccessDeniedException":
            raise ReleaseError(
                f"not allowed to read layer version {arn} ({exc}); check its layer permissions"
            ) from None
        raise


def check_layer(
    settings: Settings, config: dict[str, Any], arn: LayerArn, *, kind: str, lam: Any
) -> tuple[dict[str, Any], dict[str, str]]:
    """Check that a layer version exists and suits the function.

    Parameters
    ----------
    settings : Settings
    config : dict
        The function's configuration, or the one it is about to get: ``FunctionName``,
        ``Runtime`` and ``Architectures`` are read. The region is the client's.
    arn : LayerArn
    kind : {"model", "deps"}
        Which layer it must be: its name must be ``[layers] model_name`` or
        ``dependencies_name``, and its description must be of that kind.
    lam : botocore client

    Returns
    -------
    tuple
        The ``GetLayerVersion`` response and the parsed description fields.

    Raises
    ------
    ReleaseError
        Listing every reason the layer does not fit.
    """
    expected_name = settings.layers.model_name if kind == "model" else settings.layers.dependencies_name
    key = "model_name" if kind == "model" else "dependencies_name"
    if arn.name != expected_name:
        raise ReleaseError(
            f"{arn} is layer {arn.name!r}, not the {kind} layer {expected_name!r} ([layers] {key} in deploy.toml)"
        )
    region = lam.meta.region_name
    if arn.region != region:
        raise ReleaseError(f"{arn} is in {arn.region}; function {config['FunctionName']} is in {region}")
    version = get_layer_version(lam, arn)
    runtime = config.get("Runtime")
    arch = (config.get("Architectures") or ["x86_64"])[0]
    problems = []
    if runtime not in version.get("CompatibleRuntimes", []):
        problems.append(
            f"its compatible runtimes {version.get('CompatibleRuntimes', [])} do not include the function's {runtime}"
        )
    if arch not in version.get("CompatibleArchitectures", []):
        problems.append(
            f"its compatible architectures {version.get('CompatibleArchitectures', [])} do not include "
            f"the function's {arch}"
        )
    found_kind, fields = parse_description(version.get("Description"))
    if found_kind != kind:
        problems.append(f"its description {version.get('Description', '')!r} is not a {kind} layer description")
    if problems:
        raise ReleaseError(
            f"layer version {arn} does not fit function {config['FunctionName']}: " + "; ".join(problems)
        )
    return version, fields


def deps_layer_fields(settings: Settings, config: dict[str, Any], lam: Any) -> dict[str, str]:
    """The description fields of the dependencies layer attached to the function, once checked.

    Raises
    ------
    ReleaseError
        If no dependencies layer is attached, or the attached one does not fit.
    """
    arn = find_layer(config, settings.layers.dependencies_name)
    if arn is None:
        raise ReleaseError(
            f"function {config['FunctionName']} has no {settings.layers.dependencies_name} layer attached, so the "
            "model's library versions cannot be checked; run `make publish-deps-layer deploy` first"
        )
    return check_layer(settings, config, LayerArn.parse(arn), kind="deps", lam=lam)[1]
