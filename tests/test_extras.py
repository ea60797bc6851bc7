"""Extra libraries (LightGBM as the worked example): packaged, versioned, shipped and served from the zips.

The LightGBM gallery model is packaged through ``layers.model_layer``'s command line (what
``make model-layer`` runs) and served by the local Lambda runtime from the function zip,
the dependencies layer, the extras layer (``make extras-layer``) and its model layer; the
manifest records lightgbm's version and init refuses another. The trimmed dependencies
layer keeps every module the gallery imports, and the extras layer carries the
``libgomp.so.1`` LightGBM needs.
"""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from pathlib import Path

import joblib
import numpy as np
import pytest
from inference.model import ModelLoadError, load_model

from layers.checks import check_libraries
from layers.deps_layer import EXTRAS_OUT as EXTRAS_LAYER
from layers.function_zip import build_function_zip
from layers.gallery import gallery_model, predict_all
from layers.model_layer import main as model_layer
from localtwin.invoke import invoke
from testing.events import kinesis_record

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def extras_layer() -> Path:
    if not EXTRAS_LAYER.is_file():
        pytest.fail(f"{EXTRAS_LAYER} is missing: run `make extras-layer` (`make test` builds it first)")
    return EXTRAS_LAYER


@pytest.fixture(scope="module")
def lightgbm_model(tmp_path_factory: pytest.TempPathFactory) -> tuple[object, Path, Path]:
    """The LightGBM gallery model, dumped and packaged with the documented command line."""
    model = gallery_model("lightgbm")
    src = tmp_path_factory.mktemp("lightgbm")
    joblib.dump(model.artifacts[0], src / "model.joblib")
    layer = src.parent / "lightgbm-layer.zip"
    argv = ["--src", str(src), "--out", str(layer), "--name", "lgbm", "--version", "1", "--pipeline", "model.joblib"]
    assert model_layer([*argv, "--features", ",".join(model.features or [])]) == 0
    return model, src, layer


@pytest.mark.unit
def test_the_manifest_records_the_libraries_the_pickle_names(lightgbm_model: tuple) -> None:
    _, src, _ = lightgbm_model
    from importlib import metadata

    libraries = json.loads((src / "manifest.json").read_text())["libraries"]
    assert libraries["lightgbm"] == metadata.version("lightgbm")
    assert libraries["scikit-learn"] == metadata.version("scikit-learn")
    assert "pandas" not in libraries  # the pickle names no pandas module


@pytest.mark.unit
@pytest.mark.parametrize(
    ("library", "version", "fix"),
    [("lightgbm", "3.0.0", "lightgbm 3.0.0 (trained) vs 4."), ("xgboost", "2.0.0", "make deps-layer EXTRAS=xgboost")],
)
def test_init_refuses_another_version_of_a_library_the_manifest_records(
    lightgbm_model: tuple, tmp_path: Path, library: str, version: str, fix: str
) -> None:
    _, src, _ = lightgbm_model
    folder = tmp_path / "model"
    folder.mkdir()
    for item in src.iterdir():
        (folder / item.name).write_bytes(item.read_bytes())
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["libraries"][library] = version
    (folder / "manifest.json").write_text(json.dumps(manifest))

    with pytest.raises(ModelLoadError, match="built with other library versions") as refused:
        load_model(folder)
    assert fix in str(refused.value)


@pytest.mark.twin
@pytest.mark.slow
def test_a_lightgbm_model_is_served_from_the_zips_with_the_extras_layer(
    lightgbm_model: tuple, extras_layer: Path, deps_layer: Path, tmp_path: Path
) -> None:
    model, _, layer = lightgbm_model
    rows = model.rows
    event = {
        "Records": [
            kinesis_record(json.dumps(dict(zip(model.features, map(float, row)))), n) for n, row in enumerate(rows, 1)
        ]
    }
    function_zip = build_function_zip(tmp_path / "function.zip")

    proc = invoke(event, function_zip, [deps_layer, extras_layer, layer], workdir=tmp_path / "invoke")

    assert proc.returncode == 0, proc.stderr
    response = json.loads(proc.stdout)
    assert response["batchItemFailures"] == []
    got = [response["predictions"][record["eventID"]] for record in event["Records"]]
    want = predict_all(model)
    assert [r["label"] for r in got] == want["predict"].tolist()
    np.testing.assert_allclose([r["probability"] for r in got], want["predict_proba"].max(axis=1), rtol=1e-9)


