"""Loading the model layer once, verified, and predicting a whole batch in one call.

What one result holds depends on the manifest's ``task`` (:data:`inference.manifest.RESULT_FIELDS`,
docs/model-layer.md, "Results"):

``classifier``
    ``label`` and ``probability``, the winning class's probability (``None`` without
    ``predict_proba``); with the manifest's ``class_probabilities``, also ``probabilities``,
    every class's probability keyed by ``str(class)``. With ``predict_proba`` the label
    is the arg-max class, so one call gives both.
``regressor``
    ``value``: what ``predict`` returns for the input (a list for a multi-output regressor).
``outlier_detector``
    ``label`` (``-1`` outlier, ``1`` inlier, from ``predict``) and ``score``
    (``decision_function``: negative for outliers).
``clusterer``
    ``cluster``: the cluster ``predict`` assigns.

Each batch is one vectorised call per method the task needs: ``predict_proba`` or
``predict`` (classifier), ``predict`` (regressor, clusterer), ``predict`` and
``decision_function`` (outlier detector). Numbers come back as Python ``int`` / ``float``
(never numpy scalars), and every float is finite with a magnitude below
:data:`MAX_MAGNITUDE`, the largest every sink can store (DynamoDB's number range): a
batch with any other raises ``ValueError``, which the batch processor pins on the inputs
at fault (they are quarantined as ``model raised ValueError``).
"""

from __future__ import annotations

import io
import sys
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .custom_code import CustomCodeError, import_custom_code
from .features import model_input, require_libraries
from .manifest import Manifest, ManifestError, Task, manifest_task, read_manifest, sha256_bytes

#: Every float a model returns must be below this in magnitude: DynamoDB stores numbers
#: up to 9.99e125 (docs/model-layer.md, "Results").
MAX_MAGNITUDE = 1e125
#: What :func:`installed_versions` reports for a library the manifest names and this runtime lacks.
NOT_INSTALLED = "not installed"


class ModelLoadError(RuntimeError):
    """The model layer cannot be served: tampered, incompatible, or unreadable."""


@dataclass(frozen=True)
class Predictions:
    """Results of one vectorised predict, in input order (one list entry per input).

    The fields the task does not use stay ``None``; :meth:`results` turns them into one
    result per input, with the task's fields.
    """

    #: What ``predict`` gives per input: a class label (classifier), ``-1`` / ``1``
    #: (outlier detector), a cluster (clusterer), a value or list of values (regressor).
    labels: list[Any]
    #: Winning-class probability per input; ``None`` unless a classifier has ``predict_proba``.
    probabilities: list[float] | None = None
    #: An outlier detector's ``decision_function`` per input.
    scores: list[float] | None = None
    #: Every class's probability per input, keyed by ``str(class)`` (``class_probabilities``).
    class_probabilities: list[dict[str, float]] | None = None
    task: Task = "classifier"

    def results(self) -> list[dict[str, Any]]:
        """One result per input, with the fields of :data:`inference.manifest.RESULT_FIELDS`."""
        if self.task == "classifier":
            probabilities: Sequence[float | None] = self.probabilities or [None] * len(self.labels)
            if self.class_probabilities is None:
                return [{"label": label, "probability": p} for label, p in zip(self.labels, probabilities)]
            return [
                {"label": label, "probability": p, "probabilities": every}
                for label, p, every in zip(self.labels, probabilities, self.class_probabilities)
            ]
        if self.task == "regressor":
            return [{"value": value} for value in self.labels]
        if self.task == "outlier_detector":
            scores: Sequence[float | None] = self.scores or [None] * len(self.labels)
            return [{"label": label, "score": score} for label, score in zip(self.labels, scores)]
        return [{"cluster": cluster} for cluster in self.labels]


def _checked(values: Any, method: str) -> Any:
    """``values`` (a numpy array), once every number in it is finite and storable."""
    import numpy as np

    if values.dtype.kind == "f" and not (np.abs(values) < MAX_MAGNITUDE).all():  # NaN compares False
        raise ValueError(
            f"{method} returned NaN, an infinity or a number of magnitude {MAX_MAGNITUDE:g} or more, "
            "which results cannot hold"
        )
    return values


def estimator_task(estimator: Any) -> Task | None:
    """The task scikit-learn's own helpers give ``estimator`` (a Pipeline: its last step's).

    Returns ``None`` for an object that is none of a classifier, a regressor, an outlier
    detector or a clusterer (a transformer, a density estimator, an object without
    scikit-learn's estimator tags).
    """
    from sklearn.base import is_classifier, is_clusterer, is_outlier_detector, is_regressor

    try:
        if is_classifier(estimator):
            return "classifier"
        if is_regressor(estimator):
            return "regressor"
        if is_outlier_detector(estimator):
            return "outlier_detector"
        if is_clusterer(estimator):
            return "clusterer"
    except AttributeError:  # no __sklearn_tags__: not a scikit-learn estimator
        return None
    return None


