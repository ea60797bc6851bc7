"""Small fitted models, one per kind a dependencies layer must serve, for tracing and testing the layer.

Each :class:`GalleryModel` is trained here, in the pinned environment, on data scikit-learn
ships (no download): a text pipeline in three artifacts like the reference model, a
classifier, a regressor, an outlier detector, a clusterer, a ``HistGradientBoosting``
model with missing values, a ``ColumnTransformer`` with a string column; and, when the
library is installed, a LightGBM classifier and a pipeline fitted on a pandas DataFrame.

:mod:`layers.trim` loads and predicts every one of them from the layer being built, to
record which modules and files serving a model touches; the tests package them as model
layers.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass
class GalleryModel:
    """Fitted artifacts in pipeline order (preprocessors, then the estimator) and rows to score."""

    name: str
    artifacts: list[Any]
    rows: Any
    #: Field names of the rows, in column order (``None``: text model).
    features: list[str] | None = None


def _text() -> GalleryModel:
    from sklearn.feature_extraction.text import CountVectorizer, TfidfTransformer
    from sklearn.linear_model import LogisticRegression

    texts = ["a warm funny film", "tedious and dull", "brilliant acting", "boring overlong plot"] * 5
    labels = ["fresh", "rotten", "fresh", "rotten"] * 5
    counts = CountVectorizer().fit(texts)
    tfidf = TfidfTransformer().fit(counts.transform(texts))
    classifier = LogisticRegression().fit(tfidf.transform(counts.transform(texts)), labels)
    return GalleryModel("text-logistic", [counts, tfidf, classifier], texts[:4])


def _forest() -> GalleryModel:
    from sklearn.datasets import load_iris
    from sklearn.ensemble import RandomForestClassifier

    x, y = load_iris(return_X_y=True)
    return GalleryModel("random-forest", [RandomForestClassifier(10, random_state=0).fit(x, y)], x[:8], _names(4))


def _ridge() -> GalleryModel:
    from sklearn.datasets import load_diabetes
    from sklearn.linear_model import Ridge
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    x, y = load_diabetes(return_X_y=True)
    return GalleryModel("ridge", [make_pipeline(StandardScaler(), Ridge()).fit(x, y)], x[:8], _names(10))


def _outliers() -> GalleryModel:
    from sklearn.datasets import load_wine
    from sklearn.ensemble import IsolationForest

    x, _ = load_wine(return_X_y=True)
    return GalleryModel(
        "isolation-forest", [IsolationForest(n_estimators=20, random_state=0).fit(x)], x[:8], _names(13)
    )


def _one_class_svm() -> GalleryModel:
    from sklearn.datasets import load_iris
    from sklearn.svm import OneClassSVM

    x, _ = load_iris(return_X_y=True)
    return GalleryModel("one-class-svm", [OneClassSVM().fit(x)], x[:8], _names(4))


def _kmeans() -> GalleryModel:
    from sklearn.cluster import KMeans
    from sklearn.datasets import load_iris

    x, _ = load_iris(return_X_y=True)
    return GalleryModel("kmeans", [KMeans(3, n_init=2, random_state=0).fit(x)], x[:8], _names(4))


def _hist_gradient_boosting() -> GalleryModel:
    import numpy as np
    from sklearn.datasets import load_breast_cancer
    from sklearn.ensemble import HistGradientBoostingClassifier

    x, y = load_breast_cancer(return_X_y=True)
    x = x.copy()
    x[::7, 0] = np.nan
    model = HistGradientBoostingClassifier(max_iter=10, random_state=0).fit(x, y)
    return GalleryModel("hist-gradient-boosting", [model], x[:8], _names(30))


def _column_transformer() -> GalleryModel:
    import numpy as np
    from sklearn.compose import ColumnTransformer
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    x, y = load_iris(return_X_y=True)
    colors = np.array(["red", "green", "blue"], dtype=object)[np.arange(len(x)) % 3]
    rows = np.column_stack([colors, x]).astype(object)
    encode = ColumnTransformer(
        [("color", OneHotEncoder(handle_unknown="ignore"), [0]), ("num", StandardScaler(), [1, 2, 3, 4])]
    )
    model = make_pipeline(encode, LogisticRegression(max_iter=500)).fit(rows, y)
    return GalleryModel("column-transformer", [model], rows[:8], ["color", *_names(4)])


def _lightgbm() -> GalleryModel:
    import lightgbm
    from sklearn.datasets import load_iris

    x, y = load_iris(return_X_y=True)
    model = lightgbm.LGBMClassifier(n_estimators=10, num_leaves=7, min_child_samples=5, verbose=-1).fit(x, y)
    return GalleryModel("lightgbm", [model], x[:8], _names(4))


def _pandas_frame() -> GalleryModel:
    import pandas as pd  # type: ignore[import-untyped]
    from sklearn.compose import ColumnTransformer
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    iris = load_iris(as_frame=False)
    frame = pd.DataFrame(iris.data, columns=_names(4))
    frame["color"] = pd.Series(["red", "green", "blue"] * 50)
    encode = ColumnTransformer([("color", OneHotEncoder(), ["color"]), ("num", StandardScaler(), _names(4))])
    model = make_pipeline(encode, LogisticRegression(max_iter=500)).fit(frame, iris.target)
    return GalleryModel("pandas-frame", [model], frame.head(8), list(frame.columns))


def _names(n: int) -> list[str]:
    return [f"f{i}" for i in range(n)]


#: ``name -> (extra library it needs or None, builder)``.
_BUILDERS: dict[str, tuple[str | None, Callable[[], GalleryModel]]] = {
    "text-logistic": (None, _text),
    "random-forest": (None, _forest),
    "ridge": (None, _ridge),
    "isolation-forest": (None, _outliers),
    "one-class-svm": (None, _one_class_svm),
    "kmeans": (None, _kmeans),
    "hist-gradient-boosting": (None, _hist_gradient_boosting),
    "column-transformer": (None, _column_transformer),
    "lightgbm": ("lightgbm", _lightgbm),
    "pandas-frame": ("pandas", _pandas_frame),
}


def gallery(libraries: set[str] | frozenset[str] = frozenset()) -> list[GalleryModel]:
    """Every gallery model whose extra library is in ``libraries`` (and installed here), trained now."""
    return [
        build()
        for needs, build in _BUILDERS.values()
        if needs is None or (needs in libraries and importlib.util.find_spec(needs) is not None)
    ]


def gallery_model(name: str) -> GalleryModel:
    """One gallery model by name (e.g. ``lightgbm``), trained now.

    Raises
    ------
    KeyError
        No gallery model has that name.
    """
    if name not in _BUILDERS:
        raise KeyError(f"no gallery model {name!r}; there are {', '.join(_BUILDERS)}")
    return _BUILDERS[name][1]()


def predict_all(model: GalleryModel, artifacts: list[Any] | None = None) -> dict[str, Any]:
    """What the model's own methods give for its rows: ``predict``, and ``predict_proba`` /
    ``decision_function`` where the estimator has them (numpy arrays)."""
    *steps, estimator = artifacts if artifacts is not None else model.artifacts
    x = model.rows
    for step in steps:
        x = step.transform(x)
    outputs = {"predict": estimator.predict(x)}
    for method in ("predict_proba", "decision_function"):
        if hasattr(estimator, method):
            outputs[method] = getattr(estimator, method)(x)
    return outputs
