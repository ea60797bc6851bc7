"""Releases: move the function and its alias to a model layer version, forward or back; list them.

A release rewrites the function's layer list with only the model layer's ARN replaced,
waits until Lambda has applied it, publishes a function version, moves the alias
(``[function] alias``, which the event source mappings invoke) to it and tags the
function (:mod:`release.history`). Rollback reads the published versions, not
the local history file, so it works from any machine.
"""

from __future__ import annotations

from typing import Any

from release.arns import LayerArn, find_layer, layer_arns, replace_layers
from release.aws import (
    Clients,
    call_with_retry,
    get_alias_configuration,
    get_alias_version,
    get_configuration,
    list_layer_versions,
    paginate,
    update_and_wait,
    wait_updated,
)
from release.compatibility import check_layer, deps_layer_fields
from release.descriptions import library_mismatches, parse_description, version_description
from release.errors import ReleaseError
from release.history import Release, append_history, release_tags
from release.settings import FunctionSettings, Settings


def _model_layer(lam: Any, settings: Settings, version: str | None) -> str | None:
    """The model layer ARN of a published version of the function (``None`` without a version)."""
    if not version:
        return None
    return find_layer(get_configuration(lam, settings.function.name, version), settings.layers.model_name)


def move_alias(lam: Any, fn: FunctionSettings, version: str, description: str) -> None:
    """Point ``[function] alias`` at ``version``, creating the alias if it does not exist yet."""
    if get_alias_version(lam, fn.name, fn.alias) is None:
        lam.create_alias(FunctionName=fn.name, Name=fn.alias, FunctionVersion=version, Description=description)
    else:
        lam.update_alias(FunctionName=fn.name, Name=fn.alias, FunctionVersion=version, Description=description)


def release_model(
    settings: Settings, clients: Clients, *, action: str, model_arn: str, model: dict[str, str]
) -> Release:
    """Publish a version of the settled function, move the alias to it, tag the function, log it.

    Parameters
    ----------
    settings : Settings
    clients : Clients
    action : str
        Recorded in the version description, the tags and the history.
    model_arn : str
        The model layer version the function now has.
    model : dict of str to str
        That layer's description fields (``name``, ``version``).

    Returns
    -------
    Release
        The new version, and the version and model layer ARN the alias had before;
        also appended to the history file.
    """
    lam, fn = clients.lambda_, settings.function
    previous = get_alias_version(lam, fn.name, fn.alias)
    previous_model = _model_layer(lam, settings, previous)
    latest = get_configuration(lam, fn.name) or {}
    description = version_description(action, model, model_arn)
    published = call_with_retry(
        lam,
        "publish_version",
        fn.name,
        Description=description,
        **({"CodeSha256": latest["CodeSha256"]} if latest.get("CodeSha256") else {}),
    )
    version = published["Version"]
    move_alias(lam, fn, version, description)
    lam.tag_resource(
        Resource=latest.get("FunctionArn") or published["FunctionArn"].rsplit(":", 1)[0],
        Tags=release_tags(action, version, model_arn, model),
    )
    release = Release(
        action, fn.name, fn.alias, version, model_arn, model.get("name"), model.get("version"), previous, previous_model
    )
    append_history(settings.history.file, release)
    return release


def relink(settings: Settings, layer_arn: str, *, clients: Clients, action: str = "relink") -> Release:
    """Switch the function's model layer to exactly ``layer_arn`` and move the alias to it.

    Checks first, changing nothing on failure: the ARN's format, that the version
    exists, that it is the model layer, that it lists the function's runtime and
    architecture, and that its library versions (scikit-learn above all) equal those
    of the dependencies layer attached to the function. Then rewrites the layer list
    (only the model layer's ARN changes), waits for the update, publishes a version,
    moves the alias, tags the function and appends to the history file.

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
        Why the layer cannot be used, or why the function cannot be updated.
    """
    lam, fn = clients.lambda_, settings.function
    arn = LayerArn.parse(layer_arn)
    config = get_configuration(lam, fn.name)
    if config is None:
        raise ReleaseError(f"function {fn.name} does not exist; create it with `make deploy`")
    _, model = check_layer(settings, config, arn, kind="model", lam=lam)
    problems = library_mismatches(model, deps_layer_fields(settings, config, lam))
    if problems:
        raise ReleaseError(
            f"layer version {arn} cannot serve with the function's dependencies layer: " + "; ".join(problems)
        )
    live_version, live_config = get_alias_configuration(lam, fn.name, fn.alias)
    current_layers = layer_arns(config)
    new_layers = replace_layers(current_layers, {settings.layers.model_name: str(arn)})
    if live_config is not None and new_layers == current_layers == layer_arns(live_config):
        return Release(
            action,
            fn.name,
            fn.alias,
            live_version or "",
            str(arn),
            model.get("name"),
            model.get("version"),
            live_version,
            str(arn),
            changed=False,
        )
    wait_updated(lam, fn.name)
    if new_layers != current_layers:
        update_and_wait(lam, "update_function_configuration", fn.name, Layers=new_layers)
    return release_model(settings, clients, action=action, model_arn=str(arn), model=model)


