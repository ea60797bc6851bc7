"""What AWS holds for the function, and whether a release on it is unfinished.

AWS is the ground truth; the local journal (:mod:`release.history`) only adds what this
machine intended. Three things in AWS tell a finished release from an unfinished one:

* The alias (``[function] alias``) is what is live: its version, and its ``RoutingConfig``
  weights if it splits traffic. ``$LATEST`` is only a staging area.
* ``$LATEST`` equals the alias's version when no release is under way: same code
  (``CodeSha256``), runtime, architecture, handler, role, memory, timeout, environment and
  layer list (:func:`managed_differences`). A difference means a release staged a change and
  did not publish it, or someone changed the function by hand.
* The function's ``release-pending*`` tags (:class:`Pending`), written before a release
  command's first change to the function and removed after its last: which command, its
  target (a layer version ARN, a model zip's sha256), the alias version it started from,
  when and by whom. While they are there, versions newer than that one belong to the
  unfinished release.

:class:`FunctionState` reads all of it with four or five calls; :meth:`FunctionState.report`
says in plain words what state AWS is in (layer published? ``$LATEST`` changed? version
published? alias moved?) and what to run.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from release.arns import find_layer, layer_arns
from release.aws import Clients, get_alias, get_configuration, list_layer_versions, paginate
from release.descriptions import parse_description
from release.errors import ReleaseError
from release.history import tag_value
from release.settings import Settings

PENDING_ACTION, PENDING_FROM, PENDING_TARGET, PENDING_STARTED, PENDING_BY = (
    "release-pending",
    "release-pending-from",
    "release-pending-target",
    "release-pending-started",
    "release-pending-by",
)
PENDING_KEYS = (PENDING_ACTION, PENDING_FROM, PENDING_TARGET, PENDING_STARTED, PENDING_BY)
#: The fields of a configuration a release manages; ``$LATEST`` equals the live version in all of them when
#: no release is under way.
MANAGED_FIELDS = ("CodeSha256", "Runtime", "Architectures", "Handler", "Role", "MemorySize", "Timeout")
#: ``release-pending-from`` when nothing was live (no alias yet).
NOTHING_LIVE = "none"


class UnfinishedRelease(ReleaseError):
    """Another release on the function is unfinished; the message says what AWS holds and what to run."""


def managed(config: dict[str, Any] | None) -> dict[str, Any]:
    """The managed fields of a configuration, comparable between ``$LATEST`` and a version."""
    config = config or {}
    fields = {key: config.get(key) for key in MANAGED_FIELDS}
    fields["Architectures"] = config.get("Architectures") or ["x86_64"]
    fields["Environment"] = (config.get("Environment") or {}).get("Variables", {})
    fields["Layers"] = layer_arns(config)
    return fields


def managed_differences(before: dict[str, Any] | None, after: dict[str, Any] | None) -> list[str]:
    """``field: before -> after`` for every managed field that differs."""
    a, b = managed(before), managed(after)
    return [f"{key}: {a[key]!r} -> {b[key]!r}" for key in a if a[key] != b[key]]


@dataclass(frozen=True)
class Pending:
    """A release command that started changing the function and has not finished (its tags)."""

    action: str
    from_version: str | None
    target: str
    started: str
    by: str

    @classmethod
    def from_tags(cls, tags: dict[str, str]) -> Pending | None:
        if PENDING_ACTION not in tags:
            return None
        source = tags.get(PENDING_FROM, NOTHING_LIVE)
        return cls(
            tags[PENDING_ACTION],
            None if source == NOTHING_LIVE else source,
            tags.get(PENDING_TARGET, ""),
            tags.get(PENDING_STARTED, "?"),
            tags.get(PENDING_BY, "unknown"),
        )

    def tags(self) -> dict[str, str]:
        return {
            PENDING_ACTION: self.action,
            PENDING_FROM: self.from_version or NOTHING_LIVE,
            PENDING_TARGET: tag_value(self.target),
            PENDING_STARTED: self.started,
            PENDING_BY: tag_value(self.by),
        }


def finish_command(action: str, target: str) -> str:
    """The make command that finishes an unfinished release of ``action`` (re-running it), in backticks."""
    if action == "relink":
        return f"`make relink LAYER_ARN={target}`"
    if action == "publish-model-layer":
        return f"`make publish-model-layer` with the same model (layer zip {target})"
    if action == "shadow":
        return f"`make publish-model-layer STRATEGY=shadow` with the same candidate (layer zip {target})"
    if action == "canary":
        return f"`make publish-model-layer STRATEGY=canary` with the same model (layer zip {target})"
    return f"`make {action}`"


@dataclass
class FunctionState:
    """The function as AWS holds it right now.

    Attributes
    ----------
    name, alias_name : str
    latest : dict or None
        ``$LATEST``'s configuration; ``None`` when the function does not exist.
    alias : dict or None
        ``GetAlias`` (``FunctionVersion``, ``RoutingConfig``); ``None`` before the first release.
    live : dict or None
        The configuration of the alias's version.
    tags : dict
        The function's tags.
    versions : list of dict or None
        The published versions (read when a release is pending, or on request).
    """

    name: str
    alias_name: str
    latest: dict[str, Any] | None
    alias: dict[str, Any] | None
    live: dict[str, Any] | None
    tags: dict[str, str]
    versions: list[dict[str, Any]] | None = None

    @classmethod
    def read(cls, settings: Settings, clients: Clients, *, versions: bool = False) -> FunctionState:
        """Read the function, its alias, the alias's version, its tags (and its versions)."""
        lam, fn = clients.lambda_, settings.function
        latest = get_configuration(lam, fn.name)
        if latest is None:
            return cls(fn.name, fn.alias, None, None, None, {})
        alias = get_alias(lam, fn.name, fn.alias)
        live = get_configuration(lam, fn.name, str(alias["FunctionVersion"])) if alias else None
        tags = dict(lam.list_tags(Resource=latest["FunctionArn"]).get("Tags", {}))
        state = cls(fn.name, fn.alias, latest, alias, live, tags)
        if versions or state.pending is not None:
            state.versions = [
                v
                for v in paginate(lam, "list_versions_by_function", "Versions", FunctionName=fn.name)
                if str(v.get("Version", "")).isdigit()
            ]
        return state

    @property
    def function_arn(self) -> str:
        """The function's unqualified ARN."""
        return str((self.latest or {})["FunctionArn"])

    @property
    def alias_version(self) -> str | None:
        return str(self.alias["FunctionVersion"]) if self.alias else None

    @property
    def weights(self) -> dict[str, float]:
        """Other versions the alias sends a share of the traffic to (``RoutingConfig``)."""
        routing = (self.alias or {}).get("RoutingConfig") or {}
        return {str(k): float(v) for k, v in (routing.get("AdditionalVersionWeights") or {}).items()}

    @property
    def pending(self) -> Pending | None:
        return Pending.from_tags(self.tags)

    def latest_changes(self) -> list[str]:
        """How ``$LATEST`` differs from the live version (empty when nothing is live)."""
        if self.latest is None or self.live is None:
            return []
        return managed_differences(self.live, self.latest)

    def newer_versions(self) -> list[str]:
        """Published versions newer than the version the pending release started from, not live."""
        pending = self.pending
        if pending is None or self.versions is None:
            return []
        floor = int(pending.from_version) if pending.from_version and pending.from_version.isdigit() else 0
        live = {self.alias_version, *self.weights}
        return [str(v["Version"]) for v in self.versions if int(v["Version"]) > floor and v["Version"] not in live]

    @property
    def unfinished(self) -> bool:
        """A release command started changing the function and did not finish, or ``$LATEST`` is not live."""
        return self.pending is not None or bool(self.latest_changes())

    def live_layer(self, layer_name: str) -> str | None:
        """The ARN of the layer called ``layer_name`` in the live version."""
        return find_layer(self.live, layer_name)

    def report(self, settings: Settings, clients: Clients | None = None) -> list[str]:
        """What AWS holds of an unfinished release, in plain lines; ``[]`` when nothing is unfinished.

        With ``clients``, a pending ``publish-model-layer`` also says whether its layer was published.
        """
        if not self.unfinished:
            return []
        pending = self.pending
        alias = f"{self.name}:{self.alias_name}"
        live_model = self.live_layer(settings.layers.model_name)
        lines = []
        if pending is None:
            lines.append(
                f"$LATEST of {self.name} differs from the live version {self.alias_version}, and no release "
                "command left a record of changing it (changed by hand, or by an older version of these tools):"
            )
            lines += [f"  $LATEST {change}" for change in self.latest_changes()]
            lines.append(
                f"  the alias {alias} serves version {self.alias_version} (model layer {live_model}); "
                "a release from here would publish only what the alias serves plus its own change"
            )
            lines.append(
                f"  run `make release-abort` to reset $LATEST to version {self.alias_version}'s configuration, "
                "or `make deploy` to release deploy.toml and build/function.zip"
            )
            return lines
        lines.append(
            f"unfinished {pending.action} (target {pending.target}), started {pending.started} by {pending.by}, "
            f"from version {pending.from_version or '(nothing live)'}:"
        )
        if pending.action in ("publish-model-layer", "canary") and clients is not None:
            sha = pending.target.removeprefix("sha256=")
            found = [
                v["LayerVersionArn"]
                for v in list_layer_versions(clients.lambda_, settings.layers.model_name)
                if parse_description(v.get("Description"))[1].get("sha256") == sha
            ]
            lines.append(f"  layer published: {'yes, ' + found[0] if found else 'no'}")
        changes = self.latest_changes()
        if self.live is None:
            lines.append(f"  $LATEST exists; nothing is live yet (no alias {self.alias_name})")
        elif changes:
            lines.append("  $LATEST changed, not published: " + "; ".join(changes))
        else:
            lines.append("  $LATEST changed: no (it equals the live version)")
        newer = self.newer_versions()
        lines.append(
            f"  version published: {'yes, ' + ', '.join(newer) + ' (not live)' if newer else 'no newer version not live'}"
        )
        moved = self.alias_version != pending.from_version
        lines.append(
            f"  alias moved: {'yes' if moved else 'no'}; {alias} serves version {self.alias_version} "
            f"(model layer {live_model})"
        )
        if self.weights:
            split = ", ".join(f"version {v}: {w:.0%}" for v, w in self.weights.items())
            lines.append(f"  alias weights: {alias} also sends {split} of its invocations (RoutingConfig)")
        lines.append(f"  finish it: {finish_command(pending.action, pending.target)}; undo it: `make release-abort`")
        return lines


