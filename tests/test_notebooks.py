"""The notebooks run top to bottom in a fresh kernel, and are committed without outputs.

The kernel is pinned to the interpreter running the tests (the project's ``.venv`` under
``make test``): a ``python3`` kernelspec pointing at ``sys.executable`` is written into a
temporary folder that leads ``JUPYTER_PATH``, so no kernelspec installed elsewhere (a
user's ``~/.local/share/jupyter``, another environment's) is picked up instead.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import nbformat
import pytest
from ipykernel.kernelspec import write_kernel_spec
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
TRAIN_MODEL = NOTEBOOKS / "train_model.ipynb"


@pytest.fixture
def kernel_of_this_python(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """Make kernel name ``python3`` launch ``sys.executable``; return that name."""
    jupyter_path = tmp_path / "jupyter"
    write_kernel_spec(jupyter_path / "kernels" / "python3")
    monkeypatch.setenv("JUPYTER_PATH", str(jupyter_path))
    from jupyter_client.kernelspec import KernelSpecManager

    assert KernelSpecManager().get_kernel_spec("python3").argv[0] == sys.executable
    return "python3"


def _text_outputs(cell: dict) -> str:
    return "".join(out.get("text", "") for out in cell.get("outputs", []) if out.get("output_type") == "stream")


@pytest.mark.parametrize("path", sorted(NOTEBOOKS.glob("*.ipynb")), ids=lambda p: p.name)
def test_notebook_is_committed_without_outputs(path: Path) -> None:
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None, f"{path.name}: clear its outputs"


def test_train_model_notebook_runs_and_writes_the_model_to_model_out(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kernel_of_this_python: str
) -> None:
    out = tmp_path / "model"
    monkeypatch.setenv("MODEL_OUT", str(out))
    monkeypatch.setenv("MODEL_VERSION", "0.0.1-notebook")
    nb = nbformat.read(TRAIN_MODEL, as_version=4)
    NotebookClient(
        nb, timeout=300, kernel_name=kernel_of_this_python, resources={"metadata": {"path": str(NOTEBOOKS)}}
    ).execute()

    setup = _text_outputs(nb.cells[1])
    assert f"python:          {sys.executable}" in setup, setup
    assert f"model out:       {out} " in setup, setup  # not build/model, the reference model
    errors = [o for c in nb.cells for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors

    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["version"] == "0.0.1-notebook"
    assert manifest["input"] == {"kind": "text", "field": "text"}
    assert all((out / step["file"]).is_file() for step in manifest["pipeline"])
    assert manifest["metrics"]["accuracy"] > 0.6
    printed = "".join(_text_outputs(c) for c in nb.cells)
    assert "fresh" in printed and "rotten" in printed and '"schema_version": 1' in printed
