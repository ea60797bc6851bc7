"""Where releases are recorded: the function's tags in AWS, and the local history file.

The tags (``model-name``, ``model-version``, ``model-layer-arn``, ``release-version``, ...)
survive a lost laptop; the history file (``[history] file``, one JSON line per release)
is a convenience.
"""

from __future__ import annotations

import json
import re
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
    time: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))


def tag_value(text: str) -> str:
    """``text`` as a Lambda tag value: letters, digits, spaces and ``_ . : / = + - @``, 256 at most."""
    return re.sub(r"[^\w .:/=+@-]", "_", text)[:256]


def release_tags(action: str, version: str, model_layer_arn: str, model: dict[str, str]) -> dict[str, str]:
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
    """
    return {
        "model-name": tag_value(model.get("name", "unknown")),
        "model-version": tag_value(model.get("version", "unknown")),
        "model-layer-arn": model_layer_arn,
        "release-version": version,
        "release-action": action,
        "released-at": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def append_history(path: Path, release: Release) -> None:
    """Append the release to the local JSON Lines history file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(json.dumps(asdict(release), sort_keys=True) + "\n")


def read_history(path: Path) -> list[dict[str, Any]]:
    """Every release in the local history file, oldest first (``[]`` if there is none)."""
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
