"""What a dependencies layer zip serves: library versions and, where visible, Python and CPU.

Read by the pre-publish layer checks (:mod:`layers.checks`) and before the layer is
published (:mod:`release.publish`), so both see the same versions.
"""

from __future__ import annotations

import re
import zipfile
from pathlib import Path

from inference.manifest import TRACKED_LIBRARIES as MANIFEST_LIBRARIES

#: The libraries a dependencies layer's versions are recorded for (Python is read from its binaries).
TRACKED_LIBRARIES = tuple(lib for lib in MANIFEST_LIBRARIES if lib != "python")


class LayerZipError(RuntimeError):
    """A layer zip is missing, unreadable, or not the dependencies layer; the message names the file and the fix."""


_DIST_INFO = re.compile(r"(?:^|/)([A-Za-z0-9_.]+)-([0-9][^/-]*)\.dist-info/")
_EXTENSION = re.compile(r"\.cpython-(\d)(\d+)-(x86_64|aarch64)-linux-gnu\.so$")
#: Where each tracked library keeps its version, for layers stripped of their ``*.dist-info``.
_VERSION_FILES = {
    "scikit-learn": "sklearn/__init__.py",
    "numpy": "numpy/version.py",
    "scipy": "scipy/version.py",
    "joblib": "joblib/__init__.py",
}
_VERSION_ASSIGN = re.compile(r"^(?:__version__|version|full_version)\s*[:=][^\"'\n]*[\"']([^\"']+)[\"']", re.M)


def _versions(zf: zipfile.ZipFile, names: list[str]) -> dict[str, str]:
    """Package versions from ``*.dist-info`` folder names, else from the tracked libraries' own files."""
    versions: dict[str, str] = {}
    for name in names:
        match = _DIST_INFO.search(name)
        if match:
            versions.setdefault(match[1].lower().replace("_", "-").replace(".", "-"), match[2])
    for lib, tail in _VERSION_FILES.items():
        if lib in versions:
            continue
        for name in names:
            if name.endswith("/" + tail) and name.count("/") <= 5:
                found = _VERSION_ASSIGN.search(zf.read(name).decode("utf-8", "replace"))
                if found:
                    versions[lib] = found[1]
                    break
    return versions


def _scan(zip_path: Path) -> tuple[dict[str, str], set[tuple[str, str]]]:
    """Package versions, and the (Python, CPU) tags of the extension modules, of a layer zip."""
    try:
        with zipfile.ZipFile(zip_path) as zf:
            names = zf.namelist()
            tags = {(m[1] + "." + m[2], m[3]) for m in (_EXTENSION.search(n) for n in names) if m}
            return _versions(zf, names), tags
    except (zipfile.BadZipFile, FileNotFoundError) as exc:
        raise LayerZipError(f"{zip_path}: not a readable zip ({exc}); build it with `make deps-layer`") from None


def layer_versions(deps_zip: Path) -> dict[str, str]:
    """Package versions in a dependencies layer zip, by normalised project name.

    Versions come from the ``*.dist-info`` folder names (``scikit_learn-1.9.1.dist-info``
    gives ``scikit-learn``), else, for the tracked libraries, from the packages' own
    version files (``sklearn/__init__.py``).

    Raises
    ------
    LayerZipError
        If the zip is missing or unreadable.
    """
    return _scan(deps_zip)[0]


def inspect_deps_zip(zip_path: Path) -> dict[str, str]:
    """Tracked library versions, and where visible the Python and CPU, of a dependencies layer zip.

    Versions are those of :func:`layer_versions`. ``python`` and ``arch`` come from
    extension module names (``*.cpython-312-x86_64-linux-gnu.so``) and are absent when
    there are none, or when the modules disagree.

    Raises
    ------
    LayerZipError
        If the zip is unreadable or its scikit-learn version cannot be found.
    """
    versions, tags = _scan(zip_path)
    info = {lib: version for lib, version in versions.items() if lib in TRACKED_LIBRARIES}
    if "scikit-learn" not in info:
        raise LayerZipError(
            f"{zip_path}: no scikit-learn version found (no scikit_learn-*.dist-info, no sklearn/__init__.py); "
            "is this the dependencies layer? Build it with `make deps-layer`"
        )
    if len({py for py, _ in tags}) == 1:
        info["python"] = next(iter(tags))[0]
    if len({arch for _, arch in tags}) == 1:
        info["arch"] = {"aarch64": "arm64"}.get(next(iter(tags))[1], next(iter(tags))[1])
    return info
