"""Each pre-publish layer check passes a good layer and fails a crafted bad one."""

from __future__ import annotations

import json
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

from layers import checks
from layers.deps_layer import platform_tags

SITE = Path(sysconfig.get_paths()["purelib"])
TAG = "{}{}".format(*sys.version_info[:2])  # the venv's Python is the runtime's (Makefile)
RUNTIME = "python{}.{}".format(*sys.version_info[:2])
OTHER_TAG = str(int(TAG) + 1)
SMALL_SO = next((SITE / "numpy" / "_core").glob(f"_multiarray_tests.cpython-{TAG}-*.so"))
GOOD_NAME = f"python/numpy/_core/_multiarray_tests.cpython-{TAG}-x86_64-linux-gnu.so"
VERSIONS = {"numpy": "2.5.5", "scipy": "1.18.1", "scikit_learn": "1.9.1", "joblib": "1.6.0"}


def make_deps_zip(path: Path, so_name: str = GOOD_NAME, so_bytes: bytes | None = None, versions=VERSIONS) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr(so_name, so_bytes if so_bytes is not None else SMALL_SO.read_bytes())
        for name, version in versions.items():
            zf.writestr(f"python/{name}-{version}.dist-info/METADATA", f"Name: {name}\nVersion: {version}\n")
    return path


def make_model_zip(path: Path, sklearn: str = "1.9.1") -> Path:
    libs = {"python": "3.12.1", "numpy": "2.5.5", "scipy": "1.18.1", "scikit-learn": sklearn, "joblib": "1.6.0"}
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("model/manifest.json", json.dumps({"libraries": libs}))
    return path


def by_name(findings):
    return {f.check: f for f in findings}


def test_good_layer_passes_binary_and_version_checks(tmp_path):
    deps = make_deps_zip(tmp_path / "deps.zip")
    found = by_name(checks.check_binaries(deps, RUNTIME, "x86_64"))
    assert all(f.ok for f in found.values()), found
    assert "highest GLIBC required 2.27 <= 2.34" in found["glibc"].detail
    assert checks.check_model_versions(make_model_zip(tmp_path / "m.zip"), deps).ok


def test_wrong_architecture_is_refused(tmp_path):
    data = bytearray(SMALL_SO.read_bytes())
    data[18:20] = (183).to_bytes(2, "little")  # e_machine = EM_AARCH64
    deps = make_deps_zip(tmp_path / "deps.zip", so_bytes=bytes(data))
    finding = by_name(checks.check_binaries(deps, RUNTIME, "x86_64"))["architecture"]
    assert not finding.ok
    assert "EM_AARCH64" in finding.detail and "ARCH=x86_64" in finding.detail


def test_too_new_glibc_is_refused(tmp_path):
    data = SMALL_SO.read_bytes()
    assert b"GLIBC_2.27\x00" in data
    # The real manylinux_2_28 binary needs GLIBC_2.27: refused for Amazon Linux 2 (python3.11).
    real = make_deps_zip(tmp_path / "real.zip", so_bytes=data)
    refused = by_name(checks.check_binaries(real, "python3.11", "x86_64"))["glibc"]
    assert not refused.ok and "GLIBC_2.27" in refused.detail and "2.26" in refused.detail
    deps = make_deps_zip(tmp_path / "deps.zip", so_bytes=data.replace(b"GLIBC_2.27\x00", b"GLIBC_2.35\x00"))
    finding = by_name(checks.check_binaries(deps, "python3.12", "x86_64"))["glibc"]
    assert not finding.ok
    assert "GLIBC_2.35" in finding.detail and "2.34" in finding.detail


def test_wrong_python_tag_is_refused(tmp_path):
    deps = make_deps_zip(tmp_path / "deps.zip", so_name=GOOD_NAME.replace(f"cpython-{TAG}", f"cpython-{OTHER_TAG}"))
    finding = by_name(checks.check_binaries(deps, RUNTIME, "x86_64"))["python-tag"]
    assert not finding.ok
    assert f"cpython-{OTHER_TAG}" in finding.detail and f"RUNTIME={RUNTIME}" in finding.detail


