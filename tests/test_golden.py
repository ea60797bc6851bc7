"""Golden predictions: written at packaging, listed in the manifest, required of the built layers."""

from __future__ import annotations

import json
import platform
import sys
import zipfile
from pathlib import Path

import joblib
import pytest
from inference.manifest import MANIFEST_NAME, sha256_file
from sklearn import datasets
from sklearn.linear_model import Ridge
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from layers import checks
from layers.deps_layer import ARCH_TAG, python_version
from layers.function_zip import build_function_zip
from layers.golden import GOLDEN_ATOL, GOLDEN_MAX, GOLDEN_NAME, GOLDEN_RTOL, compare
from layers.model_layer import PackagingError, main, verify_folder
from release.errors import ReleaseError
from release.model_zip import verify_model_zip

DIABETES = datasets.load_diabetes()
FEATURES = list(DIABETES.feature_names)
RUNTIME = "python3.12"


def regressor_folder(folder: Path) -> Path:
    folder.mkdir(parents=True)
    model = make_pipeline(StandardScaler(), Ridge()).fit(DIABETES.data, DIABETES.target)
    joblib.dump(model, folder / "model.joblib")
    return folder


def package(folder: Path, *options: str) -> Path:
    out = folder.parent / "model-layer.zip"
    args = ["--src", str(folder), "--out", str(out), "--name", "diabetes", "--version", "1"]
    assert main([*args, "--pipeline", "model.joblib", "--features", ",".join(FEATURES), *options]) == 0
    return out


def sample_file(path: Path, rows: int) -> Path:
    records = [dict(zip(FEATURES, row)) for row in DIABETES.data[:rows].tolist()]
    path.write_text("\n".join(json.dumps(r) for r in records) + "\n")  # JSON Lines
    return path


def rewrite_golden(folder: Path, edit) -> None:
    """Change golden.json with ``edit(document)`` and give the manifest its new sha256 (a consistent forgery)."""
    path = folder / GOLDEN_NAME
    document = json.loads(path.read_text())
    edit(document)
    path.write_text(json.dumps(document))
    manifest = json.loads((folder / MANIFEST_NAME).read_text())
    manifest["golden"]["sha256"] = sha256_file(path)
    (folder / MANIFEST_NAME).write_text(json.dumps(manifest))


def test_packaging_keeps_the_sample_with_the_models_own_results(tmp_path: Path) -> None:
    folder = regressor_folder(tmp_path / "model")
    layer = package(folder, "--sample", str(sample_file(tmp_path / "sample.jsonl", GOLDEN_MAX + 5)))

    manifest = json.loads((folder / MANIFEST_NAME).read_text())
    golden = json.loads((folder / GOLDEN_NAME).read_text())
    model = joblib.load(folder / "model.joblib")

    assert manifest["golden"] == {
        "file": GOLDEN_NAME,
        "sha256": sha256_file(folder / GOLDEN_NAME),
        "records": GOLDEN_MAX,
    }
    assert golden["results"] == [{"value": v} for v in model.predict(DIABETES.data[:GOLDEN_MAX]).tolist()]
    with zipfile.ZipFile(layer) as zf:
        assert f"model/{GOLDEN_NAME}" in zf.namelist()
        assert json.loads(zf.read(f"model/{GOLDEN_NAME}")) == golden
    assert verify_model_zip(layer)["golden"] == manifest["golden"]


def test_without_a_sample_synthetic_records_are_kept(tmp_path: Path) -> None:
    folder = regressor_folder(tmp_path / "model")
    package(folder)

    golden = json.loads((folder / GOLDEN_NAME).read_text())

    assert golden["records"] == [dict.fromkeys(FEATURES, v) for v in (0.0, 1.0, -1.0)]
    assert len(golden["results"]) == 3 and all(isinstance(r["value"], float) for r in golden["results"])


def test_a_sample_record_that_does_not_fit_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = regressor_folder(tmp_path / "model")
    sample = tmp_path / "sample.json"
    sample.write_text(json.dumps([dict.fromkeys(FEATURES, 0.0), {"age": 1.0}]))
    args = ["--src", str(folder), "--out", str(tmp_path / "l.zip"), "--name", "d", "--version", "1"]

    code = main([*args, "--pipeline", "model.joblib", "--features", ",".join(FEATURES), "--sample", str(sample)])

    assert code == 2
    assert "--sample record 1: missing feature 'sex'" in capsys.readouterr().err
    assert not (folder / MANIFEST_NAME).exists()


