"""Where releases are recorded: the function's tags in AWS, and the local history file.

The tags (``model-name``, ``model-version``, ``model-layer-arn``, ``release-version``,
``released-by``, ...) survive a lost laptop; the history file (``[history] file``, JSON Lines)
is this machine's journal. It holds three kinds of line, told apart by ``event``:

``intent``   written by a release command before its first AWS call: ``id``, ``command``,
             ``target``, ``function``, ``time``.
``release``  one move of the alias (:class:`Release`), written when it is done.
``outcome``  written after the command's last AWS call: ``id``, ``result`` (``ok``, ``failed``,
             ``interrupted``), ``error``, ``last_call``, ``function_changed``.

An ``intent`` without an ``outcome`` is a command that died (killed, laptop closed) on this
machine; :func:`open_intents` lists them. Lines written before the journal existed have no
``event`` and are releases.
"""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any


@dataclass
class Release:
    """One move of the alias, as recorded in the history file."""

    action: str
    function: str
    alias: str
    version: str
    model_layer_arn: str
    model_name: str | None
    model_version: str | None
    previous_version: str | None
    previous_model_layer_arn: str | None
    changed: bool = True
    time: str = field(default_factory=lambda: now())
    caller: str = "unknown"
    #: The alias's ``RoutingConfig`` weights (version -> share) the release found and cleared.
    ended_split: dict[str, float] = field(default_factory=dict)


def now() -> str:
    """The current UTC time, ISO 8601 to the second."""
    return datetime.now(UTC).isoformat(timespec="seconds")


def tag_value(text: str) -> str:
    """``text`` as a Lambda tag value: letters, digits, spaces and ``_ . : / = + - @``, 256 at most."""
    return re.sub(r"[^\w .:/=+@-]", "_", text)[:256]


def release_tags(
    action: str, version: str, model_layer_arn: str, model: dict[str, str], caller: str = "unknown"
) -> dict[str, str]:
    """The function's tags after a release.

    Parameters
    ----------
    action : str
        What made the release (``relink``, ``rollback``, ``deploy``, ...).
    version : str
        The function version the alias now points at.
    model_layer_arn : str
        The model layer version it serves.
    model : dict of str to str
        The model layer's description fields (``name``, ``version``).
    caller : str
        Who released it (STS ``GetCallerIdentity`` ARN).
    """
    return {
        "model-name": tag_value(model.get("name", "unknown")),
        "model-version": tag_value(model.get("version", "unknown")),
        "model-layer-arn": model_layer_arn,
        "release-version": version,
        "release-action": action,
        "released-at": now(),
        "released-by": tag_value(caller),
    }


def _append(path: Path, entry: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(json.dumps(entry, sort_keys=True) + "\n")


def append_history(path: Path, release: Release) -> None:
    """Append the release to the local JSON Lines history file."""
    _append(path, {"event": "release", **asdict(release)})


def write_intent(path: Path, command: str, target: str | None, function: str) -> str:
    """Record, before any AWS call, that ``command`` starts; returns the id its outcome must carry."""
    intent_id = uuid.uuid4().hex[:12]
    _append(
        path,
        {"event": "intent", "id": intent_id, "command": command, "target": target, "function": function, "time": now()},
    )
    return intent_id


def write_outcome(
    path: Path,
    intent_id: str,
    result: str,
    *,
    error: str | None = None,
    last_call: str | None = None,
    function_changed: bool = False,
) -> None:
    """Record, after the command's last AWS call, how it ended (``ok``, ``failed`` or ``interrupted``)."""
    _append(
        path,
        {
            "event": "outcome",
            "id": intent_id,
            "result": result,
            "error": error,
            "last_call": last_call,
            "function_changed": function_changed,
            "time": now(),
        },
    )


def read_journal(path: Path) -> list[dict[str, Any]]:
    """Every line of the local history file, oldest first (``[]`` if there is none).

    A line that is not JSON (a write cut short) is skipped.
    """
    if not path.exists():
        return []
    entries = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(entry, dict):
            entries.append(entry)
    return entries


def read_history(path: Path) -> list[dict[str, Any]]:
    """Every release (move of the alias) in the local history file, oldest first."""
    return [entry for entry in read_journal(path) if entry.get("event", "release") == "release"]


def open_intents(path: Path, function: str) -> list[dict[str, Any]]:
    """Intents for ``function`` on this machine that never got an outcome, or whose outcome was not ``ok``,
    newer than the last ``ok`` outcome: what this machine last tried and did not finish."""
    entries = read_journal(path)
    outcomes = {entry["id"]: entry for entry in entries if entry.get("event") == "outcome"}
    unfinished: list[dict[str, Any]] = []
    for entry in entries:
        if entry.get("event") != "intent" or entry.get("function") != function:
            continue
        outcome = outcomes.get(entry["id"])
        if outcome is not None and outcome.get("result") == "ok":
            unfinished = []
        else:
            unfinished.append({**entry, "outcome": outcome})
    return unfinished