def test_mismatched_scikit_learn_is_refused(tmp_path):
    deps = make_deps_zip(tmp_path / "deps.zip")
    finding = checks.check_model_versions(make_model_zip(tmp_path / "m.zip", sklearn="1.5.0"), deps)
    assert not finding.ok
    assert "scikit-learn 1.5.0 (model) vs 1.9.1 (layer)" in finding.detail


def test_oversized_bundle_is_refused(tmp_path):
    big = tmp_path / "big.zip"
    with zipfile.ZipFile(big, "w", compression=zipfile.ZIP_DEFLATED) as zf, zf.open("python/blob.bin", "w") as fh:
        chunk = bytes(1 << 24)
        for _ in range(checks.UNZIPPED_LIMIT // len(chunk) + 1):
            fh.write(chunk)
    small = make_model_zip(tmp_path / "m.zip")
    finding = checks.check_size([big, small])
    assert not finding.ok and "margin -" in finding.detail
    assert checks.check_size([small]).ok


def test_missing_inputs_name_the_make_target(tmp_path):
    findings = checks.run_checks(deps_zip=tmp_path / "nope.zip", model_zip=tmp_path / "nope2.zip")
    assert not findings[0].ok and "make deps-layer" in findings[0].detail


def test_platform_tags_list_every_accepted_manylinux_tag():
    tags = platform_tags("python3.11", "x86_64")
    assert tags[0] == "manylinux_2_26_x86_64" and "manylinux_2_17_x86_64" in tags
    assert tags[-1] == "manylinux2014_x86_64" and len(tags) == 11
    assert platform_tags("python3.12", "arm64")[0] == "manylinux_2_34_aarch64"


@pytest.mark.twin
def test_built_layer_smoke_test_from_layers_alone(zips):
    function_zip, layers, _ = zips
    finding = checks.check_smoke(function_zip, layers, RUNTIME, "x86_64")
    assert finding.ok, finding.detail


@pytest.mark.twin
def test_a_model_needing_what_the_trim_dropped_is_refused_naming_trim_0(zips, tmp_path):
    """QuantileTransformer(output_distribution="normal") reads scipy.stats.norm at transform
    time; the trimmed layer leaves scipy.stats out (no gallery model's load + predict imports it)."""
    from sklearn.datasets import load_breast_cancer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import QuantileTransformer

    from tests.test_gallery_tabular import NUMBERS, dumped, package

    function_zip, (deps_layer, _), _ = zips
    with zipfile.ZipFile(deps_layer) as zf:
        assert "python/scipy/stats/_stats_py.py" not in zf.namelist(), "make test builds the trimmed layer (TRIM=1)"
    x, y = load_breast_cancer(return_X_y=True)
    model = make_pipeline(QuantileTransformer(n_quantiles=50, output_distribution="normal"), LogisticRegression())
    folder = dumped(tmp_path / "model", {"model.joblib": model.fit(x[:, :4], y)})
    package(folder, "quantile-normal", ["model.joblib"], "--features", ",".join(NUMBERS))
    finding = checks.check_smoke(function_zip, [deps_layer, tmp_path / "layer.zip"], RUNTIME, "x86_64")
    assert not finding.ok
    assert "scipy.stats" in finding.detail and "make deps-layer TRIM=0" in finding.detail


def test_a_missing_module_in_the_smoke_test_names_the_untrimmed_layer():
    stderr = "Traceback ...\nModuleNotFoundError: No module named 'scipy.stats'\n"
    message = checks.smoke_failure(stderr)
    assert message.startswith("ModuleNotFoundError") and "scipy.stats" in message and "TRIM=0" in message
    assert checks.smoke_failure("ValueError: bad\n") == "ValueError: bad"
