"""The notebooks run top to bottom in a fresh kernel of this interpreter
(:func:`tests.notebook_kernel.run_notebook`), and are committed without outputs."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import nbformat
import pytest

from tests.notebook_kernel import outputs, run_notebook, stdout

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
TRAIN_MODEL = NOTEBOOKS / "train_model.ipynb"


@pytest.mark.parametrize("path", sorted(NOTEBOOKS.glob("*.ipynb")), ids=lambda p: p.name)
def test_notebook_is_committed_without_outputs(path: Path) -> None:
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None, f"{path.name}: clear its outputs"


@pytest.mark.slow
def test_train_model_notebook_runs_and_writes_the_model_to_model_out(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "model"
    monkeypatch.setenv("MODEL_OUT", str(out))
    monkeypatch.setenv("MODEL_VERSION", "0.0.1-notebook")
    nb = run_notebook(TRAIN_MODEL, tmp_path, monkeypatch)

    setup = stdout(nb.cells[1:2])
    assert f"python:          {sys.executable}" in setup, setup
    assert f"model out:       {out} " in setup, setup  # not build/model, the reference model
    assert not outputs(nb.cells, "error")

    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["version"] == "0.0.1-notebook"
    assert manifest["input"] == {"kind": "text", "field": "text"}
    assert all((out / step["file"]).is_file() for step in manifest["pipeline"])
    assert manifest["metrics"]["accuracy"] > 0.6
    printed = stdout(nb.cells)
    assert "fresh" in printed and "rotten" in printed and '"schema_version": 1' in printed