def rollback(settings: Settings, *, clients: Clients) -> Release:
    """Relink to the model layer that was live before the current one.

    The record is the function's published versions (they survive a lost laptop):
    every release publishes a version with its layer list, and versions are numbered
    in publication order. Starting below the version the alias points at, the first
    version whose model layer differs from the live one is the previous release;
    its layer version is relinked (and checked) like any other. Rolling back twice
    therefore returns to where you started.

    Raises
    ------
    ReleaseError
        If nothing is live, or no earlier version used another model layer.
    """
    lam, fn = clients.lambda_, settings.function
    live = get_alias_version(lam, fn.name, fn.alias)
    if live is None or not live.isdigit():
        raise ReleaseError(f"alias {fn.alias} of {fn.name} does not point at a published version; nothing to roll back")
    live_model = _model_layer(lam, settings, live)
    versions = [
        v
        for v in paginate(lam, "list_versions_by_function", "Versions", FunctionName=fn.name)
        if v["Version"].isdigit() and int(v["Version"]) < int(live)
    ]
    for version in sorted(versions, key=lambda v: int(v["Version"]), reverse=True):
        earlier = find_layer(version, settings.layers.model_name)
        if earlier and earlier != live_model:
            return relink(settings, earlier, clients=clients, action="rollback")
    raise ReleaseError(
        f"no version of {fn.name} before {live} used another model layer than {live_model}; "
        "relink explicitly: make relink LAYER_ARN=... (see make releases)"
    )


def releases(settings: Settings, *, clients: Clients) -> list[dict[str, Any]]:
    """Every model layer version, newest first, marking the one the alias serves.

    Returns
    -------
    list of dict
        ``version``, ``arn``, ``created``, ``model``, ``model_version``,
        ``scikit-learn``, ``sha256`` (first 12 hex digits), ``live`` (bool).
    """
    lam, fn = clients.lambda_, settings.function
    live_arn = _model_layer(lam, settings, get_alias_version(lam, fn.name, fn.alias))
    rows = []
    for layer in list_layer_versions(lam, settings.layers.model_name):
        _, fields = parse_description(layer.get("Description"))
        rows.append(
            {
                "version": layer["Version"],
                "arn": layer["LayerVersionArn"],
                "created": str(layer.get("CreatedDate", ""))[:19],
                "model": fields.get("name", "?"),
                "model_version": fields.get("version", "?"),
                "scikit-learn": fields.get("scikit-learn", "?"),
                "sha256": fields.get("sha256", "?")[:12],
                "live": layer["LayerVersionArn"] == live_arn,
            }
        )
    return sorted(rows, key=lambda row: row["version"], reverse=True)


def format_releases(rows: list[dict[str, Any]]) -> str:
    """A plain-text table of :func:`releases`; the live row is marked ``*``."""
    if not rows:
        return "no model layer versions published yet (make publish-model-layer)"
    columns = ("live", "version", "model", "model_version", "scikit-learn", "sha256", "created", "arn")
    cells = [[("*" if row["live"] else "") if c == "live" else str(row[c]) for c in columns] for row in rows]
    widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(columns)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths))]
    lines += ["  ".join(v.ljust(w) for v, w in zip(r, widths)).rstrip() for r in cells]
    return "\n".join(lines)
