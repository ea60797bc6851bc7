"""Packaging: the model layer zip (``layers.model_layer``) and the function zip."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import joblib
import numpy as np
import pytest
import sklearn
import sklearn.base
from inference.manifest import listed_files, read_manifest, sha256_file
from inference.model import load_model
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

from layers import function_zip as package_function
from layers.function_zip import FUNCTION_DIR, build_function_zip
from layers.model_layer import PackagingError, build_manifest, verify_folder

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[1]


def run_model_layer(*args: str) -> subprocess.CompletedProcess:
    """``python -m layers.model_layer ARGS`` the way ``make model-layer`` runs it."""
    env = {**os.environ, "PYTHONPATH": f"{ROOT / 'function'}{os.pathsep}{ROOT}"}
    return subprocess.run(
        [sys.executable, "-m", "layers.model_layer", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def fit_tabular(folder: Path) -> None:
    """A StandardScaler + LogisticRegression on synthetic data, features a, b, c."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 3)) * [1.0, 10.0, 100.0]
    y = (x[:, 0] + x[:, 1] / 10 - x[:, 2] / 100 > 0).astype(int)
    scaler = StandardScaler().fit(x)
    classifier = LogisticRegression().fit(scaler.transform(x), y)
    folder.mkdir(parents=True, exist_ok=True)
    joblib.dump(scaler, folder / "scaler.joblib")
    joblib.dump(classifier, folder / "classifier.joblib")


# --------------------------------------------------------------------------- model layer


@pytest.mark.slow
def test_model_layer_from_manifest_folder_is_complete_and_reproducible(reference_model, tmp_path):
    first, second = tmp_path / "one.zip", tmp_path / "two.zip"

    for out in (first, second):
        proc = run_model_layer("--src", str(reference_model), "--out", str(out))
        assert proc.returncode == 0, proc.stderr
        assert "model layer:" in proc.stdout

    assert first.read_bytes() == second.read_bytes()
    manifest = read_manifest(reference_model)
    with zipfile.ZipFile(first) as zf:
        names = zf.namelist()
        assert sorted(names) == sorted(
            ["model/manifest.json"] + [f"model/{file}" for file, _ in listed_files(manifest)]
        )
        assert json.loads(zf.read("model/manifest.json")) == manifest
        for step in manifest["pipeline"]:
            assert zf.read(f"model/{step['file']}") == (reference_model / step["file"]).read_bytes()
    # Lambda extracts layers into /opt: the function's default MODEL_DIR is /opt/model.
    opt = tmp_path / "opt"
    with zipfile.ZipFile(first) as zf:
        zf.extractall(opt)
    assert load_model(opt / "model").manifest == manifest


def test_folder_without_manifest_names_the_missing_options(tmp_path):
    src = tmp_path / "bare"
    src.mkdir()
    (src / "classifier.joblib").write_bytes(b"not used")
    out = tmp_path / "layer.zip"

    proc = run_model_layer("--src", str(src), "--out", str(out))

    assert proc.returncode == 2
    for option in ("--name", "--version", "--pipeline"):
        assert option in proc.stderr
    assert not out.exists()
    assert not (src / "manifest.json").exists()

    # Naming some options: only the others are reported missing.
    proc = run_model_layer("--src", str(src), "--out", str(out), "--name", "x", "--pipeline", "classifier.joblib")
    assert proc.returncode == 2
    missing = proc.stderr.split("missing:", 1)[1]
    assert "--version" in missing
    assert "--name" not in missing and "--pipeline" not in missing


@pytest.mark.slow
def test_tabular_folder_with_options_gets_a_manifest(tmp_path):
    src = tmp_path / "tabular"
    fit_tabular(src)
    out = tmp_path / "layer.zip"

    options = ("--src", str(src), "--out", str(out), "--name", "churn")
    options += ("--pipeline", "scaler.joblib,classifier.joblib", "--features", "a,b,c")
    proc = run_model_layer(*options, "--version", "3")

    assert proc.returncode == 0, proc.stderr
    manifest = json.loads((src / "manifest.json").read_text())
    assert manifest["name"] == "churn" and manifest["version"] == "3"
    # Typed (all numbers); the scaler + logistic regression refuses NaN, which packaging found by trying.
    assert manifest["input"] == {
        "kind": "tabular",
        "features": ["a", "b", "c"],
        "types": ["number"] * 3,
        "accepts_missing": [],
    }
    assert manifest["classes"] == [0, 1]
    assert [(s["file"], s["role"]) for s in manifest["pipeline"]] == [
        ("scaler.joblib", "preprocessor"),
        ("classifier.joblib", "classifier"),
    ]
    for step in manifest["pipeline"]:
        assert step["sha256"] == sha256_file(src / step["file"])
    assert manifest["libraries"]["scikit-learn"] == sklearn.__version__
    with zipfile.ZipFile(out) as zf:
        assert sorted(zf.namelist()) == [
            "model/classifier.joblib",
            "model/golden.json",
            "model/manifest.json",
            "model/scaler.joblib",
        ]
    # The packaged model serves: rows in manifest feature order.
    model = load_model(src)
    predictions = model.predict([[3.0, 30.0, -300.0], [-3.0, -30.0, 300.0]])
    assert predictions.labels == [1, 0]

    # Re-running the same command checks the folder against the manifest it now has...
    assert run_model_layer(*options, "--version", "3").returncode == 0
    # ...but options that contradict it are not ignored silently.
    proc = run_model_layer(*options, "--version", "4")
    assert proc.returncode == 2
    assert "--version 4 but the manifest has 3" in proc.stderr
    assert json.loads((src / "manifest.json").read_text())["version"] == "3"


