"""``notebooks/batch_size_cost.ipynb`` runs top to bottom on the small configuration.

It measures on the local Lambda runtime from the zips at their ``build/`` paths (the
``built_zips`` fixture builds or demands them). The kernel is this interpreter's
(:func:`tests.notebook_kernel.run_notebook`).
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from tests.notebook_kernel import outputs, run_notebook, stdout

pytestmark = [pytest.mark.twin, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "notebooks" / "batch_size_cost.ipynb"


def test_cost_notebook_runs_on_the_small_configuration(
    built_zips: tuple[Path, list[Path]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "cost"
    monkeypatch.setenv("COST_SMALL", "1")
    monkeypatch.setenv("COST_OUT", str(out))
    monkeypatch.delenv("COST_TARGET", raising=False)
    nb = run_notebook(NOTEBOOK, tmp_path, monkeypatch)

    assert not outputs(nb.cells, "error")
    printed = stdout(nb.cells)
    assert f"python:          {sys.executable}" in printed
    assert "configuration:   small, target local" in printed
    assert "[128, 192, 1024] MB" in printed
    assert "cheaper than the classic $0.0062 per ingest" in printed
    assert "recommended: batch" in printed or "recommended: no configuration meets" in printed
    shown = outputs(nb.cells, "display_data")
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