def required_methods(task: Task, class_probabilities: bool = False) -> tuple[str, ...]:
    """The methods the estimator must have to serve ``task``."""
    if task == "outlier_detector":
        return ("predict", "decision_function")
    if task == "classifier" and class_probabilities:
        return ("predict", "predict_proba")
    return ("predict",)


@dataclass(frozen=True)
class LoadedModel:
    """A verified pipeline: preprocessors applied in order, then the estimator."""

    manifest: Manifest
    preprocessors: tuple[Any, ...]
    estimator: Any

    @property
    def name(self) -> str:
        return self.manifest["name"]

    @property
    def version(self) -> str:
        return self.manifest["version"]

    @property
    def task(self) -> Task:
        return manifest_task(self.manifest)

    def predict(self, inputs: Sequence[Any]) -> Predictions:
        """Predict every input in one vectorised call (per method the task needs).

        Parameters
        ----------
        inputs : sequence
            Texts (text models) or rows of values in manifest feature order (tabular), given to the
            model as one array or DataFrame (:func:`inference.features.model_input`).

        Returns
        -------
        Predictions
            The task's outputs (module docstring), as Python numbers.

        Raises
        ------
        ValueError
            A float output is NaN, infinite or too large for the sinks (module docstring);
            and whatever the estimator raises.
        """
        features: Any = inputs
        contract = self.manifest["input"]
        if contract["kind"] == "tabular":
            features = model_input(contract, inputs)
        for step in self.preprocessors:
            features = step.transform(features)
        estimator, task = self.estimator, self.task
        if task == "classifier":
            if hasattr(estimator, "predict_proba"):
                proba = _checked(estimator.predict_proba(features), "predict_proba")
                best = proba.argmax(axis=1)
                labels = estimator.classes_[best].tolist()
                every = None
                if self.manifest.get("class_probabilities"):
                    keys = [str(c) for c in estimator.classes_]
                    every = [dict(zip(keys, row)) for row in proba.tolist()]
                return Predictions(labels, proba.max(axis=1).tolist(), class_probabilities=every)
            return Predictions(estimator.predict(features).tolist(), None)
        labels = _checked(estimator.predict(features), "predict").tolist()
        if task == "outlier_detector":
            scores = _checked(estimator.decision_function(features), "decision_function")
            return Predictions(labels, scores=scores.tolist(), task=task)
        return Predictions(labels, task=task)


def installed_versions(libraries: Iterable[str] = ()) -> dict[str, str]:
    """Python's and the tracked libraries' versions here, and each other named distribution's.

    ``libraries`` are distribution names (a manifest's ``libraries`` keys: ``lightgbm``,
    ``pandas``); one that is not installed is reported as :data:`NOT_INSTALLED`.
    """
    import joblib
    import numpy
    import scipy
    import sklearn

    versions = {
        "python": "{}.{}.{}".format(*sys.version_info[:3]),
        "numpy": numpy.__version__,
        "scipy": scipy.__version__,
        "scikit-learn": sklearn.__version__,
        "joblib": joblib.__version__,
    }
    others = [name for name in libraries if name not in versions]
    if others:
        from importlib import metadata

        for name in others:
            try:
                versions[name] = metadata.version(name)
            except metadata.PackageNotFoundError:
                versions[name] = NOT_INSTALLED
    return versions


def check_versions(manifest: Manifest, installed: dict[str, str]) -> None:
    """Refuse a model trained with other versions of any library its manifest records.

    ``installed`` is :func:`installed_versions` of the manifest's libraries: numpy / scipy /
    scikit-learn / joblib always, and every other library the artifacts' pickles name
    (``lightgbm``, ``pandas``). Python must match in major.minor only (pickles are portable
    across patch releases).

    Raises
    ------
    ModelLoadError
        Listing every library whose trained and installed versions differ.
    """
    trained = manifest["libraries"]
    mismatches = []
    for lib, have in installed.items():
        want = str(trained.get(lib, "?"))  # a hand-edited manifest may hold a number
        same = want.split(".")[:2] == have.split(".")[:2] if lib == "python" else want == have
        if not same:
            mismatches.append(f"{lib} {want} (trained) vs {have} (installed)")
    if mismatches:
        absent = [lib for lib, have in installed.items() if have == NOT_INSTALLED]
        extra = (
            f" (for {', '.join(absent)}: build the dependencies layer with it, make deps-layer "
            f"EXTRAS={','.join(absent)}, docs/layers.md)"
            if absent
            else ""
        )
        raise ModelLoadError(
            f"model {manifest['name']} {manifest['version']} was built with other library "
            f"versions than this runtime: {'; '.join(mismatches)}. Retrain with the pinned "
            f"requirements, or attach the dependencies layer built from the same pins{extra}"
        )


