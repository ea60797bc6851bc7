"""Trim a dependencies layer to the modules a supported model can import, proven by tracing.

What stays (the *keep set*), computed on the layer's own files:

1. **Traced**: in a fresh interpreter that sees only the layer (``-I -S -B``, the layer's
   ``python/`` as the whole ``sys.path``), every :mod:`layers.gallery` model is unpickled
   and predicts (``predict``, ``predict_proba``, ``decision_function``); then every module
   of scikit-learn's own module list (``pkgutil.walk_packages`` over ``sklearn``, without
   its test suites and test helpers), joblib, threadpoolctl and each extra's packages are
   imported, so any estimator a pickle can name is importable. Every module in
   ``sys.modules`` and every file opened or ``dlopen``-ed (an audit hook) is recorded.
2. **Reachable by source**: every module that an ``import`` statement anywhere in a kept
   module's source names (inside functions too, so lazy imports at predict time count),
   every ``importlib.import_module("literal")``, and every dotted attribute chain through
   an imported module (``scipy.sparse.linalg.x``) that names a module; to a fixed point.
3. Every parent package of a kept module.

Only *modules* outside the keep set are removed: a ``.py`` with its ``__pycache__``
bytecode, an extension module, or a whole package directory (with its data). Files that
are not modules, directories that are not packages, ``*.dist-info`` and ``*.libs`` stay,
as does anything the trace opened. ``layers.checks`` then proves the trimmed layer with
the import smoke test and the model layer's golden predictions.
"""

from __future__ import annotations

import ast
import json
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from layers.gallery import gallery

#: scikit-learn modules that are test suites or test helpers, never imported to serve a model.
SKLEARN_TEST_MODULES = (
    "sklearn.conftest",
    "sklearn.utils._testing",
    "sklearn.utils.estimator_checks",
    "sklearn.utils._test_common",
    "sklearn._build_utils",
)
#: Imported (their top-level package) besides every module of scikit-learn's.
BASE_ROOTS = ("joblib", "threadpoolctl", "numpy", "scipy", "sklearn")
#: The function's lean import, applied to the trace exactly as ``lambda_function`` applies it at init.
LEAN_IMPORT = Path(__file__).resolve().parents[1] / "function" / "inference" / "lean_import.py"


class TrimError(RuntimeError):
    """The trace could not run; the message says what to do (``TRIM=0`` builds untrimmed)."""


@dataclass
class TrimReport:
    """What was kept and removed (module names), and the bytes removed."""

    kept: set[str] = field(default_factory=set)
    traced: set[str] = field(default_factory=set)
    removed: list[str] = field(default_factory=list)
    removed_bytes: int = 0
    #: Modules the lean import defers that no traced load + predict made real (not followed).
    deferred: set[str] = field(default_factory=set)


_TRACE = r"""
import importlib, io, json, os, pkgutil, sys, warnings
site, gallery_dir, roots, skips, out, lean_path = sys.argv[1], sys.argv[2], json.loads(sys.argv[3]), tuple(json.loads(sys.argv[4])), sys.argv[5], sys.argv[6]
opened = set()
def hook(event, args):
    if event == "open" and isinstance(args[0], str) and args[0].startswith(site):
        opened.add(args[0])
    elif event == "ctypes.dlopen" and isinstance(args[0], str) and args[0].startswith(site):
        opened.add(args[0])
sys.addaudithook(hook)
warnings.simplefilter("ignore")
import importlib.util
spec = importlib.util.spec_from_file_location("_lean_import", lean_path)
lean = importlib.util.module_from_spec(spec)
spec.loader.exec_module(lean)
lean.defer_unused_modules()  # as lambda_function does at init, before scikit-learn is imported
import joblib
models = []
for name in sorted(os.listdir(gallery_dir)):
    models.append((joblib.load(os.path.join(gallery_dir, name, "artifacts.joblib")),
                   joblib.load(os.path.join(gallery_dir, name, "rows.joblib"))))
lean.forget_unused_optional_modules()  # as lambda_function does once the model is loaded
for (*steps, estimator), x in models:
    for step in steps:
        x = step.transform(x)
    estimator.predict(x)
    for method in ("predict_proba", "decision_function"):
        if hasattr(estimator, method):
            getattr(estimator, method)(x)
traced = sorted(n for n in sys.modules if not lean.is_deferred(n))
failed, needs_deferred = {}, {}
for root in roots:
    importlib.import_module(root)
def walk(path, prefix):  # scikit-learn's module list from its folders, importing nothing (unlike pkgutil.walk_packages)
    for info in pkgutil.iter_modules(path, prefix):
        yield info.name
        if info.ispkg:
            yield from walk([os.path.join(path[0], info.name.rpartition(".")[2])], info.name + ".")
for name in list(walk(list(sys.modules["sklearn"].__path__), "sklearn.")):
    if name.startswith(skips) or ".tests" in name or name.endswith((".conftest", ".__main__")):
        continue
    before, seen, pending = set(sys.modules), set(opened), [n for n in lean.DEFERRED if lean.is_deferred(n)]
    try:
        importlib.import_module(name)
    except Exception as exc:  # optional dependencies (torch, cupy, ...) the layer does not have
        failed[name] = type(exc).__name__
    made_real = [n for n in pending if not lean.is_deferred(n)]
    if made_real:  # importing it needs a deferred module: not kept for it; undo, and defer again
        needs_deferred[name] = made_real
        opened.intersection_update(seen)
        for new in set(sys.modules) - before:
            del sys.modules[new]
        for real in made_real:
            sys.modules.pop(real, None)
            lean.defer(real, lean.DEFERRED[real])
deferred = sorted(name for name in lean.DEFERRED if lean.is_deferred(name))
modules = sorted(name for name in sys.modules if not lean.is_deferred(name))
with open(out, "w") as fh:
    json.dump({"traced": traced, "modules": modules, "opened": sorted(opened), "failed": failed, "deferred": deferred, "needs_deferred": needs_deferred}, fh)
"""


