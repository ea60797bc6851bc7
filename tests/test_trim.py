"""The trim's rules (layers.trim) on a small site written here: which directories are
modules, what an import keeps, and what a deferred package keeps.

The trim on the real layer is proven elsewhere: the smoke test and the golden predictions
(tests/test_layer_checks.py) and every file the gallery imports (tests/test_extras.py).
"""

from __future__ import annotations

from pathlib import Path

from layers.trim import keep_set, module_index


def write(site: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = site / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


SITE = {
    "pkg/__init__.py": "from pkg import core\n",
    "pkg/core.py": "import pkg.lazy.inner\ndef f():\n    from pkg import used_late\n",
    "pkg/used_late.py": "",
    "pkg/unused.py": "",
    "pkg/lazy/__init__.py": "from pkg.lazy import heavy\n",
    "pkg/lazy/inner.py": "",
    "pkg/lazy/heavy.py": "",
    "pkg/tests/test_core.py": "import pkg.unused\n",  # no __init__.py: a namespace package
    "pkg/data/readme.txt": "",
    "top_level_dir/x.py": "",  # at the top, a directory without __init__ is not the layer's module
}


def test_a_directory_of_sources_inside_a_package_is_a_namespace_package_module(tmp_path: Path) -> None:
    write(tmp_path, SITE)
    index = module_index(tmp_path)
    assert index["pkg.tests"] == tmp_path / "pkg" / "tests"
    assert "pkg.tests.test_core" in index
    assert "pkg.data" not in index and "top_level_dir" not in index


def test_imports_anywhere_in_a_kept_source_keep_the_module(tmp_path: Path) -> None:
    write(tmp_path, SITE)
    kept = keep_set(tmp_path, {"pkg"})
    assert {"pkg", "pkg.core", "pkg.used_late", "pkg.lazy", "pkg.lazy.inner", "pkg.lazy.heavy"} <= kept
    assert "pkg.unused" not in kept and "pkg.tests" not in kept and "pkg.tests.test_core" not in kept


def test_a_deferred_package_keeps_only_what_is_kept_under_it(tmp_path: Path) -> None:
    """``pkg.lazy`` is a placeholder the trace never made real: naming it keeps nothing it imports."""
    write(tmp_path, SITE)
    kept = keep_set(tmp_path, {"pkg"}, deferred={"pkg.lazy"})
    assert "pkg.lazy.heavy" not in kept and "pkg.lazy.inner" not in kept
    kept = keep_set(tmp_path, {"pkg", "pkg.lazy.inner"}, deferred={"pkg.lazy"})
    assert {"pkg.lazy", "pkg.lazy.inner"} <= kept and "pkg.lazy.heavy" not in kept


def test_the_size_report_sorts_a_layer_by_kind(tmp_path: Path) -> None:
    import zipfile

    from layers.size_report import sizes_by_kind

    layer = tmp_path / "layer.zip"
    with zipfile.ZipFile(layer, "w") as zf:
        zf.writestr("python/numpy.libs/libopenblas.so", b"x" * 7)
        zf.writestr("lib/libgomp.so.1", b"x" * 5)
        zf.writestr("python/numpy/_core/_multiarray_umath.cpython-312-x86_64-linux-gnu.so", b"x" * 3)
        zf.writestr("python/numpy/__pycache__/__init__.cpython-312.pyc", b"x" * 2)
        zf.writestr("python/numpy/__init__.py", b"x")
        zf.writestr("python/numpy-2.5.5.dist-info/METADATA", b"x" * 11)
    assert sizes_by_kind(layer) == {
        "vendored libraries": 12,
        "extension modules": 3,
        "bytecode": 2,
        "sources": 1,
        "other": 11,
    }
