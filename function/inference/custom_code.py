"""The team's own code in the model layer: verified, then imported before anything is unpickled.

A manifest's ``code`` (:class:`inference.manifest.CustomCode`) names top-level modules or
packages shipped beside the artifacts (``my_transformers.py``, or ``my_transformers/`` with
its ``__init__.py``), and lists every one of their files with its sha256. At init
:func:`import_custom_code` reads each file, compares its sha256 with the manifest's (a
tampered or missing file is refused before any of it runs), puts the model folder first on
``sys.path`` and imports each module, so that the pickles that refer to its classes find
them. A module of the same name imported earlier from elsewhere (an installed package, the
function's own code) would shadow the shipped one: that is refused too, naming the clash,
unless its file has the manifest's sha256 (the very code, imported from a copy: packaging
in the same process does that).

The model layer holds only files its manifest lists (``release.model_zip`` refuses others),
so the folder put on ``sys.path`` offers nothing else to import.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

from .manifest import Manifest, sha256_bytes


class CustomCodeError(RuntimeError):
    """A custom code file is missing or tampered, or its module cannot be imported from the model folder."""


def verify_custom_code(model_dir: Path, manifest: Manifest) -> list[str]:
    """Check every custom code file against the manifest; return the modules to import.

    Raises
    ------
    CustomCodeError
        Naming the first missing file, or the file whose sha256 differs.
    """
    code = manifest.get("code")
    if code is None:
        return []
    for entry in code["files"]:
        path = Path(model_dir) / entry["file"]
        try:
            actual = sha256_bytes(path.read_bytes())
        except FileNotFoundError:
            raise CustomCodeError(
                f"custom code file {entry['file']} listed in the manifest is missing from {model_dir}: "
                "rebuild the model layer with `make model-layer`"
            ) from None
        if actual != entry["sha256"]:
            raise CustomCodeError(
                f"custom code file {entry['file']} does not match the manifest (sha256 {actual}, expected "
                f"{entry['sha256']}): refusing to import it. Rebuild the model layer from trusted code with "
                "`make model-layer`"
            )
    return list(code["modules"])


def _is_verified(origin: str, folder: str, name: str, manifest: Manifest) -> bool:
    """Whether module ``name``, imported from ``origin``, is the manifest's: a file of ``folder``
    (verified above), or one whose bytes have the manifest's sha256 (the copy packaging imported)."""
    if not origin:
        return False
    path = Path(origin).resolve()
    if str(path).startswith(folder + "/"):
        return True
    wanted = {entry["file"]: entry["sha256"] for entry in manifest.get("code", {}).get("files", [])}
    entry = wanted.get(f"{name}.py") or wanted.get(f"{name}/__init__.py")
    try:
        return entry is not None and path.is_file() and sha256_bytes(path.read_bytes()) == entry
    except OSError:
        return False


def import_custom_code(model_dir: Path, manifest: Manifest) -> list[str]:
    """Verify the manifest's custom code (:func:`verify_custom_code`) and import each of its modules.

    Returns
    -------
    list of str
        The modules imported (empty when the manifest has no ``code``).

    Raises
    ------
    CustomCodeError
        A file is missing or tampered; a module raised on import; or a module of that name
        was already imported from somewhere other than ``model_dir``.
    """
    modules = verify_custom_code(model_dir, manifest)
    if not modules:
        return []
    folder = str(Path(model_dir).resolve())
    if folder not in sys.path:
        sys.path.insert(0, folder)
    for name in modules:
        try:
            module = importlib.import_module(name)
        except Exception as exc:
            raise CustomCodeError(
                f"custom code module {name} from {model_dir} raised on import ({type(exc).__name__}: "
                f"{str(exc)[:200]}): fix the module and rebuild the model layer"
            ) from None
        origin = getattr(module, "__file__", None) or ""
        if not _is_verified(origin, folder, name, manifest):
            raise CustomCodeError(
                f"custom code module {name} is shadowed by {origin or 'a built-in module'}, imported before the "
                "model layer's copy: rename your module (e.g. prefix it with your team's name), re-fit or re-dump "
                "the model, and package it again"
            )
    return modules
