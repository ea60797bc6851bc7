"""A release command as a small transaction on the function: begin, finish, or abort.

:class:`Transaction` writes the ``release-pending*`` tags (:class:`release.state.Pending`)
before the command's first change to the function, and after its last change writes the
release tags and removes the pending ones. In between, the function may hold a staged
``$LATEST``, a published version that is not live, or an alias that moved without its
record: :class:`release.state.FunctionState` tells which.

:func:`abort` undoes an unfinished release from what AWS holds: it moves the alias back to
the version the release started from, resets ``$LATEST``'s configuration (layers, memory,
environment, ...) to that version's, deletes the versions the release published that no
alias serves, and removes the pending tags. Code is the one thing it cannot put back (Lambda
keeps no copy it can re-upload from here): it says so, and ``make deploy`` replaces it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from release.aws import Clients, get_configuration, paginate, update_and_wait
from release.history import now
from release.settings import Settings
from release.state import PENDING_KEYS, FunctionState, Pending, managed


def configuration_of(config: dict[str, Any]) -> dict[str, Any]:
    """``UpdateFunctionConfiguration`` parameters that give a function the managed configuration of ``config``."""
    fields = managed(config)
    return {
        "Runtime": fields["Runtime"],
        "Role": fields["Role"],
        "Handler": fields["Handler"],
        "MemorySize": fields["MemorySize"],
        "Timeout": fields["Timeout"],
        "Environment": {"Variables": fields["Environment"]},
        "Layers": fields["Layers"],
    }


class Transaction:
    """The AWS-side record of one release command on one function.

    Parameters
    ----------
    settings : Settings
    clients : Clients
    state : FunctionState
        The function as read before the command changed anything.
    action : str
        The command (``relink``, ``rollback``, ``publish-model-layer``, ``deploy``).
    target : str
        What it releases (layer version ARN, ``sha256=...`` of a model zip).
    resume : bool
        True when the command re-runs the unfinished release recorded in ``state``: the
        pending tags are already there and stay until the release is finished.
    """

    def __init__(
        self, settings: Settings, clients: Clients, state: FunctionState, action: str, target: str, resume: bool
    ) -> None:
        self.settings, self.clients, self.state = settings, clients, state
        self.action, self.target = action, target
        self.started = resume
        self.from_version = state.pending.from_version if resume and state.pending else state.alias_version
        self._caller: str | None = None

    @property
    def caller(self) -> str:
        """Who runs the command (STS ``GetCallerIdentity``), asked once."""
        if self._caller is None:
            self._caller = self.clients.caller()
        return self._caller

    def pending(self) -> Pending:
        return Pending(self.action, self.from_version, self.target, now(), self.caller)

    def creation_tags(self) -> dict[str, str]:
        """The pending tags for ``CreateFunction`` (a new function is born inside its first release)."""
        self.started = True
        return self.pending().tags()

    def begin(self) -> None:
        """Tag the function as under release, before its first change; idempotent."""
        if self.started:
            return
        self.clients.lambda_.tag_resource(Resource=self.state.function_arn, Tags=self.pending().tags())
        self.started = True

    def finish(self, function_arn: str, release_tags: dict[str, str] | None) -> None:
        """After the last change: write the release tags, then remove the pending ones."""
        lam = self.clients.lambda_
        if release_tags:
            lam.tag_resource(Resource=function_arn, Tags=release_tags)
        if self.started:
            lam.untag_resource(Resource=function_arn, TagKeys=list(PENDING_KEYS))
            self.started = False


def abort(settings: Settings, clients: Clients, cleanup: Callable[[Pending], list[str]] | None = None) -> list[str]:
    """Undo the unfinished release of the function (module docstring); returns what was done.

    Parameters
    ----------
    cleanup : callable, optional
        Called with the undone release's record after the function is back, to undo what the
        release made beside it (a canary's alarms); returns what it did.

    Returns
    -------
    list of str
        One line per change, or why there was nothing to undo.
    """
    lam, fn = clients.lambda_, settings.function
    state = FunctionState.read(settings, clients, versions=True)
    if state.latest is None:
        return [f"function {fn.name} does not exist; nothing to undo"]
    if not state.unfinished:
        return [f"nothing unfinished: {fn.name}:{fn.alias} serves version {state.alias_version}; nothing to undo"]
    pending = state.pending
    back_to = pending.from_version if pending is not None else state.alias_version
    done = []
    if back_to is not None and (state.alias_version not in (None, back_to) or state.weights):
        lam.update_alias(
            FunctionName=fn.name,
            Name=fn.alias,
            FunctionVersion=back_to,
            Description=f"release-abort to {back_to}",
            RoutingConfig={"AdditionalVersionWeights": {}},
        )
        if state.alias_version != back_to:
            done.append(f"moved {fn.name}:{fn.alias} back from version {state.alias_version} to {back_to}")
        if state.weights:
            split = ", ".join(f"version {v}: {w:.0%}" for v, w in state.weights.items())
            done.append(f"cleared the alias weights ({split}): {fn.name}:{fn.alias} sends everything to {back_to}")
    elif back_to is None and state.alias is not None:
        lam.delete_alias(FunctionName=fn.name, Name=fn.alias)
        done.append(f"deleted alias {fn.alias}: nothing was live before the unfinished {pending and pending.action}")
    base = get_configuration(lam, fn.name, back_to) if back_to else None
    if base is not None:
        wanted, have = configuration_of(base), configuration_of(state.latest)
        if wanted != have:
            update_and_wait(lam, "update_function_configuration", fn.name, **wanted)
            changed = [key for key in wanted if wanted[key] != have[key]]
            done.append(f"reset $LATEST's {', '.join(changed)} to version {back_to}'s")
        if base.get("CodeSha256") != state.latest.get("CodeSha256"):
            done.append(
                f"$LATEST keeps code {state.latest.get('CodeSha256')}, not version {back_to}'s "
                f"{base.get('CodeSha256')} (Lambda cannot hand the old code back); nothing serves it. "
                "`make deploy` replaces it with build/function.zip; until then relink and rollback refuse"
            )
    if pending is not None:
        aliased = {
            str(a["FunctionVersion"])
            for a in paginate(lam, "list_aliases", "Aliases", FunctionName=fn.name)
            if not (back_to is None and a["Name"] == fn.alias)
        }
        floor = int(back_to) if back_to and back_to.isdigit() else 0
        for version in [str(v["Version"]) for v in state.versions or [] if int(v["Version"]) > floor]:
            if version not in aliased:
                lam.delete_function(FunctionName=fn.name, Qualifier=version)
                done.append(f"deleted version {version}, published by the unfinished {pending.action}, never kept live")
        lam.untag_resource(Resource=state.function_arn, TagKeys=list(PENDING_KEYS))
        done.append(f"the unfinished {pending.action} (target {pending.target}) is undone")
        if cleanup is not None:
            done += cleanup(pending)
    return done
