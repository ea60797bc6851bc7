"""Which shared libraries a layer's binaries need, and whether Lambda can find each of them.

The dynamic loader resolves a ``DT_NEEDED`` name through the binary's ``RPATH`` /
``RUNPATH`` (``$ORIGIN`` is the binary's own folder), then ``LD_LIBRARY_PATH`` (on Lambda
``/opt/lib`` among others: a layer's ``lib/``), then the system's libraries. Here the
system is Lambda's image (:data:`layers.deps_layer.RUNTIME_IMAGE_LIBRARIES`), never this
build machine: a library found only on the build machine is *unresolved* (docs/aws-notes.md §3).
"""

from __future__ import annotations

import io
import posixpath
from collections.abc import Iterable, Mapping


def dynamic_entries(data: bytes) -> tuple[list[str], list[str]]:
    """``(DT_NEEDED names, RPATH and RUNPATH folders)`` of an ELF image."""
    from elftools.elf.dynamic import DynamicSection
    from elftools.elf.elffile import ELFFile

    needed: list[str] = []
    paths: list[str] = []
    for section in ELFFile(io.BytesIO(data)).iter_sections():
        if isinstance(section, DynamicSection):
            for tag in section.iter_tags():
                if tag.entry.d_tag == "DT_NEEDED":
                    needed.append(getattr(tag, "needed"))  # noqa: B009 - set by pyelftools per tag kind
                elif tag.entry.d_tag == "DT_RPATH":
                    paths.extend(getattr(tag, "rpath").split(":"))  # noqa: B009
                elif tag.entry.d_tag == "DT_RUNPATH":
                    paths.extend(getattr(tag, "runpath").split(":"))  # noqa: B009
    return needed, paths


def unresolved_libraries(
    binaries: Mapping[str, tuple[list[str], list[str]]], files: Iterable[str], system: frozenset[str]
) -> dict[str, list[str]]:
    """``library -> binaries needing it`` for every needed library the loader would not find.

    Parameters
    ----------
    binaries : mapping
        Path under ``/opt`` (``python/lightgbm/lib/lib_lightgbm.so``) -> :func:`dynamic_entries`.
    files : iterable of str
        Every file path of the layers, under ``/opt``.
    system : frozenset of str
        The libraries the runtime image provides.
    """
    present = set(files)
    missing: dict[str, list[str]] = {}
    for path, (needed, rpaths) in binaries.items():
        origin = posixpath.dirname(path)
        folders = [posixpath.normpath(r.replace("$ORIGIN", origin)) for r in rpaths if r] + ["lib"]
        for library in needed:
            if library in system or any(posixpath.join(folder, library) in present for folder in folders):
                continue
            missing.setdefault(library, []).append(path)
    return missing
