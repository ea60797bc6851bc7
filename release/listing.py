"""``make releases``: every release of the function, the model layer versions, and any unfinished release.

A release is a published function version: its description names the command and the model,
its layer list the model and dependencies layer versions, and those layers' descriptions the
runtime, architecture and library versions they were built for. Who released it comes from
the function's ``released-by`` tag (the live release) and the local history file (releases
made from this machine); elsewhere it is ``?``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from layers.deps_zip import TRACKED_LIBRARIES
from release.arns import find_layer
from release.aws import Clients, list_layer_versions
from release.descriptions import parse_description
from release.history import open_intents, read_history
from release.settings import Settings
from release.state import FunctionState


@dataclass
class Listing:
    """What :func:`releases` found.

    Attributes
    ----------
    releases : list of dict
        One row per published function version, newest first: ``live``, ``version``, ``action``,
        ``model``, ``model_version``, ``model_layer``, ``deps_layer``, ``runtimes``,
        ``architectures``, ``libraries``, ``when``, ``by``.
    layers : list of dict
        One row per model layer version, newest first: ``live``, ``version``, ``arn``, ``model``,
        ``model_version``, ``runtimes``, ``architectures``, ``scikit-learn``, ``libraries``,
        ``sha256`` (12 hex digits), ``created``.
    unfinished : list of str
        :meth:`release.state.FunctionState.report`, then commands this machine started and did not finish.
    caller : str
        Who is asking (STS ``GetCallerIdentity``).
    """

    releases: list[dict[str, Any]]
    layers: list[dict[str, Any]]
    unfinished: list[str]
    caller: str


def _number(arn: str | None) -> str:
    return arn.rsplit(":", 1)[-1] if arn else "-"


def _libraries(fields: dict[str, str]) -> str:
    return " ".join(f"{lib}={fields[lib]}" for lib in ("python", *TRACKED_LIBRARIES) if lib in fields)


def releases(settings: Settings, *, clients: Clients) -> Listing:
    """Read every release, every model layer version and any unfinished release (module docstring)."""
    lam, fn = clients.lambda_, settings.function
    caller = clients.caller()
    state = FunctionState.read(settings, clients, versions=True)
    layers = {
        v["LayerVersionArn"]: v
        for name in (settings.layers.model_name, settings.layers.dependencies_name)
        for v in list_layer_versions(lam, name)
    }
    live_model = state.live_layer(settings.layers.model_name)
    by_version = {str(r.get("version")): r.get("caller", "?") for r in read_history(settings.history.file)}
    if state.tags.get("release-version"):
        by_version[state.tags["release-version"]] = state.tags.get("released-by", "?")
    rows = []
    for version in sorted(state.versions or [], key=lambda v: -int(v["Version"])):
        number = str(version["Version"])
        model_arn = find_layer(version, settings.layers.model_name)
        deps_arn = find_layer(version, settings.layers.dependencies_name)
        action, described = parse_description(version.get("Description"))
        model_layer = layers.get(model_arn or "", {})
        _, fields = parse_description(model_layer.get("Description"))
        runtimes = set(model_layer.get("CompatibleRuntimes", [])) | set(
            layers.get(deps_arn or "", {}).get("CompatibleRuntimes", [])
        )
        live = "*" if number == state.alias_version else ""
        if live and state.weights:  # the alias splits: its own version gets the rest
            live = f"*{1 - sum(state.weights.values()):.0%}"
        if number in state.weights:
            live = f"{state.weights[number]:.0%}"
        rows.append(
            {
                "live": live,
                "version": number,
                "action": action or "?",
                "model": fields.get("name", described.get("model", "?")),
                "model_version": fields.get("version", described.get("version", "?")),
                "model_layer": _number(model_arn),
                "deps_layer": _number(deps_arn),
                "runtimes": ",".join(sorted(runtimes)) or str(version.get("Runtime", "?")),
                "architectures": ",".join(version.get("Architectures") or ["x86_64"]),
                "libraries": _libraries(fields) or "?",
                "when": str(version.get("LastModified", ""))[:19],
                "by": by_version.get(number, "?"),
            }
        )
    layer_rows = []
    for layer in list_layer_versions(lam, settings.layers.model_name):
        _, fields = parse_description(layer.get("Description"))
        layer_rows.append(
            {
                "live": "*" if layer["LayerVersionArn"] == live_model else "",
                "version": layer["Version"],
                "arn": layer["LayerVersionArn"],
                "model": fields.get("name", "?"),
                "model_version": fields.get("version", "?"),
                "runtimes": ",".join(layer.get("CompatibleRuntimes", [])) or "?",
                "architectures": ",".join(layer.get("CompatibleArchitectures", [])) or "?",
                "scikit-learn": fields.get("scikit-learn", "?"),
                "libraries": _libraries(fields) or "?",
                "sha256": fields.get("sha256", "?")[:12],
                "created": str(layer.get("CreatedDate", ""))[:19],
            }
        )
    layer_rows.sort(key=lambda row: -int(row["version"]))
    unfinished = state.report(settings, clients)
    for intent in open_intents(settings.history.file, fn.name):
        outcome = intent.get("outcome") or {}
        ended = (
            f"ended {outcome.get('result')} at {outcome.get('last_call') or 'its start'}"
            if outcome
            else "never recorded an end (killed?)"
        )
        unfinished.append(
            f"this machine: `{intent.get('command')}` (target {intent.get('target') or '-'}) started "
            f"{intent.get('time')} and {ended}"
        )
    return Listing(rows, layer_rows, unfinished, caller)


def _table(rows: list[dict[str, Any]], columns: tuple[str, ...]) -> list[str]:
    cells = [[str(row[c]) for c in columns] for row in rows]
    widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(columns)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths)).rstrip()]
    lines += ["  ".join(v.ljust(w) for v, w in zip(r, widths)).rstrip() for r in cells]
    return lines


def format_listing(listing: Listing, settings: Settings) -> str:
    """Plain text: the releases (``*`` marks the live one), the model layer versions, anything unfinished."""
    fn = settings.function
    lines = [f"releases of {fn.name} (alias {fn.alias}; you are {listing.caller})"]
    if any(row["live"].endswith("%") for row in listing.releases):
        lines.append(
            f"  {fn.alias} splits invocations by weight (RoutingConfig): "
            + ", ".join(
                f"version {row['version']} {row['live'].lstrip('*')}" for row in listing.releases if row["live"]
            )
        )
    if listing.releases:
        lines += _table(
            listing.releases,
            (
                "live",
                "version",
                "action",
                "model",
                "model_version",
                "model_layer",
                "deps_layer",
                "runtimes",
                "architectures",
                "libraries",
                "when",
                "by",
            ),
        )
    else:
        lines.append("  no version published yet (make deploy)")
    lines += ["", f"model layer versions ({settings.layers.model_name})"]
    if listing.layers:
        lines += _table(
            listing.layers,
            ("live", "version", "model", "model_version", "runtimes", "architectures", "libraries", "sha256", "arn"),
        )
    else:
        lines.append("  no model layer versions published yet (make publish-model-layer)")
    lines.append("")
    lines += listing.unfinished or ["no unfinished release"]
    return "\n".join(lines)
