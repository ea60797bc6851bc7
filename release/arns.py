"""Layer version ARNs, and a function's layer list built from them."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from release.errors import ReleaseError

#: Most layers a function may have.
MAX_LAYERS = 5

_LAYER_ARN = re.compile(
    r"^arn:(?P<partition>aws[a-z-]*):lambda:(?P<region>[a-z]{2}(?:-[a-z]+)+-\d):(?P<account>\d{12}):"
    r"layer:(?P<name>[A-Za-z0-9_-]{1,140}):(?P<version>[1-9]\d*)$"
)


@dataclass(frozen=True)
class LayerArn:
    """A layer version ARN, ``arn:aws:lambda:REGION:ACCOUNT:layer:NAME:VERSION``."""

    partition: str
    region: str
    account: str
    name: str
    version: int

    @classmethod
    def parse(cls, text: str) -> LayerArn:
        """Parse and validate a layer version ARN.

        Raises
        ------
        ReleaseError
            If ``text`` is not a layer *version* ARN.
        """
        match = _LAYER_ARN.match(text.strip())
        if not match:
            raise ReleaseError(
                f"{text!r} is not a layer version ARN; expected arn:aws:lambda:REGION:ACCOUNT:layer:NAME:VERSION "
                "(`make releases` lists the model layer's versions)"
            )
        return cls(**{**match.groupdict(), "version": int(match["version"])})  # type: ignore[arg-type]

    @property
    def layer_arn(self) -> str:
        """The layer's ARN without the version (accepted as ``LayerName``, also across accounts)."""
        return f"arn:{self.partition}:lambda:{self.region}:{self.account}:layer:{self.name}"

    def __str__(self) -> str:
        return f"{self.layer_arn}:{self.version}"


def layer_name(arn: str) -> str | None:
    """The layer name in a layer version ARN, ``None`` if ``arn`` is not one."""
    match = _LAYER_ARN.match(arn)
    return match["name"] if match else None


def layer_arns(config: dict[str, Any] | None) -> list[str]:
    """The layer version ARNs of a function configuration, in order."""
    return [layer["Arn"] for layer in (config or {}).get("Layers", [])]


def find_layer(config: dict[str, Any] | None, name: str) -> str | None:
    """The ARN of the layer called ``name`` in a function configuration, if attached."""
    return next((arn for arn in layer_arns(config) if layer_name(arn) == name), None)


def replace_layers(current: list[str], by_name: dict[str, str]) -> list[str]:
    """Swap the ARNs whose layer name is a key of ``by_name``; keep every other layer.

    Layers keep their positions (Lambda extracts them into ``/opt`` in list order);
    a named layer not yet attached is appended, in ``by_name`` order.

    Raises
    ------
    ReleaseError
        If the list would exceed Lambda's :data:`MAX_LAYERS`.
    """
    out: list[str] = []
    placed: set[str] = set()
    for arn in current:
        name = layer_name(arn)
        if name in by_name:
            if name not in placed:
                out.append(by_name[name])
                placed.add(name)
        else:
            out.append(arn)
    out += [arn for name, arn in by_name.items() if name not in placed]
    if len(out) > MAX_LAYERS:
        raise ReleaseError(f"the function would have {len(out)} layers; Lambda allows {MAX_LAYERS}: {out}")
    return out