@pytest.mark.unit
def test_the_extras_layer_ships_libgomp_and_the_check_needs_it(extras_layer: Path, tmp_path: Path) -> None:
    assert check_libraries([extras_layer]).ok  # LightGBM and pandas need nothing of the deps layer
    without = tmp_path / "extras-without-libgomp.zip"
    with zipfile.ZipFile(extras_layer) as src, zipfile.ZipFile(without, "w") as dst:
        assert "lib/libgomp.so.1" in src.namelist()
        for info in src.infolist():
            if info.filename != "lib/libgomp.so.1":
                dst.writestr(info, src.read(info))

    finding = check_libraries([without])

    assert not finding.ok
    assert "libgomp.so.1 (needed by python/lightgbm/lib/lib_lightgbm.so)" in finding.detail


_TRACE_GALLERY = r"""
import json, os, sys, warnings
warnings.simplefilter("ignore")
sys.path.insert(0, "function")
from inference import lean_import
lean_import.defer_unused_modules()  # as lambda_function does, before scikit-learn is imported
import joblib
loaded = [joblib.load(os.path.join(sys.argv[1], name)) for name in sorted(os.listdir(sys.argv[1]))]
lean_import.forget_unused_optional_modules()  # as lambda_function does once the model is loaded
for (*steps, estimator), x in loaded:  # layers.gallery.predict_all, without importing what fits the gallery
    for step in steps:
        x = step.transform(x)
    estimator.predict(x)
    for method in ("predict_proba", "decision_function"):
        if hasattr(estimator, method):
            getattr(estimator, method)(x)
real = [m for name, m in list(sys.modules.items()) if not lean_import.is_deferred(name)]
files = sorted({m.__file__.split("/site-packages/")[1] for m in real
                if getattr(m, "__file__", None) and "/site-packages/" in m.__file__})
print(json.dumps(files))
"""


@pytest.mark.slow
def test_the_trim_keeps_every_module_the_gallery_imports(deps_layer: Path, extras_layer: Path, tmp_path: Path) -> None:
    """The gallery's models, fitted here and pickled, are loaded and predict in a fresh
    interpreter under the function's lean import; every file they import is in the layers."""
    from layers.gallery import gallery

    for n, model in enumerate(gallery({"pandas", "lightgbm"})):
        joblib.dump((model.artifacts, model.rows), tmp_path / f"{n:02d}.joblib")
    proc = subprocess.run(
        [sys.executable, "-c", _TRACE_GALLERY, str(tmp_path)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=True,
        timeout=300,
    )
    imported = json.loads(proc.stdout.strip().splitlines()[-1])
    shipped = set()
    for layer in (deps_layer, extras_layer):
        with zipfile.ZipFile(layer) as zf:
            shipped |= {name.removeprefix("python/") for name in zf.namelist()}
    in_layers = {
        "numpy",
        "scipy",
        "sklearn",
        "joblib",
        "threadpoolctl.py",
        "narwhals",
        "lightgbm",
        "pandas",
        "dateutil",
    }
    wanted = [path for path in imported if path.split("/")[0] in in_layers]

    assert len(wanted) > 500  # the gallery really imported scikit-learn, scipy, pandas, LightGBM
    assert [path for path in wanted if path not in shipped] == []


@pytest.mark.unit
def test_make_extras_layer_builds_every_extra_pipfile_defines() -> None:
    from layers.deps_layer import extra_sections

    proc = subprocess.run(
        ["make", "-n", "--no-print-directory", "extras-layer"], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert f"--extras {','.join(extra_sections())} --only-extras" in proc.stdout
