"""load_model: verify before unpickling, refuse other library versions, predict in one call."""

from __future__ import annotations

import contextlib
import json
import shutil
import sys
from pathlib import Path

import joblib
import numpy as np
import pytest
import sklearn
import sklearn.base
from inference.manifest import MANIFEST_NAME, ManifestError, read_manifest, sha256_file
from inference.model import LoadedModel, ModelLoadError, check_versions, load_model

from training.tabular_model import TABULAR_FEATURES

pytestmark = pytest.mark.unit


@pytest.fixture
def model_copy(text_model_dir: Path, tmp_path: Path) -> Path:
    """A private copy of the packaged text model, free to be broken."""
    return Path(shutil.copytree(text_model_dir, tmp_path / "model"))


def read_json(path: Path) -> dict:
    return json.loads(path.read_text())


def edit_manifest(model_dir: Path, change) -> None:
    path = model_dir / MANIFEST_NAME
    manifest = read_json(path)
    change(manifest)
    path.write_text(json.dumps(manifest))


def set_sha(model_dir: Path, file: str) -> None:
    """Record the current sha256 of ``file`` in the manifest (as a trusted repackaging would)."""

    def change(manifest: dict) -> None:
        for step in manifest["pipeline"]:
            if step["file"] == file:
                step["sha256"] = sha256_file(model_dir / file)

    edit_manifest(model_dir, change)


