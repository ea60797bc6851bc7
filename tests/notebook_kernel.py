"""Run a notebook top to bottom in a kernel of the interpreter running the tests.

The kernel is pinned to ``sys.executable`` (the project's ``.venv`` under ``make test``):
a ``python3`` kernelspec pointing at it is written into a temporary folder that leads
``JUPYTER_PATH``, so no kernelspec installed elsewhere (a user's ``~/.local/share/jupyter``,
another environment's) is picked up instead.
"""

from __future__ import annotations

import sys
from pathlib import Path

import nbformat
import pytest
from ipykernel.kernelspec import write_kernel_spec
from nbclient import NotebookClient


def run_notebook(path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> nbformat.NotebookNode:
    """Execute ``path`` (working directory: its folder) and return it with its outputs."""
    jupyter_path = tmp_path / "jupyter"
    write_kernel_spec(jupyter_path / "kernels" / "python3")
    monkeypatch.setenv("JUPYTER_PATH", str(jupyter_path))
    from jupyter_client.kernelspec import KernelSpecManager

    assert KernelSpecManager().get_kernel_spec("python3").argv[0] == sys.executable
    nb = nbformat.read(path, as_version=4)
    NotebookClient(nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}).execute()
    return nb


def outputs(cells: list, kind: str) -> list[dict]:
    """The outputs of ``kind`` (``stream``, ``display_data``, ``error``…) of the code cells."""
    return [o for c in cells if c.cell_type == "code" for o in c.outputs if o.get("output_type") == kind]


def stdout(cells: list) -> str:
    """What the cells printed."""
    return "".join(o.get("text", "") for o in outputs(cells, "stream") if o.get("name") == "stdout")