def module_index(site: Path) -> dict[str, Path]:
    """``module name -> its file`` (a package: its directory) for every module under ``site``.

    Packages are directories with ``__init__.py``, and, inside a package, directories of
    ``.py`` files without one, which Python imports as namespace packages (NumPy's
    ``numpy/_core/tests``); a module is a ``.py`` or an extension module
    (``name.cpython-312-x86_64-linux-gnu.so``) in a package or at the top.
    """
    index: dict[str, Path] = {}

    def visit(directory: Path, prefix: str) -> None:
        for entry in sorted(directory.iterdir()):
            if entry.is_dir():
                regular = (entry / "__init__.py").is_file()
                namespace = bool(prefix) and not regular and any(entry.glob("*.py"))
                if (regular or namespace) and entry.name.isidentifier():
                    index[prefix + entry.name] = entry
                    visit(entry, prefix + entry.name + ".")
            elif entry.suffix == ".py" and entry.stem != "__init__" and entry.stem.isidentifier():
                index[prefix + entry.stem] = entry
            elif entry.suffix == ".so" and entry.name.split(".")[0].isidentifier() and ".cpython-" in entry.name:
                index[prefix + entry.name.split(".")[0]] = entry

    visit(site, "")
    return index


def _source(path: Path) -> Path | None:
    source = path / "__init__.py" if path.is_dir() else path
    return source if source.suffix == ".py" and source.is_file() else None


def imported_names(source: Path, module: str, is_package: bool) -> set[str]:
    """Every module name the source could import: import statements anywhere, relative ones
    resolved, ``from X import y`` as ``X`` and ``X.y``, literal ``import_module`` calls, and
    dotted attribute chains through a name bound by an import."""
    try:
        tree = ast.parse(source.read_bytes(), str(source))
    except (SyntaxError, ValueError):
        return set()
    package = module if is_package else module.rpartition(".")[0]
    names: set[str] = set()
    aliases: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                names.add(alias.name)
                aliases[alias.asname or alias.name.split(".")[0]] = (
                    alias.name if alias.asname else alias.name.split(".")[0]
                )
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1] if node.level > 1 else base
                parent = ".".join(base + ([node.module] if node.module else []))
            else:
                parent = node.module or ""
            names.add(parent)
            for alias in node.names:
                names.add(f"{parent}.{alias.name}")
                aliases[alias.asname or alias.name] = f"{parent}.{alias.name}"
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute | ast.Name)
            and getattr(node.func, "attr", getattr(node.func, "id", "")) == "import_module"
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            names.add(node.args[0].value)
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute):
            parts = []
            current: ast.expr = node
            while isinstance(current, ast.Attribute):
                parts.append(current.attr)
                current = current.value
            if isinstance(current, ast.Name) and current.id in aliases:
                dotted = aliases[current.id]
                for part in reversed(parts):
                    dotted += "." + part
                    names.add(dotted)
    return names