class _SideEffect:
    """Unpickling this runs code: it writes ``marker`` (as a malicious artifact would)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (exec, (f"open({str(self.marker)!r}, 'w').write('unpickled')",))


# --- loading ----------------------------------------------------------------------------


def test_load_model_gives_a_verified_pipeline(text_model: LoadedModel, text_model_dir: Path) -> None:
    manifest = read_json(text_model_dir / MANIFEST_NAME)
    assert (text_model.name, text_model.version) == (manifest["name"], manifest["version"])
    assert len(text_model.preprocessors) == 2
    assert list(text_model.estimator.classes_) == manifest["classes"] == ["fresh", "rotten"]
    out = text_model.predict(["wonderful brilliant film", "boring awful film"])
    assert out.labels == ["fresh", "rotten"]
    assert all(0.5 <= p <= 1.0 for p in out.probabilities)


def test_tampered_artifact_is_refused_naming_the_file(model_copy: Path) -> None:
    path = model_copy / "classifier.joblib"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(ModelLoadError) as info:
        load_model(model_copy)
    message = str(info.value)
    assert "classifier.joblib" in message
    assert "does not match the manifest" in message
    assert sha256_file(path) in message


def test_unverified_artifact_is_never_unpickled(model_copy: Path, tmp_path: Path, monkeypatch) -> None:
    marker = tmp_path / "side-effect"
    joblib.dump(_SideEffect(marker), model_copy / "tfidf.joblib")  # manifest keeps the old sha256
    loads = []
    real_load = joblib.load
    monkeypatch.setattr(joblib, "load", lambda *a, **kw: loads.append(a) or real_load(*a, **kw))

    with pytest.raises(ModelLoadError, match="tfidf.joblib does not match the manifest"):
        load_model(model_copy)
    assert not marker.exists()
    assert len(loads) == 1  # only vectorizer.joblib, which precedes it and verifies

    # Control: the same bytes with a matching sha256 do run code when loaded, so the
    # refusal above is what kept it from running.
    set_sha(model_copy, "tfidf.joblib")
    with contextlib.suppress(Exception):  # whatever fails after the payload ran
        load_model(model_copy)
    assert marker.read_text() == "unpickled"


def test_missing_artifact_is_named(model_copy: Path) -> None:
    (model_copy / "tfidf.joblib").unlink()
    with pytest.raises(ModelLoadError, match=r"artifact tfidf\.joblib listed in the manifest is missing"):
        load_model(model_copy)


def test_missing_manifest(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError) as info:
        load_model(tmp_path)
    assert f"no {MANIFEST_NAME} in {tmp_path}" in str(info.value)
    with pytest.raises(ManifestError, match="no manifest.json"):
        read_manifest(tmp_path)


def test_manifest_that_is_not_json(model_copy: Path) -> None:
    (model_copy / MANIFEST_NAME).write_text("{ not json")
    with pytest.raises(ModelLoadError, match="manifest.json: not valid JSON"):
        load_model(model_copy)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda m: m.pop("pipeline"), "missing required key 'pipeline'"),
        (lambda m: m.pop("input"), "missing required key 'input'"),
        (lambda m: m["input"].pop("field"), "input: missing required key 'field'"),
        (lambda m: m["pipeline"][0].pop("sha256"), "pipeline[0]: missing required key 'sha256'"),
        (lambda m: m["libraries"].pop("numpy"), "'libraries' lacks versions for numpy"),
        (lambda m: m.update(schema_version=99), "schema_version 99 is not supported"),
        (lambda m: m.update(name=7), "'name' must be str, got int"),
        (lambda m: m["pipeline"][2].update(file="../classifier.joblib"), "must be a plain file name"),
        (lambda m: m["pipeline"].reverse(), "out of place"),
        (lambda m: m.update(classes=[]), "'classes' must list"),
    ],
    ids=[
        "no-pipeline",
        "no-input",
        "no-text-field",
        "no-sha",
        "no-numpy-version",
        "schema",
        "name-type",
        "path-file",
        "order",
        "no-classes",
    ],
)
def test_malformed_manifest_is_refused_with_a_clear_message(model_copy: Path, change, message: str) -> None:
    edit_manifest(model_copy, change)
    with pytest.raises(ModelLoadError) as info:
        load_model(model_copy)
    assert message in str(info.value)


def test_manifest_classes_must_match_the_classifier(model_copy: Path) -> None:
    edit_manifest(model_copy, lambda m: m.update(classes=["good", "bad"]))
    with pytest.raises(ModelLoadError, match=r"manifest classes \['good', 'bad'\] differ"):
        load_model(model_copy)


# --- library versions -----------------------------------------------------------------------


def test_classifier_pickled_by_another_scikit_learn_is_refused(model_copy: Path, monkeypatch) -> None:
    classifier = joblib.load(model_copy / "classifier.joblib")
    with monkeypatch.context() as patch:
        patch.setattr(sklearn.base, "__version__", "1.5.0")
        joblib.dump(classifier, model_copy / "classifier.joblib")
    set_sha(model_copy, "classifier.joblib")  # sha and manifest versions all fine
    assert read_json(model_copy / MANIFEST_NAME)["libraries"]["scikit-learn"] == sklearn.__version__

    with pytest.raises(ModelLoadError) as info:
        load_model(model_copy)
    message = str(info.value)
    assert "classifier.joblib" in message
    assert "1.5.0" in message and sklearn.__version__ in message


def test_manifest_library_versions_other_than_installed_are_refused(model_copy: Path) -> None:
    def change(m: dict) -> None:
        m["libraries"]["numpy"] = "1.26.4"
        m["libraries"]["scikit-learn"] = "1.5.0"

    edit_manifest(model_copy, change)
    with pytest.raises(ModelLoadError) as info:
        load_model(model_copy)
    message = str(info.value)
    assert f"numpy 1.26.4 (trained) vs {np.__version__} (installed)" in message
    assert f"scikit-learn 1.5.0 (trained) vs {sklearn.__version__} (installed)" in message
    assert "scipy" not in message  # only the libraries that differ are named


def test_python_must_match_in_major_minor_only(text_model: LoadedModel) -> None:
    major, minor = sys.version_info[:2]
    installed = {"python": f"{major}.{minor}.{sys.version_info[2]}"}
    patch_differs = {**text_model.manifest, "libraries": {"python": f"{major}.{minor}.999"}}
    check_versions(patch_differs, installed)  # no error
    minor_differs = {**text_model.manifest, "libraries": {"python": f"{major}.{minor - 1}.0"}}
    with pytest.raises(ModelLoadError, match=rf"python {major}\.{minor - 1}\.0 \(trained\)"):
        check_versions(minor_differs, installed)


def test_non_string_library_version_is_a_load_error_not_a_crash(model_copy: Path) -> None:
    edit_manifest(model_copy, lambda m: m["libraries"].update(python=3.9))
    with pytest.raises(ModelLoadError, match=r"python 3\.9 \(trained\)"):
        load_model(model_copy)


# --- tabular -------------------------------------------------------------------------------


def test_tabular_model_predicts_rows_in_feature_order(tabular_model: LoadedModel, tabular_model_dir: Path) -> None:
    assert tabular_model.manifest["input"] == {
        "kind": "tabular",
        "features": TABULAR_FEATURES,
        "types": ["number"] * len(TABULAR_FEATURES),
        "accepts_missing": [],  # the logistic regression refuses NaN
    }
    assert tabular_model.manifest["classes"] == [0, 1]
    # the label follows feature "a" alone: a row read in another column order flips it
    rows = [[3.0, -3.0, -3.0], [-3.0, 3.0, 3.0], [2.0, 0.0, -2.0]]
    out = tabular_model.predict(rows)
    assert out.labels == [1, 0, 1]
    scaler = joblib.load(tabular_model_dir / "scaler.joblib")
    classifier = joblib.load(tabular_model_dir / "classifier.joblib")
    proba = classifier.predict_proba(scaler.transform(np.asarray(rows)))
    assert np.allclose(out.probabilities, proba.max(axis=1))
    assert all(type(label) is int for label in out.labels)  # JSON-serialisable, not numpy ints


def test_classifier_without_predict_proba_gives_labels_only(tmp_path: Path) -> None:
    from sklearn.svm import LinearSVC

    from layers.model_layer import build_manifest, write_manifest

    x = np.array([[0.0, 0.0], [1.0, 1.0], [0.0, 1.0], [1.0, 0.0]] * 5)
    y = ["a", "b", "b", "a"] * 5
    joblib.dump(LinearSVC().fit(x, y), tmp_path / "svc.joblib")
    write_manifest(
        tmp_path, build_manifest(tmp_path, name="svc", version="1", pipeline=["svc.joblib"], features=["x", "y"])
    )
    out = load_model(tmp_path).predict([[0.0, 0.0], [1.0, 1.0]])
    assert out.probabilities is None
    assert len(out.labels) == 2 and set(out.labels) <= {"a", "b"}
