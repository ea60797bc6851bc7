"""Staging a function for the local runtime: its zips extracted once, the runtime dir provisioned once.

:func:`extract_once` extracts the function zip and the layers (in Lambda's order, a later
layer overwriting an earlier one's files) into ``task/`` and ``opt/`` under a workdir, and
skips the work when the workdir already holds these very zips.

:func:`ensure_runtime_dir` provides what Lambda's managed Python runtime ships next to the
function: AWS's runtime interface client ``awslambdaric``, boto3, botocore and their
dependencies. The runtime dir is built once under ``build/runtime/python`` by copying the
pinned distributions (with their ``.dist-info``) from this virtual environment, which
``requirements.txt`` pins: offline and fast. Where they are missing it falls back to
``pip install --target`` of the same pins.
"""

from __future__ import annotations

import contextlib
import fcntl
import importlib.metadata
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from layers.zipping import extract_tree

ROOT = Path(__file__).resolve().parents[2]
RUNTIME_ROOT = ROOT / "build" / "runtime"
#: What Lambda's Python runtime provides next to the runtime client (its /var/runtime).
RUNTIME_DISTRIBUTIONS = (
    "awslambdaric",
    "simplejson",
    "snapshot-restore-py",
    "boto3",
    "botocore",
    "s3transfer",
    "jmespath",
    "python-dateutil",
    "six",
    "urllib3",
)


def extract_once(function_zip: Path, layer_zips: list[Path], root: Path) -> tuple[Path, Path]:
    """:func:`extract_tree`, skipped when ``root`` already holds these very zips (same
    paths, sizes and modification times), e.g. ``build/invoke`` between two ``make invoke``.

    Returns ``(task root, opt)``: ``root/task`` and ``root/opt``.
    """
    stamp = root / "extracted.json"
    zips = [function_zip, *layer_zips]
    key = [[str(p.resolve()), p.stat().st_size, p.stat().st_mtime_ns] for p in zips if p.is_file()]
    if stamp.is_file() and len(key) == len(zips) and json.loads(stamp.read_text()) == key:
        return root / "task", root / "opt"
    stamp.unlink(missing_ok=True)
    task, opt = extract_tree(function_zip, layer_zips, root)
    stamp.write_text(json.dumps(key))
    return task, opt


def _pinned(names: tuple[str, ...], requirements: Path = ROOT / "requirements.txt") -> dict[str, str]:
    """``name -> version`` pinned in requirements.txt for the names that are pinned there."""
    pins = {}
    for line in requirements.read_text().splitlines():
        spec = line.split("#")[0].strip()
        if "==" in spec:
            name, version = spec.split("==", 1)
            pins[name.split("[")[0].strip().lower()] = version.strip()
    return {n: pins[n] for n in names if n in pins}


def _copy_distribution(name: str, target: Path) -> None:
    """Copy an installed distribution's files (as its RECORD lists them) into ``target``."""
    dist = importlib.metadata.distribution(name)
    for entry in dist.files or []:
        if entry.parts[0] == "..":  # console scripts installed outside site-packages
            continue
        source = Path(str(dist.locate_file(entry)))
        if source.is_file():
            destination = target / entry
            destination.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, destination)


def ensure_runtime_dir(root: Path = RUNTIME_ROOT) -> Path:
    """The runtime dir (``root/python``): awslambdaric + what Lambda's Python runtime ships.

    Built once and cached; rebuilt when the pinned versions change. The distributions
    are copied from this interpreter's environment when it has them at the pinned
    versions (offline, a second or so), otherwise installed with ``pip --target``.
    """
    pins = _pinned(("awslambdaric", "boto3", "botocore"))
    target, stamp = root / "python", root / "versions.json"
    root.mkdir(parents=True, exist_ok=True)

    def installed() -> dict[str, str]:
        versions = {}
        for name in RUNTIME_DISTRIBUTIONS:
            with contextlib.suppress(importlib.metadata.PackageNotFoundError):
                versions[name] = importlib.metadata.version(name)
        return versions

    local = installed()
    usable = len(local) == len(RUNTIME_DISTRIBUTIONS) and all(local[n] == v for n, v in pins.items())
    wanted = {"source": "copy", **local} if usable else {"source": "pip", **pins}
    with open(root / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if target.is_dir() and stamp.is_file() and json.loads(stamp.read_text()) == wanted:
            return target
        building = root / f"python.building-{os.getpid()}"
        shutil.rmtree(building, ignore_errors=True)
        if usable:
            for name in RUNTIME_DISTRIBUTIONS:
                _copy_distribution(name, building)
        else:
            command = [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
            command += ["--target", str(building), *(f"{n}=={v}" for n, v in pins.items())]
            proc = subprocess.run(command, capture_output=True, text=True)
            if proc.returncode != 0:
                raise RuntimeError(f"could not build the Lambda runtime dir with pip:\n{proc.stderr}")
        shutil.rmtree(target, ignore_errors=True)
        building.rename(target)
        stamp.write_text(json.dumps(wanted, indent=2) + "\n")
    return target