def test_tampered_artifact_is_refused(reference_model, tmp_path):
    src = tmp_path / "model"
    shutil.copytree(reference_model, src)
    artifact = src / "classifier.joblib"
    data = bytearray(artifact.read_bytes())
    data[len(data) // 2] ^= 0xFF
    artifact.write_bytes(bytes(data))
    out = tmp_path / "layer.zip"

    proc = run_model_layer("--src", str(src), "--out", str(out))

    assert proc.returncode == 2
    assert "classifier.joblib does not match its manifest" in proc.stderr
    assert sha256_file(artifact) in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not out.exists()


def test_artifact_from_another_scikit_learn_is_refused(tmp_path, monkeypatch):
    src = tmp_path / "old"
    src.mkdir()
    rng = np.random.default_rng(1)
    x = rng.normal(size=(50, 2))
    classifier = LogisticRegression().fit(x, (x[:, 0] > 0).astype(int))
    with monkeypatch.context() as patch:
        patch.setattr(sklearn.base, "__version__", "1.5.0")
        joblib.dump(classifier, src / "classifier.joblib")

    with pytest.raises(PackagingError) as excinfo:
        build_manifest(src, name="old", version="1", pipeline=["classifier.joblib"], features=["a", "b"])

    message = str(excinfo.value)
    assert "1.5.0" in message
    assert sklearn.__version__ in message
    assert "classifier.joblib" in message


@pytest.mark.slow
def test_manifest_classes_that_differ_from_the_classifier_are_refused(reference_model, tmp_path):
    src = tmp_path / "model"
    shutil.copytree(reference_model, src)
    manifest = json.loads((src / "manifest.json").read_text())
    manifest["classes"] = list(reversed(manifest["classes"]))
    (src / "manifest.json").write_text(json.dumps(manifest))

    proc = run_model_layer("--src", str(src), "--out", str(tmp_path / "layer.zip"))

    # The function would refuse this layer at start-up; packaging must refuse it first.
    assert proc.returncode == 2
    assert "classes" in proc.stderr
    assert not (tmp_path / "layer.zip").exists()


@pytest.mark.parametrize(("lib", "version"), [("numpy", "1.26.4"), ("python", "3.11.9")])
def test_manifest_from_other_library_versions_is_refused_before_unpickling(reference_model, tmp_path, lib, version):
    src = tmp_path / "model"
    shutil.copytree(reference_model, src)
    manifest = json.loads((src / "manifest.json").read_text())
    manifest["libraries"][lib] = version
    (src / "manifest.json").write_text(json.dumps(manifest))
    (src / "classifier.joblib").write_bytes(b"never unpickled")  # the version check comes first

    # The function refuses such a layer at init (inference.model.check_versions): so does packaging.
    with pytest.raises(PackagingError, match=f"{lib} {version} \\(trained\\)"):
        verify_folder(src)


def test_file_that_is_not_a_joblib_artifact_is_refused_clearly(tmp_path):
    (tmp_path / "classifier.joblib").write_bytes(b"\x80\x04 definitely not a pickle")

    with pytest.raises(PackagingError, match="classifier.joblib cannot be loaded with joblib"):
        build_manifest(tmp_path, name="n", version="1", pipeline=["classifier.joblib"], text_field="text")


def test_build_manifest_needs_exactly_one_input_contract(tmp_path):
    fit_tabular(tmp_path)
    for kwargs in ({}, {"text_field": "text", "features": ["a", "b", "c"]}):
        with pytest.raises(PackagingError, match="--text-field NAME .* or --features"):
            build_manifest(tmp_path, name="n", version="1", pipeline=["scaler.joblib", "classifier.joblib"], **kwargs)


# --------------------------------------------------------------------------- function zip


def test_function_zip_holds_only_the_function_sources(tmp_path):
    out = build_function_zip(tmp_path / "function.zip")

    with zipfile.ZipFile(out) as zf:
        names = zf.namelist()
        expected = {"lambda_function.py"} | {f"inference/{p.name}" for p in (FUNCTION_DIR / "inference").glob("*.py")}
        assert set(names) == expected
        assert len(names) == len(expected)
        for name in names:
            assert zf.read(name) == (FUNCTION_DIR / name).read_bytes()
    assert not any("__pycache__" in n or n.endswith(".pyc") for n in names)
    assert not any(part in n.lower() for n in names for part in ("numpy", "sklearn", "scipy", "joblib"))
    assert out.stat().st_size < 100_000
    # Same sources, same bytes.
    assert build_function_zip(tmp_path / "again.zip").read_bytes() == out.read_bytes()


def test_function_zip_leaves_out_bytecode_and_stray_files(tmp_path, monkeypatch):
    tree = tmp_path / "function"
    shutil.copytree(FUNCTION_DIR, tree, ignore=shutil.ignore_patterns("__pycache__"))
    (tree / "inference" / "__pycache__").mkdir()
    (tree / "inference" / "__pycache__" / "app.cpython-311.pyc").write_bytes(b"bytecode")
    (tree / "__pycache__").mkdir()
    (tree / "__pycache__" / "lambda_function.cpython-311.pyc").write_bytes(b"bytecode")
    (tree / "inference" / "stale.pyc").write_bytes(b"bytecode")
    (tree / "inference" / "notes.txt").write_text("scratch")
    monkeypatch.setattr(package_function, "FUNCTION_DIR", tree)

    with zipfile.ZipFile(package_function.build_function_zip(tmp_path / "function.zip")) as zf:
        names = zf.namelist()

    assert "lambda_function.py" in names
    assert all(n == "lambda_function.py" or (n.startswith("inference/") and n.endswith(".py")) for n in names)
    assert not any("__pycache__" in n or n.endswith((".pyc", ".txt")) for n in names)
