"""The team's own code: a model whose pickle needs a module of the team's, packaged, verified and served.

The gallery model is a wine classifier whose pipeline starts with a transformer defined in a
package of its own (``wine_features/``, a submodule and an ``__init__``), as a data team
would write it. It is fitted here with that package importable, dumped with joblib, and the
package is then removed from the import system, as in a fresh process; packaging through
``layers.model_layer``'s command line finds the package by scanning the pickle, lists its
files in the manifest and ships them in the layer; the function verifies and imports them
before unpickling. Every prediction equals the pipeline's own ``predict_proba``.
"""

from __future__ import annotations

import io
import json
import sys
import textwrap
import zipfile
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pytest
from inference.app import App
from inference.manifest import MANIFEST_NAME, read_manifest, sha256_file
from inference.model import ModelLoadError, load_model
from sklearn import datasets
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from layers.function_zip import build_function_zip
from layers.model_layer import main as model_layer
from layers.pickle_scan import pickle_globals
from localtwin.invoke import invoke
from release.model_zip import verify_model_zip
from testing.events import kinesis_record

PACKAGE = "wine_features"
FEATURES = ["alcohol", "malic_acid", "ash", "magnesium", "proline"]
ROWS = 30

INIT = f"""
from {PACKAGE}.ratios import LogRatios

__all__ = ["LogRatios"]
"""
RATIOS = """
import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin


class LogRatios(BaseEstimator, TransformerMixin):
    \"\"\"Appends log(1 + x) of every column: a transformer a team writes itself.\"\"\"

    def fit(self, x, y=None):
        self.n_features_in_ = np.asarray(x).shape[1]
        return self

    def transform(self, x):
        x = np.asarray(x, dtype=float)
        return np.hstack([x, np.log1p(np.abs(x))])
"""


def write_package(folder: Path, name: str = PACKAGE, ratios: str = RATIOS) -> None:
    (folder / name).mkdir(parents=True)
    (folder / name / "__init__.py").write_text(textwrap.dedent(INIT.replace(PACKAGE, name)))
    (folder / name / "ratios.py").write_text(textwrap.dedent(ratios))


def forget(name: str, folder: Path) -> None:
    """Unload ``name`` and take ``folder`` off the path: the next import is a fresh process's."""
    for module in [m for m in sys.modules if m == name or m.startswith(name + ".")]:
        del sys.modules[module]
    while str(folder) in sys.path:
        sys.path.remove(str(folder))


def fit_with_package(folder: Path, name: str = PACKAGE) -> tuple[Any, np.ndarray]:
    """A pipeline (the team's transformer, a scaler, a classifier) fitted on wine, dumped to ``folder``."""
    write_package(folder, name)
    sys.path.insert(0, str(folder))
    try:
        module = __import__(name)
        wine = datasets.load_wine()
        columns = [wine.feature_names.index(f) for f in FEATURES]
        x = wine.data[:, columns]
        pipeline = make_pipeline(module.LogRatios(), StandardScaler(), LogisticRegression(max_iter=2000))
        pipeline.fit(x, wine.target)
        joblib.dump(pipeline, folder / "pipeline.joblib")
        expected = pipeline.predict_proba(x[::6][:ROWS])
    finally:
        forget(name, folder)
    return pipeline, (x[::6][:ROWS], expected)


def package(folder: Path, out: Path, *extra: str) -> int:
    args = ["--src", str(folder), "--out", str(out), "--name", "wine-custom", "--version", "1.0.0"]
    return model_layer([*args, "--pipeline", "pipeline.joblib", "--features", ",".join(FEATURES), *extra])


def kinesis_batch(rows: np.ndarray) -> dict[str, Any]:
    docs = [dict(zip(FEATURES, row)) for row in rows.tolist()]
    return {"Records": [kinesis_record(json.dumps(doc), 2000 + i) for i, doc in enumerate(docs)]}


def assert_predicts_like_the_model(predictions: dict[str, Any], event: dict[str, Any], proba: np.ndarray) -> None:
    got = [predictions[record["eventID"]] for record in event["Records"]]
    assert [g["label"] for g in got] == proba.argmax(axis=1).tolist()
    assert np.allclose([g["probability"] for g in got], proba.max(axis=1), rtol=1e-9, atol=0)


@pytest.fixture(scope="module")
def packaged(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, tuple[np.ndarray, np.ndarray]]:
    """(model folder with its manifest, layer zip, (rows, the model's own predict_proba on them))."""
    folder = tmp_path_factory.mktemp("custom") / "model"
    folder.mkdir()
    _, expected = fit_with_package(folder)
    (folder / "notes.txt").write_text("not code: never shipped")
    out = folder.parent / "model-layer.zip"
    assert package(folder, out) == 0
    return folder, out, expected