def refuse_if_unfinished(
    state: FunctionState, settings: Settings, clients: Clients, command: str, target: str | None
) -> bool:
    """Before a release command changes anything: may it go ahead?

    Parameters
    ----------
    state : FunctionState
    command : str
        The release command (``relink``, ``rollback``, ``publish-model-layer``, ``deploy``).
    target : str or None
        What it releases (a layer version ARN, ``sha256=...`` of a model zip); ``None`` matches any
        pending release of the same command.

    Returns
    -------
    bool
        True when this is a re-run of the unfinished release (the command finishes it), False
        when nothing is unfinished.

    Raises
    ------
    UnfinishedRelease
        If another release is unfinished: only re-running it or undoing it may change the function.

    Notes
    -----
    Alias weights (``RoutingConfig``) with no release pending (made by hand, or by CodeDeploy for a
    stack) do not stop a release: it moves the alias to its version alone and says which split it
    ended (:attr:`release.history.Release.ended_split`). A canary's weights are its pending release.
    """
    if not state.unfinished:
        return False
    pending = state.pending
    if pending is not None and pending.action == command and target in (None, pending.target):
        return True
    raise UnfinishedRelease(
        f"refusing to {command} while a release of {state.name} is unfinished; nothing was changed.\n"
        + "\n".join(state.report(settings, clients))
    )
