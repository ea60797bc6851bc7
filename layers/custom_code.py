"""Packaging the team's own code: which modules the artifacts need, and which files ship them.

Before any artifact is unpickled, each is scanned (:mod:`layers.pickle_scan`) for the
modules it refers to:

- ``__main__`` (a class defined in a notebook or in the script that dumped the model) is
  refused, naming the fix: move the class into a module, re-fit or re-dump the model;
- a top-level module that is not installed in the pinned environment but sits in the model
  folder (``name.py``, or a package ``name/`` with its ``__init__.py``) is shipped as custom
  code, found automatically (``--code a,b`` / ``CODE=a,b`` names modules to ship besides);
- a module that is neither installed nor in the folder is refused, naming it.

The shipped files (every file of the module or package but ``__pycache__`` and ``.pyc``) go
into the manifest's ``code`` with their sha256 (:func:`describe_code`). Packaging imports them
from a copy holding only those files (:func:`stage_code`), so a module that needs a file that
would not ship fails here, not on Lambda.
"""

from __future__ import annotations

import importlib
import importlib.util
import shutil
import sys
import tempfile
from pathlib import Path

from inference.manifest import CodeFile, CustomCode, Manifest, sha256_bytes

from layers.pickle_scan import PickleScanError, module_problems, pickle_globals

#: The folders :func:`stage_code` made in this process: modules imported from them are a model's, not installed.
_STAGES: list[Path] = []


class CustomCodeError(ValueError):
    """The artifacts need code that cannot ship; the message says what to change."""


def module_files(src: Path, module: str) -> list[Path]:
    """The files of top-level module ``module`` in ``src`` (relative paths), or ``[]`` when it is not there."""
    single, package = Path(src) / f"{module}.py", Path(src) / module
    if (package / "__init__.py").is_file():
        return sorted(
            path.relative_to(src)
            for path in package.rglob("*")
            if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc"
        )
    return [single.relative_to(src)] if single.is_file() else []


def needed_code(src: Path, artifacts: dict[str, bytes], explicit: list[str] | None = None) -> list[str]:
    """The top-level modules to ship from ``src`` for ``artifacts`` (``file -> bytes``).

    Parameters
    ----------
    src : Path
        The model folder.
    artifacts : dict
        Each artifact's bytes, by file name (scanned, never unpickled).
    explicit : list of str, optional
        Modules to ship even if no pickle names them (``--code``).

    Raises
    ------
    CustomCodeError
        A pickle refers to ``__main__``, or to a module neither installed nor in ``src``; an
        explicit module is not in ``src``, or has the name of an installed module.
    """
    explicit = list(explicit or [])
    for module in explicit:
        if not module.isidentifier():
            raise CustomCodeError(f"--code {module!r} is not a module name (a top-level module or package)")
        if not module_files(src, module):
            raise CustomCodeError(f"--code {module}: neither {module}.py nor {module}/__init__.py is in {src}")
        if _installed_elsewhere(module, src):
            raise CustomCodeError(
                f"--code {module}: a module {module} is installed already and would shadow yours: rename your "
                "module (e.g. prefix it with your team's name), re-fit or re-dump the model, and package it again"
            )
    in_folder = {p.stem if p.suffix == ".py" else p.name for p in Path(src).iterdir() if not p.name.startswith(".")}
    shipped = list(explicit)
    for file, data in artifacts.items():
        try:
            found = pickle_globals(data)
        except PickleScanError as exc:
            raise CustomCodeError(
                f"{file} cannot be loaded with joblib ({exc}); save each pipeline step with joblib.dump in the "
                "pinned environment"
            ) from None
        local = {m.split(".")[0] for m, _ in found} & in_folder
        shippable = {m for m in local if module_files(src, m) and not _installed_elsewhere(m, src)}
        report = module_problems(found, shippable | set(shipped))
        if report.main:
            raise CustomCodeError(
                f"{file} refers to {', '.join(sorted(report.main))} in __main__ (defined in a notebook or the script "
                "that saved it), which the function cannot import: move the class into a module in the model "
                "folder (e.g. my_transformers.py), import it from there, re-fit or re-dump the model, and package "
                "it again"
            )
        if report.missing:
            raise CustomCodeError(
                f"{file} needs module(s) {', '.join(report.missing)}, neither installed in the pinned environment "
                f"nor in {src}: put your own modules in the model folder (name.py or name/__init__.py), or add the "
                "library to the dependencies layer"
            )
        shipped += [m for m in report.shipped if m not in shipped]
    return shipped


def _installed_elsewhere(module: str, src: Path) -> bool:
    """Whether ``import module`` finds a module outside ``src`` (an installed one)."""
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        return False
    origin = Path(spec.origin).resolve() if spec and spec.origin else None
    if origin is not None and any(origin.is_relative_to(place) for place in (Path(src).resolve(), *_STAGES)):
        return False  # the folder's own module, or one this process staged from a model folder
    return spec is not None


def describe_code(src: Path, modules: list[str]) -> CustomCode | None:
    """The manifest's ``code`` for ``modules`` of ``src``: every file with its sha256 (``None`` for no module)."""
    if not modules:
        return None
    files: list[CodeFile] = [
        {"file": path.as_posix(), "sha256": sha256_bytes((Path(src) / path).read_bytes())}
        for module in modules
        for path in module_files(src, module)
    ]
    return {"modules": list(modules), "files": files}


def stage_code(src: Path, manifest: Manifest | dict) -> Path | None:
    """Copy the manifest's code files (only those) into a new folder, put it first on ``sys.path``
    and import each module, so that the artifacts can be unpickled; ``None`` when there is no code.

    The folder stays for the life of the process (a package's submodules may be imported later).

    Raises
    ------
    CustomCodeError
        A module raises on import (e.g. it imports a file of the model folder that does not ship).
    """
    code = manifest.get("code")
    if not code:
        return None
    stage = Path(tempfile.mkdtemp(prefix="model-code-")).resolve()
    _STAGES.append(stage)
    for entry in code["files"]:
        target = stage / entry["file"]
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(Path(src) / entry["file"], target)
    sys.path.insert(0, str(stage))
    importlib.invalidate_caches()
    for module in code["modules"]:
        if module in sys.modules:
            continue
        try:
            importlib.import_module(module)
        except Exception as exc:
            raise CustomCodeError(
                f"custom code module {module} raises on import from the files that ship ({type(exc).__name__}: "
                f"{str(exc)[:200]}): everything it imports must be installed or in the module itself"
            ) from None
    return stage
