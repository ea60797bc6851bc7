"""The fuzzer's typed tabular model: a string, a number and a bool feature, two of which may be missing.

``color:string,size,member:bool``: a ColumnTransformer (``OneHotEncoder(handle_unknown="ignore")``
on ``color``, a mean ``SimpleImputer`` then ``StandardScaler`` on ``size``, ``member`` passed
through) before a ``LogisticRegression``, fitted on a numpy object array. Packaging finds by
trying that ``color`` (an unknown or missing colour is ignored) and ``size`` (imputed) may be
missing, and ``member`` may not (the regression refuses NaN): :data:`TYPED_ACCEPTS_MISSING`.
"""

from __future__ import annotations

from pathlib import Path

from layers.model_layer import build_manifest, write_manifest

TYPED_FEATURES = ["color:string", "size", "member:bool"]
TYPED_ACCEPTS_MISSING = ["color", "size"]
COLORS = ["red", "green", "blue"]


def make_typed_model(out: Path, seed: int = 0) -> Path:
    """Train and package the model (artifact + manifest) into ``out``.

    Raises
    ------
    AssertionError
        Packaging found other features that may be missing than :data:`TYPED_ACCEPTS_MISSING`.
    """
    import joblib
    import numpy as np
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    rng = np.random.default_rng(seed)
    n = 200
    colors, size, member = rng.choice(COLORS, size=n), rng.normal(size=n), rng.random(n) < 0.5
    x = np.empty((n, 3), dtype=object)
    x[:, 0], x[:, 1], x[:, 2] = colors.tolist(), size.tolist(), member.tolist()
    y = ((colors == "red") ^ (size > 0) ^ member).astype(int)
    encode = ColumnTransformer(
        [
            ("color", OneHotEncoder(handle_unknown="ignore", sparse_output=False), [0]),
            ("size", make_pipeline(SimpleImputer(), StandardScaler()), [1]),
            ("member", "passthrough", [2]),
        ]
    )
    model = make_pipeline(encode, LogisticRegression()).fit(x, y)
    out.mkdir(parents=True, exist_ok=True)
    joblib.dump(model, out / "model.joblib")
    manifest = build_manifest(
        out, name="test-typed", version="0.0.1", pipeline=["model.joblib"], features=TYPED_FEATURES
    )
    assert manifest["input"].get("accepts_missing") == TYPED_ACCEPTS_MISSING, manifest["input"]
    write_manifest(out, manifest)
    return out
