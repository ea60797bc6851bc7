"""Zip archives: written reproducibly (same files in, byte-identical zip out), extracted as Lambda does."""

from __future__ import annotations

import shutil
import zipfile
from collections.abc import Iterable
from pathlib import Path

_EPOCH = (1980, 1, 1, 0, 0, 0)


def write_zip(out: Path, entries: Iterable[tuple[str, Path]], progress: str | None = None) -> Path:
    """Write ``(name in archive, file on disk)`` pairs, sorted, with fixed timestamps.

    ``progress``, if given, labels a progress bar (on stderr) over the entries.

    Returns
    -------
    Path
        ``out``, whose parent folders are created as needed.
    """
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(out.suffix + ".tmp")
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        ordered = sorted(entries)
        if progress:
            from tqdm import tqdm

            ordered = tqdm(ordered, desc=progress, unit="file", leave=False, disable=None)  # off when not a TTY
        for name, path in ordered:
            info = zipfile.ZipInfo(name, date_time=_EPOCH)
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, Path(path).read_bytes())
    tmp.replace(out)
    return out


def tree_entries(root: Path, prefix: str = "", include_bytecode: bool = False) -> list[tuple[str, Path]]:
    """Every file under ``root``, named ``prefix + relative path``.

    Bytecode (``__pycache__``, ``*.pyc``) is left out unless ``include_bytecode``.
    """
    root = Path(root)
    return [
        (prefix + path.relative_to(root).as_posix(), path)
        for path in sorted(root.rglob("*"))
        if path.is_file() and (include_bytecode or ("__pycache__" not in path.parts and path.suffix != ".pyc"))
    ]


def extract_tree(function_zip: Path, layer_zips: list[Path], root: Path) -> tuple[Path, Path]:
    """Extract like Lambda: the function to ``root/task``, the layers in order to ``root/opt``.

    A later layer's file replaces an earlier layer's at the same path, as on Lambda.
    """
    for missing in [p for p in [function_zip, *layer_zips] if not Path(p).is_file()]:
        raise FileNotFoundError(f"{missing} not found: build it first (make function-zip / model-layer / deps-layer)")
    task, opt = root / "task", root / "opt"
    shutil.rmtree(task, ignore_errors=True)
    shutil.rmtree(opt, ignore_errors=True)
    with zipfile.ZipFile(function_zip) as zf:
        zf.extractall(task)
    opt.mkdir(parents=True)
    for layer in layer_zips:
        with zipfile.ZipFile(layer) as zf:
            zf.extractall(opt)
    return task, opt