def load_model(model_dir: Path | str, artifacts_uri: str | None = None, cache_dir: Path | None = None) -> LoadedModel:
    """Read the manifest, verify every artifact's sha256, and unpickle the pipeline.

    Each artifact is read once; its bytes are hashed and, only if they match the
    manifest, unpickled from that same buffer (joblib runs code on load, so nothing
    unverified is ever loaded). scikit-learn's ``InconsistentVersionWarning`` is raised
    as an error. The manifest's custom code is verified and imported first
    (:mod:`inference.custom_code`). Artifacts in S3 (``artifacts_uri``, else the manifest's)
    are downloaded into ``cache_dir`` (default ``/tmp/model-artifacts``) and verified first
    (:mod:`inference.remote_artifacts`).

    Raises
    ------
    ModelLoadError
        On a missing or malformed manifest, a missing or tampered artifact or custom code
        file, an artifact that cannot be fetched from S3, or a library version mismatch;
        the message says which and what to do.
    """
    model_dir = Path(model_dir)
    try:
        manifest = read_manifest(model_dir)
    except ManifestError as exc:
        raise ModelLoadError(str(exc)) from None
    check_versions(manifest, installed_versions(manifest["libraries"]))
    missing = require_libraries(manifest["input"]) if manifest["input"]["kind"] == "tabular" else ""
    if missing:
        raise ModelLoadError(missing)
    try:
        import_custom_code(model_dir, manifest)
    except CustomCodeError as exc:
        raise ModelLoadError(str(exc)) from None
    paths = {step["file"]: model_dir / step["file"] for step in manifest["pipeline"]}
    uri = artifacts_uri or manifest.get("artifacts_uri")
    if uri:
        from .remote_artifacts import DEFAULT_CACHE_DIR, RemoteArtifactError, fetch_artifacts

        try:
            paths = fetch_artifacts(manifest, uri, cache_dir or DEFAULT_CACHE_DIR)
        except RemoteArtifactError as exc:
            raise ModelLoadError(str(exc)) from None

    import joblib
    from sklearn.exceptions import InconsistentVersionWarning

    objects = []
    for step in manifest["pipeline"]:
        path = paths[step["file"]]
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise ModelLoadError(
                f"artifact {step['file']} listed in the manifest is missing from {model_dir}"
            ) from None
        actual = sha256_bytes(data)
        if actual != step["sha256"]:
            raise ModelLoadError(
                f"artifact {step['file']} does not match the manifest (sha256 {actual}, "
                f"expected {step['sha256']}): refusing to load it. Rebuild the model layer "
                "from trusted artifacts with `make model-layer`"
            )
        with warnings.catch_warnings():
            warnings.simplefilter("error", InconsistentVersionWarning)
            try:
                objects.append(joblib.load(io.BytesIO(data)))
            except InconsistentVersionWarning as exc:
                raise ModelLoadError(
                    f"artifact {step['file']} was pickled by scikit-learn "
                    f"{exc.original_sklearn_version} but this runtime has "
                    f"{exc.current_sklearn_version}: retrain with scikit-learn "
                    f"{exc.current_sklearn_version} or serve with {exc.original_sklearn_version}"
                ) from None
    estimator = objects[-1]
    check_estimator_fits(manifest, estimator)
    return LoadedModel(manifest, tuple(objects[:-1]), estimator)


def check_estimator_fits(manifest: Manifest, estimator: Any) -> None:
    """Refuse an estimator whose task, methods or classes are not the manifest's.

    Raises
    ------
    ModelLoadError
        Naming what differs; repackaging with ``make model-layer`` writes a manifest that fits.
    """
    task = manifest_task(manifest)
    found = estimator_task(estimator)
    if found != task:
        raise ModelLoadError(
            f"the manifest says task {task!r}, but the last artifact is "
            f"{f'a {found}' if found else 'no classifier, regressor, outlier detector or clusterer'}: "
            "repackage the model with `make model-layer`"
        )
    missing = [
        m for m in required_methods(task, manifest.get("class_probabilities", False)) if not hasattr(estimator, m)
    ]
    if missing:
        raise ModelLoadError(
            f"the {task} has no {', '.join(missing)}(), which its manifest needs: repackage the model with "
            "`make model-layer`"
        )
    if task == "classifier":
        classes = manifest.get("classes", [])
        if [str(c) for c in getattr(estimator, "classes_", [])] != [str(c) for c in classes]:
            raise ModelLoadError(
                f"manifest classes {classes} differ from the classifier's classes_ "
                f"{list(getattr(estimator, 'classes_', []))}"
            )