def test_a_folder_whose_golden_results_this_pipeline_does_not_reproduce_is_refused(tmp_path: Path) -> None:
    folder = regressor_folder(tmp_path / "model")
    package(folder)
    rewrite_golden(folder, lambda doc: doc["results"][1].update(value=doc["results"][1]["value"] + 0.5))

    with pytest.raises(PackagingError, match=r"does not reproduce its golden predictions here: record 1 value"):
        verify_folder(folder)


def test_a_golden_file_that_differs_from_its_manifest_is_not_published(tmp_path: Path) -> None:
    folder = regressor_folder(tmp_path / "model")
    layer = package(folder)
    forged = tmp_path / "forged.zip"
    with zipfile.ZipFile(layer) as zin, zipfile.ZipFile(forged, "w") as zout:
        for name in zin.namelist():
            data = zin.read(name)
            zout.writestr(name, data.replace(b'"value": ', b'"value": 1') if name.endswith(GOLDEN_NAME) else data)

    with pytest.raises(ReleaseError, match=f"{GOLDEN_NAME} has sha256 .* but the manifest says"):
        verify_model_zip(forged)


def test_compare_holds_floats_to_the_documented_tolerance_and_the_rest_exactly() -> None:
    want = [{"value": 100.0, "label": -1, "probabilities": {"a": 0.25}, "probability": None}]
    within = 100.0 * (1 + GOLDEN_RTOL / 2)
    beyond = 100.0 * (1 + 3 * GOLDEN_RTOL) + GOLDEN_ATOL

    assert compare(want, [{"value": within, "label": -1, "probabilities": {"a": 0.25}, "probability": None}]) == []
    assert compare(want, [{"value": beyond, "label": -1, "probabilities": {"a": 0.25}, "probability": None}]) == [
        f"record 0 value: got {beyond!r}, packaged 100.0"
    ]
    assert compare(want, [{"value": 100.0, "label": 1, "probabilities": {"a": 0.25}, "probability": None}])
    assert compare(want, [{"value": 100.0, "label": -1.0, "probabilities": {"a": 0.25}, "probability": None}])
    assert compare(want, [{"value": 100.0, "label": -1, "probabilities": {"b": 0.25}, "probability": None}])
    assert compare(want, [{"value": float("nan"), "label": -1, "probabilities": {"a": 0.25}, "probability": None}])
    assert compare(want, [None]) and compare(want, [])


runs_the_layers = pytest.mark.skipif(
    "{}.{}".format(*sys.version_info[:2]) != python_version(RUNTIME) or platform.machine() != ARCH_TAG["x86_64"],
    reason=f"the smoke test runs the layers only on {RUNTIME} x86_64",
)


@pytest.fixture(scope="module")
def function_zip(tmp_path_factory: pytest.TempPathFactory, deps_layer: Path) -> Path:
    return build_function_zip(tmp_path_factory.mktemp("function") / "function.zip")


@pytest.mark.twin
@runs_the_layers
def test_the_built_layers_reproduce_the_golden_predictions(function_zip: Path, tmp_path: Path) -> None:
    folder = regressor_folder(tmp_path / "model")
    layer = package(folder, "--sample", str(sample_file(tmp_path / "sample.jsonl", 8)))

    finding = checks.check_smoke(function_zip, [checks.DEPS_ZIP, layer], RUNTIME, "x86_64")

    assert finding.ok, finding.detail
    assert "reproduce all 8 golden predictions" in finding.detail


@pytest.mark.twin
@runs_the_layers
def test_layers_that_do_not_reproduce_them_are_refused(function_zip: Path, tmp_path: Path) -> None:
    """As if the dependencies layer computed otherwise than the packaging environment."""
    folder = regressor_folder(tmp_path / "model")
    package(folder, "--sample", str(sample_file(tmp_path / "sample.jsonl", 4)))
    rewrite_golden(folder, lambda doc: doc["results"][2].update(value=doc["results"][2]["value"] * (1 + 1e-6)))
    layer = tmp_path / "forged.zip"
    with zipfile.ZipFile(layer, "w") as zf:
        for file in (MANIFEST_NAME, "model.joblib", GOLDEN_NAME):
            zf.write(folder / file, f"model/{file}")

    finding = checks.check_smoke(function_zip, [checks.DEPS_ZIP, layer], RUNTIME, "x86_64")

    assert not finding.ok
    assert "1 golden result(s) differ" in finding.detail and "record 2 value" in finding.detail
    assert "make deps-layer" in finding.detail
