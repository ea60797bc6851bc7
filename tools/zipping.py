"""Reproducible zip archives: same files in, byte-identical zip out."""

from __future__ import annotations

import zipfile
from collections.abc import Iterable
from pathlib import Path

_EPOCH = (1980, 1, 1, 0, 0, 0)


def write_zip(out: Path, entries: Iterable[tuple[str, Path]]) -> Path:
    """Write ``(name in archive, file on disk)`` pairs, sorted, with fixed timestamps.

    Returns
    -------
    Path
        ``out``, whose parent folders are created as needed.
    """
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(out.suffix + ".tmp")
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        for name, path in sorted(entries):
            info = zipfile.ZipInfo(name, date_time=_EPOCH)
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, Path(path).read_bytes())
    tmp.replace(out)
    return out


def tree_entries(root: Path, prefix: str = "") -> list[tuple[str, Path]]:
    """Every file under ``root`` (no ``__pycache__``), named ``prefix + relative path``."""
    root = Path(root)
    return [
        (prefix + path.relative_to(root).as_posix(), path)
        for path in sorted(root.rglob("*"))
        if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc"
    ]