@pytest.mark.unit
def test_the_package_is_found_by_scanning_and_every_file_listed(packaged: Any) -> None:
    folder, out, _ = packaged
    manifest = read_manifest(folder)

    assert manifest["code"]["modules"] == [PACKAGE]
    listed = {entry["file"]: entry["sha256"] for entry in manifest["code"]["files"]}
    assert listed == {
        f"{PACKAGE}/__init__.py": sha256_file(folder / PACKAGE / "__init__.py"),
        f"{PACKAGE}/ratios.py": sha256_file(folder / PACKAGE / "ratios.py"),
    }
    with zipfile.ZipFile(out) as zf:
        names = set(zf.namelist())
    assert {f"model/{file}" for file in listed} <= names
    assert "model/notes.txt" not in names
    assert verify_model_zip(out)["code"] == manifest["code"]  # nothing unlisted in the layer


@pytest.mark.unit
def test_the_handler_predicts_what_the_model_predicts(packaged: Any) -> None:
    folder, _, (rows, proba) = packaged
    event = kinesis_batch(rows)

    response = App.from_env({"MODEL_DIR": str(folder)}).handle(event)

    assert response["batchItemFailures"] == []
    assert_predicts_like_the_model(response["predictions"], event, proba)


@pytest.mark.twin
def test_from_the_zips_as_lambda_runs_them(packaged: Any, deps_layer: Path, tmp_path: Path) -> None:
    _, layer, (rows, proba) = packaged
    event = kinesis_batch(rows)
    function_zip = build_function_zip(tmp_path / "function.zip")

    proc = invoke(event, function_zip, [deps_layer, layer], workdir=tmp_path / "invoke")

    assert proc.returncode == 0, proc.stderr
    response = json.loads(proc.stdout)
    assert response["batchItemFailures"] == []
    assert_predicts_like_the_model(response["predictions"], event, proba)


@pytest.mark.unit
def test_a_tampered_code_file_is_refused_at_init(tmp_path: Path) -> None:
    folder = tmp_path / "model"
    folder.mkdir()
    fit_with_package(folder, "tamper_features")
    assert package(folder, tmp_path / "layer.zip") == 0
    forget("tamper_features", folder)  # the function starts in a fresh process
    ratios = folder / "tamper_features" / "ratios.py"
    ratios.write_text(ratios.read_text() + "\nimport os  # tampered\n")

    with pytest.raises(ModelLoadError, match=r"custom code file tamper_features/ratios.py does not match the manifest"):
        load_model(folder)
    assert "tamper_features" not in sys.modules  # refused before any of it ran


class NotebookScaler(StandardScaler):
    """A class as a notebook defines it: its module is ``__main__``."""


@pytest.mark.unit
def test_a_pickle_of_a_notebook_class_is_refused_at_packaging_naming_the_fix(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(NotebookScaler, "__module__", "__main__")
    monkeypatch.setattr(sys.modules["__main__"], "NotebookScaler", NotebookScaler, raising=False)
    wine = datasets.load_wine()
    x = wine.data[:, :5]
    folder = tmp_path / "model"
    folder.mkdir()
    joblib.dump(make_pipeline(NotebookScaler(), LogisticRegression(max_iter=2000)).fit(x, wine.target), folder / "p.j")

    args = ["--src", str(folder), "--out", str(tmp_path / "l.zip"), "--name", "n", "--version", "1"]
    assert model_layer([*args, "--pipeline", "p.j", "--features", ",".join(FEATURES)]) == 2

    err = capsys.readouterr().err
    assert "p.j refers to NotebookScaler in __main__" in err
    assert "move the class into a module" in err and "re-fit or re-dump" in err
    assert not (folder / MANIFEST_NAME).exists()


@pytest.mark.unit
def test_a_module_neither_installed_nor_shipped_is_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "model"
    folder.mkdir()
    fit_with_package(folder, "gone_features")
    for file in (folder / "gone_features").iterdir():
        file.unlink()
    (folder / "gone_features").rmdir()

    assert package(folder, tmp_path / "layer.zip") == 2

    assert "pipeline.joblib needs module(s) gone_features, neither installed" in capsys.readouterr().err


@pytest.mark.unit
def test_code_that_needs_a_file_that_does_not_ship_fails_at_packaging(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "model"
    folder.mkdir()
    fit_with_package(folder, "leaky_features")
    (folder / "leaky_helpers.py").write_text("SCALE = 1\n")
    init = folder / "leaky_features" / "__init__.py"
    init.write_text("import leaky_helpers\n" + init.read_text())

    assert package(folder, tmp_path / "layer.zip") == 2

    err = capsys.readouterr().err
    assert "leaky_features raises on import from the files that ship" in err and "leaky_helpers" in err


@pytest.mark.unit
@pytest.mark.parametrize("compress", [0, 3, ("gzip", 3), ("lzma", 3)], ids=["raw", "zlib", "gzip", "lzma"])
def test_the_scan_reads_every_global_of_a_joblib_file_without_importing(compress: Any) -> None:
    """Past raw array bytes and object arrays (joblib writes both inside the pickle stream)."""
    payload = {
        "numbers": np.arange(100.0),
        "records": np.zeros(3, dtype=[("a", "f8"), ("b", "i4")]),
        "objects": np.array(["x", 1], dtype=object),
        "after": io.StringIO,  # a global after every array
    }
    buffer = io.BytesIO()
    joblib.dump(payload, buffer, compress=compress)

    found = pickle_globals(buffer.getvalue())

    assert ("_io", "StringIO") in found and ("joblib.numpy_pickle", "NumpyArrayWrapper") in found