def keep_set(site: Path, seeds: set[str], deferred: set[str] | frozenset[str] = frozenset()) -> set[str]:
    """The seeds, closed over :func:`imported_names` and parent packages, among the layer's modules.

    ``deferred`` modules (the lean import's placeholders that the trace never made real) are
    not followed: a source naming one, or a module under one, does not keep it, and one kept
    only as the parent package of a traced module keeps its ``__init__`` but not what that imports.
    """
    index = module_index(site)

    def behind_deferred(name: str) -> bool:
        return any(name == d or name.startswith(d + ".") for d in deferred)

    kept: set[str] = set()
    scanned: set[str] = set()
    todo = [(name, True) for name in seeds if name in index]
    while todo:
        name, scan = todo.pop()
        if name in scanned or (name in kept and not scan):
            continue
        kept.add(name)
        parts = name.split(".")
        parents = [".".join(parts[:n]) for n in range(1, len(parts))]
        todo.extend((parent, parent not in deferred) for parent in parents if parent in index)
        if not scan:
            continue
        scanned.add(name)
        path = index[name]
        source = _source(path)
        if source is not None:
            todo.extend(
                (n, True)
                for n in imported_names(source, name, path.is_dir())
                if n in index and n not in scanned and not behind_deferred(n)
            )
    return kept


def trace(site: Path, roots: list[str], libraries: set[str]) -> dict:
    """Run the trace (module docstring, step 1) with this interpreter on the layer alone."""
    with tempfile.TemporaryDirectory() as tmp:
        import joblib

        for model in gallery(libraries):
            folder = Path(tmp) / model.name
            folder.mkdir()
            joblib.dump(model.artifacts, folder / "artifacts.joblib")
            joblib.dump(model.rows, folder / "rows.joblib")
        env = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "PYTHONPATH": ""}
        code = f"import sys; sys.path[:0] = [{str(site)!r}]\n" + _TRACE
        proc = subprocess.run(
            [sys.executable, "-I", "-S", "-B", "-c", code, str(site), tmp, json.dumps(roots)]
            + [json.dumps(list(SKLEARN_TEST_MODULES)), str(Path(tmp) / "trace.json"), str(LEAN_IMPORT)],
            capture_output=True,
            text=True,
            env=env,
        )
        if proc.returncode != 0:
            last = proc.stderr.strip().splitlines()[-1:] or ["no output"]
            raise TrimError(f"tracing the layer failed ({last[0]}): fix the layer, or build it untrimmed with TRIM=0")
        result: dict = json.loads((Path(tmp) / "trace.json").read_text())
    return result


def trim(site: Path, extra_packages: list[str], libraries: set[str]) -> TrimReport:
    """Remove every module of ``site`` outside the keep set (module docstring).

    Parameters
    ----------
    site : Path
        The layer's ``python/`` folder, installed and slimmed, not yet compiled.
    extra_packages : list of str
        Top-level import names of the extras in the layer (``pandas``, ``lightgbm``, ``dateutil``).
    libraries : set of str
        The extras' names, choosing the gallery models that need them.
    """
    roots = [*BASE_ROOTS, *extra_packages]
    result = trace(site, roots, libraries)
    report = TrimReport(traced=set(result["traced"]))
    report.deferred = set(result["deferred"])
    # A deferred package keeps its ``__init__`` alone: the lean import's placeholder needs its spec.
    report.kept = keep_set(site, set(result["modules"]), report.deferred) | report.deferred
    touched = {q for p in result["opened"] for q in (Path(p), *Path(p).parents)}
    index = module_index(site)
    for name in sorted(index, key=len):
        path = index[name]
        if name in report.kept or not path.exists() or path in touched:
            continue
        report.removed.append(name)
        report.removed_bytes += _remove_module(path)
    return report


def _remove_module(path: Path) -> int:
    """Delete a module's files (a package: its directory); return the bytes removed."""
    if path.is_dir():
        size = sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
        shutil.rmtree(path)
        return size
    size = path.stat().st_size
    path.unlink()
    stem = path.name.split(".")[0]
    cache = path.parent / "__pycache__"
    if cache.is_dir():
        for pyc in cache.glob(f"{stem}.*.pyc"):
            size += pyc.stat().st_size
            pyc.unlink()
    return size


def write_report(report: TrimReport, out: Path) -> Path:
    """The kept and removed module names as JSON (``deps-layer.trim.json`` beside the zip)."""
    doc = {
        "kept": sorted(report.kept),
        "traced": sorted(report.traced),
        "removed": report.removed,
        "removed_bytes": report.removed_bytes,
        "deferred": sorted(report.deferred),
    }
    out.write_text(json.dumps(doc, indent=1) + "\n")
    return out
