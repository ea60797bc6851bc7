"""The dependencies layer's size next to a plain ``pip install`` of the same pins.

The baseline is what a layer built by hand would hold: ``pip install --target`` of the
same pins for the same platform, with pip's default bytecode compilation, nothing
removed; zipped the same way as ours.
"""

from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path

from layers.checks import unzipped_size
from layers.deps_layer import DEFAULT_OUT, pip_install_command, runtime_pins, tree_bytes
from layers.zipping import tree_entries, write_zip


def plain_install_sizes(runtime: str, arch: str) -> tuple[int, int]:
    """(unzipped, zipped) bytes of a plain install of the pins under ``python/``."""
    with tempfile.TemporaryDirectory() as tmp:
        site = Path(tmp) / "layer" / "python"
        cmd = pip_install_command(site, runtime, arch, compile_bytecode=True)
        subprocess.run([*cmd, *runtime_pins()], check=True, capture_output=True)
        zipped = write_zip(Path(tmp) / "plain.zip", tree_entries(site.parent, include_bytecode=True))
        return tree_bytes(site), zipped.stat().st_size


def print_size_report(runtime: str, arch: str, layer: Path = DEFAULT_OUT) -> None:
    """Print ours against the plain install, in one table."""
    print(f"\ndependencies layer ({runtime}/{arch}) against a plain pip install of the same pins:", flush=True)
    plain_unzipped, plain_zipped = plain_install_sizes(runtime, arch)
    ours_unzipped, ours_zipped = unzipped_size(layer), layer.stat().st_size
    mb = 1e6
    print(f"  {'':<22}{'unzipped':>12}{'zipped':>12}")
    print(f"  {'plain pip install':<22}{plain_unzipped / mb:>9.1f} MB{plain_zipped / mb:>9.1f} MB")
    print(f"  {'our layer':<22}{ours_unzipped / mb:>9.1f} MB{ours_zipped / mb:>9.1f} MB")
    print(
        f"  {'saved':<22}{(plain_unzipped - ours_unzipped) / mb:>9.1f} MB{(plain_zipped - ours_zipped) / mb:>9.1f} MB"
    )
    print("  (both with bytecode for the target Python; target: our layer <= 150 MB unzipped)")
