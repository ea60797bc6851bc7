"""``notebooks/batch_size_cost.ipynb`` runs top to bottom on the small configuration.

It measures on the local Lambda runtime, so it needs the built zips (``make test``
builds them first); without them it is skipped. The kernel is pinned to the interpreter
running the tests (the project's ``.venv`` under ``make test``): a ``python3``
kernelspec pointing at ``sys.executable`` leads ``JUPYTER_PATH``, as in
``tests/test_notebooks.py``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import nbformat
import pytest
from ipykernel.kernelspec import write_kernel_spec
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "notebooks" / "batch_size_cost.ipynb"
ZIPS = [ROOT / "build" / "function.zip", ROOT / "build" / "layers" / "deps-layer.zip"]
ZIPS.append(ROOT / "build" / "layers" / "model-layer.zip")


@pytest.fixture
def venv_kernel(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """Kernel name ``python3``, launching ``sys.executable``."""
    jupyter_path = tmp_path / "jupyter"
    write_kernel_spec(jupyter_path / "kernels" / "python3")
    monkeypatch.setenv("JUPYTER_PATH", str(jupyter_path))
    from jupyter_client.kernelspec import KernelSpecManager

    assert KernelSpecManager().get_kernel_spec("python3").argv[0] == sys.executable
    return "python3"


def _outputs(nb: nbformat.NotebookNode, kind: str) -> list[dict]:
    return [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.get("output_type") == kind]


@pytest.mark.skipif(
    not all(p.is_file() for p in ZIPS), reason="build the zips first: make function-zip model-layer deps-layer"
)
def test_cost_notebook_runs_on_the_small_configuration(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, venv_kernel: str
) -> None:
    out = tmp_path / "cost"
    monkeypatch.setenv("COST_SMALL", "1")
    monkeypatch.setenv("COST_OUT", str(out))
    monkeypatch.delenv("COST_TARGET", raising=False)
    nb = nbformat.read(NOTEBOOK, as_version=4)
    NotebookClient(
        nb, timeout=300, kernel_name=venv_kernel, resources={"metadata": {"path": str(NOTEBOOK.parent)}}
    ).execute()

    assert not _outputs(nb, "error")
    printed = "".join(o.get("text", "") for o in _outputs(nb, "stream") if o.get("name") == "stdout")
    assert f"python:          {sys.executable}" in printed
    assert "configuration:   small, target local" in printed
    assert "[128, 192, 1024] MB" in printed
    assert "cheaper than the classic $0.0062 per ingest" in printed
    shown = _outputs(nb, "display_data")
    assert sum("image/png" in o["data"] for o in shown) == 3
    tables = "".join(o["data"].get("text/markdown", "") for o in shown)
    assert "classic / ours" in tables and "1,024 MB" in tables and "ml.t2.medium" in tables
    for name in (
        "report.md",
        "measurements.csv",
        "estimates.csv",
        "cost_per_ingest.png",
        "duration.png",
        "break_even.png",
    ):
        assert (out / name).is_file(), name
