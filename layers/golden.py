"""Golden predictions: a few records with the model's own results, kept in the model layer.

Packaging (:mod:`layers.model_layer`) scores a small sample of records with the pipeline it
packages, in the pinned environment, through the function's own ``LoadedModel.predict``,
and writes them to ``golden.json`` beside the artifacts; the manifest lists the file with
its sha256 (``golden``), like an artifact. ``make check-layers`` (and so every publish)
sends those records through the built function and layers (:mod:`layers.checks`) and
refuses the layers if any result differs: labels, clusters and other non-floats exactly,
floats within ``|got - want| <= GOLDEN_ATOL + GOLDEN_RTOL * |want|``. The tolerance
admits a BLAS that sums in another order (differences near 1e-15 relative), not numerics
that changed.

The sample is the records given with ``--sample FILE`` (a JSON list of record payloads,
or JSON Lines; the first :data:`GOLDEN_MAX` are kept), else synthetic ones: for a text
model :data:`SYNTHETIC_TEXTS`, for a tabular model rows of all 0, all 1 and all -1 (``false``,
``true``, ``false`` for a ``bool`` feature, ``""`` for a ``string`` one).

``golden.json``::

    {"records": [{...payload...}, ...], "results": [{...result fields...}, ...]}
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from inference.decode import extract_input
from inference.manifest import Manifest, feature_types
from inference.model import LoadedModel

GOLDEN_NAME = "golden.json"
#: Most records kept.
GOLDEN_MAX = 20
GOLDEN_RTOL = 1e-9
GOLDEN_ATOL = 1e-12
#: A text model's sample when none is given.
SYNTHETIC_TEXTS = ("A warm, funny and beautifully acted film.", "Tedious, overlong and badly written.")


class GoldenError(ValueError):
    """The sample cannot be read or scored; the message says which record and why."""


def read_sample(path: Path) -> list[Any]:
    """The record payloads in ``path``: a JSON list, or one JSON document per line.

    Raises
    ------
    GoldenError
        The file is missing, not JSON, or holds no record.
    """
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise GoldenError(f"--sample {path} cannot be read ({exc.strerror})") from None
    try:
        doc = json.loads(text)
        records = doc if isinstance(doc, list) else [doc]
    except json.JSONDecodeError:
        try:
            records = [json.loads(line) for line in text.splitlines() if line.strip()]
        except json.JSONDecodeError as exc:
            raise GoldenError(f"--sample {path} is neither a JSON list nor JSON Lines ({exc})") from None
    if not records:
        raise GoldenError(f"--sample {path} holds no record")
    return records[:GOLDEN_MAX]


def synthetic_sample(manifest: Manifest) -> list[dict[str, Any]]:
    """Records the input contract accepts, for a model packaged without ``--sample``."""
    contract = manifest["input"]
    if contract["kind"] == "text":
        return [{contract["field"]: text} for text in SYNTHETIC_TEXTS]
    # A string feature gets "" (an encoder that refuses unknown categories needs --sample).
    by_type = {"number": (0.0, 1.0, -1.0), "bool": (False, True, False), "string": ("", "", "")}
    types = feature_types(contract)
    return [{name: by_type[kind][n] for name, kind in zip(contract["features"], types)} for n in range(3)]


def golden_document(
    manifest: Manifest, preprocessors: tuple[Any, ...], estimator: Any, records: list[Any]
) -> dict[str, Any]:
    """``records`` and what the pipeline gives for them, as the function would answer.

    Raises
    ------
    GoldenError
        A record that does not fit the input contract, or that the model raises on.
    """
    inputs = []
    for n, record in enumerate(records):
        value, reason = extract_input(record, manifest["input"], "record")
        if reason:
            raise GoldenError(f"--sample record {n}: {reason}")
        inputs.append(value)
    try:
        results = LoadedModel(manifest, preprocessors, estimator).predict(inputs).results()
    except Exception as exc:
        raise GoldenError(f"the model raised on the sample: {type(exc).__name__}: {str(exc)[:200]}") from None
    return {"records": records, "results": results}


def write_golden(folder: Path, document: dict[str, Any]) -> Path:
    path = Path(folder) / GOLDEN_NAME
    path.write_text(json.dumps(document, indent=1) + "\n", encoding="utf-8")
    return path


def _same(got: Any, want: Any) -> bool:
    if isinstance(want, float) and not isinstance(got, bool) and isinstance(got, (int, float)):
        return math.isfinite(got) and abs(got - want) <= GOLDEN_ATOL + GOLDEN_RTOL * abs(want)
    if isinstance(want, list):
        return isinstance(got, list) and len(got) == len(want) and all(map(_same, got, want))
    if isinstance(want, dict):
        return isinstance(got, dict) and list(got) == list(want) and all(_same(got[k], want[k]) for k in want)
    return type(got) is type(want) and got == want


def compare(want: list[dict[str, Any]], got: list[Any]) -> list[str]:
    """Every golden result that ``got`` (results in record order) does not reproduce.

    Returns
    -------
    list of str
        ``record N field F: got X, packaged Y``, one per differing field; empty when all agree.
    """
    if len(got) != len(want):
        return [f"{len(got)} results for {len(want)} golden records"]
    problems = []
    for n, (g, w) in enumerate(zip(got, want)):
        if not isinstance(g, dict) or set(g) != set(w):
            problems.append(f"record {n}: fields {sorted(g) if isinstance(g, dict) else g!r}, packaged {sorted(w)}")
            continue
        problems += [
            f"record {n} {field}: got {g[field]!r}, packaged {w[field]!r}"
            for field in w
            if not _same(g[field], w[field])
        ]
    return problems
