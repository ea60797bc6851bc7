"""Loading the model layer once, verified, and predicting a whole batch in one call."""

from __future__ import annotations

import io
import sys
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .manifest import Manifest, ManifestError, read_manifest, sha256_bytes


class ModelLoadError(RuntimeError):
    """The model layer cannot be served: tampered, incompatible, or unreadable."""


@dataclass(frozen=True)
class Predictions:
    """Results of one vectorised predict, in input order."""

    labels: list[Any]
    #: Winning-class probability per input, or ``None`` when the classifier has no
    #: ``predict_proba``.
    probabilities: list[float] | None


@dataclass(frozen=True)
class LoadedModel:
    """A verified pipeline: preprocessors applied in order, then the classifier."""

    manifest: Manifest
    preprocessors: tuple[Any, ...]
    classifier: Any

    @property
    def name(self) -> str:
        return self.manifest["name"]

    @property
    def version(self) -> str:
        return self.manifest["version"]

    def predict(self, inputs: Sequence[Any]) -> Predictions:
        """Predict every input in one vectorised call.

        Parameters
        ----------
        inputs : sequence
            Texts (text models) or rows of floats in manifest feature order (tabular).

        Returns
        -------
        Predictions
            Labels, and the winning class probability when the classifier has
            ``predict_proba`` (the label is then the arg-max class, so one call
            gives both).
        """
        features: Any = inputs
        if self.manifest["input"]["kind"] == "tabular":
            import numpy as np

            features = np.asarray(inputs, dtype=np.float64).reshape(len(inputs), -1)
        for step in self.preprocessors:
            features = step.transform(features)
        if hasattr(self.classifier, "predict_proba"):
            proba = self.classifier.predict_proba(features)
            best = proba.argmax(axis=1)
            labels = self.classifier.classes_[best].tolist()
            return Predictions(labels, proba[range(len(best)), best].tolist())
        return Predictions(self.classifier.predict(features).tolist(), None)


def installed_versions() -> dict[str, str]:
    import joblib
    import numpy
    import scipy
    import sklearn

    return {
        "python": "{}.{}.{}".format(*sys.version_info[:3]),
        "numpy": numpy.__version__,
        "scipy": scipy.__version__,
        "scikit-learn": sklearn.__version__,
        "joblib": joblib.__version__,
    }


def check_versions(manifest: Manifest, installed: dict[str, str]) -> None:
    """Refuse a model trained with other numpy / scipy / scikit-learn / joblib versions.

    Python must match in major.minor only (pickles are portable across patch releases).

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
        raise ModelLoadError(
            f"model {manifest['name']} {manifest['version']} was built with other library "
            f"versions than this runtime: {'; '.join(mismatches)}. Retrain with the pinned "
            "requirements, or attach the dependencies layer built from the same pins"
        )


def load_model(model_dir: Path | str) -> LoadedModel:
    """Read the manifest, verify every artifact's sha256, and unpickle the pipeline.

    Each artifact is read once; its bytes are hashed and, only if they match the
    manifest, unpickled from that same buffer (joblib runs code on load, so nothing
    unverified is ever loaded). scikit-learn's ``InconsistentVersionWarning`` is raised
    as an error.

    Raises
    ------
    ModelLoadError
        On a missing or malformed manifest, a missing or tampered artifact, or a
        library version mismatch; the message says which and what to do.
    """
    model_dir = Path(model_dir)
    try:
        manifest = read_manifest(model_dir)
    except ManifestError as exc:
        raise ModelLoadError(str(exc)) from None
    check_versions(manifest, installed_versions())

    import joblib
    from sklearn.exceptions import InconsistentVersionWarning

    objects = []
    for step in manifest["pipeline"]:
        path = model_dir / step["file"]
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
    classifier = objects[-1]
    if [str(c) for c in getattr(classifier, "classes_", [])] != [str(c) for c in manifest["classes"]]:
        raise ModelLoadError(
            f"manifest classes {manifest['classes']} differ from the classifier's "
            f"classes_ {list(getattr(classifier, 'classes_', []))}"
        )
    return LoadedModel(manifest, tuple(objects[:-1]), classifier)
