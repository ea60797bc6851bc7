"""A tiny tabular model, packaged as a model layer folder: for the tests and the fuzzer.

StandardScaler -> LogisticRegression on synthetic rows; classes ``0`` / ``1``, where the
label is ``a > 0`` (feature ``a`` alone, so a row read in the wrong column order is
predicted wrongly). Trains in well under a second.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from layers.model_layer import build_manifest, write_manifest

TABULAR_FEATURES = ["a", "b", "c"]
TABULAR_PIPELINE = ["scaler.joblib", "classifier.joblib"]


def make_tabular_model(
    out: Path,
    features: Sequence[str] = TABULAR_FEATURES,
    name: str = "test-tabular",
    version: str = "0.0.1",
    seed: int = 0,
) -> Path:
    """Train StandardScaler -> LogisticRegression on synthetic rows and package it
    (artifacts + manifest) into ``out``; the label is ``a > 0``.

    Returns
    -------
    Path
        ``out``.
    """
    import joblib
    import numpy as np
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    rng = np.random.default_rng(seed)
    x = rng.normal(size=(300, len(features)))
    y = (x[:, 0] > 0).astype(int)
    scaler = StandardScaler().fit(x)
    classifier = LogisticRegression().fit(scaler.transform(x), y)
    out.mkdir(parents=True, exist_ok=True)
    joblib.dump(scaler, out / TABULAR_PIPELINE[0])
    joblib.dump(classifier, out / TABULAR_PIPELINE[1])
    manifest = build_manifest(
        out,
        name=name,
        version=version,
        pipeline=TABULAR_PIPELINE,
        features=list(features),
        metrics={"train_accuracy": float(classifier.score(scaler.transform(x), y))},
    )
    write_manifest(out, manifest)
    return out
