"""What the function imports at init, per model: ``python -X importtime`` of init + the golden batch.

For the reference model (``build/model``) and a few small models trained here (a tabular
logistic regression, a random forest, a ridge regressor, an isolation forest, k-means), a
fresh interpreter imports ``lambda_function`` with ``MODEL_DIR`` on the model (init: the
lean import's placeholders, manifest, sha256, joblib loads) and scores the model's golden
records through the batch path (:func:`inference.snapstart.before_snapshot`, the warm-up
SnapStart runs before its snapshot). Printed per model: the init and the first answer's
seconds, the import time by package (``-X importtime``'s self times, the largest first),
and which of :data:`inference.lean_import.DEFERRED` were still not imported after the golden
batch (``deferred``) or had to be (``imported``: that model uses them, and gets them).
``--eager`` runs the same without the lean import, for comparison.

Usage: ``python -m experiments.import_trace [--top 8] [--eager] [--models reference,tabular,...]``
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from layers.model_layer import build_manifest, write_manifest
from training.tabular_model import make_tabular_model

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = ROOT / "build" / "model"
FEATURES = ["a", "b", "c"]

# Runs in a fresh interpreter: argv = "eager" or "lean". Reports on stdout; importtime goes to stderr.
_CHILD = r"""
import time
started = time.perf_counter()
import json, os, sys
eager = sys.argv[1] == "eager"
report, sys.stdout = sys.stdout, open(os.devnull, "w")
if eager:
    from inference import lean_import
    lean_import.DEFERRED, lean_import.OPTIONAL = {}, ()
import lambda_function
init_s = time.perf_counter() - started
from inference import lean_import, snapstart
if lambda_function.app is None:
    raise lambda_function.init_error
scored = snapstart.before_snapshot(lambda_function.app)
first_s = time.perf_counter() - started
names = [*lean_import.DEFERRED, *lean_import.OPTIONAL] or ["scipy.stats", "scipy.optimize", "scipy.integrate"]
report.write(json.dumps({"init_s": init_s, "first_answer_s": first_s, "scored": scored,
    "deferred": [n for n in names if lean_import.is_deferred(n)],
    "imported": [n for n in names if n in sys.modules and not lean_import.is_deferred(n)]}) + "\n")
"""


def _tabular(out: Path, estimator: Any, name: str) -> Path:
    """Fit ``estimator`` on synthetic rows of :data:`FEATURES` and package it into ``out``."""
    import joblib
    import numpy as np

    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, len(FEATURES)))
    y = (x[:, 0] > 0).astype(int) if hasattr(estimator, "predict_proba") else x @ np.array([1.0, -2.0, 0.5])
    estimator.fit(x, y)
    out.mkdir(parents=True, exist_ok=True)
    joblib.dump(estimator, out / "model.joblib")
    write_manifest(out, build_manifest(out, name=name, version="0.0.1", pipeline=["model.joblib"], features=FEATURES))
    return out


def build_models(folder: Path) -> dict[str, Path]:
    """The models traced: the reference model if built, and the small ones, trained into ``folder``."""
    from sklearn.cluster import KMeans
    from sklearn.ensemble import IsolationForest, RandomForestClassifier
    from sklearn.linear_model import Ridge

    models = {"reference": REFERENCE} if (REFERENCE / "manifest.json").is_file() else {}
    models["tabular"] = make_tabular_model(folder / "tabular")
    models["random-forest"] = _tabular(folder / "forest", RandomForestClassifier(n_estimators=10, random_state=0), "rf")
    models["ridge"] = _tabular(folder / "ridge", Ridge(), "ridge")
    models["isolation-forest"] = _tabular(folder / "iforest", IsolationForest(n_estimators=10, random_state=0), "if")
    models["k-means"] = _tabular(folder / "kmeans", KMeans(n_clusters=2, n_init=1, random_state=0), "km")
    return models


def by_package(importtime: str) -> dict[str, float]:
    """Self seconds of ``-X importtime``'s lines, by package (``scipy.stats``, ``sklearn.utils``, ``numpy``), largest first."""
    seconds: dict[str, float] = {}
    for line in importtime.splitlines():
        if not line.startswith("import time:") or "|" not in line or "self [us]" in line:
            continue
        own, _, name = line.split("|")
        parts = name.strip().split(".")
        key = ".".join(parts[:2]) if parts[0] in ("scipy", "sklearn") else parts[0]
        seconds[key] = seconds.get(key, 0.0) + int(own.split(":")[1]) / 1e6
    return dict(sorted(seconds.items(), key=lambda item: -item[1]))


def trace(model_dir: Path, eager: bool = False) -> tuple[dict[str, Any], dict[str, float]]:
    """One fresh interpreter's init + golden batch on ``model_dir``: its report and import seconds by package."""
    env = {**os.environ, "PYTHONPATH": str(ROOT / "function"), "MODEL_DIR": str(model_dir)}
    env.pop("RESULTS_TABLE", None)
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", _CHILD, "eager" if eager else "lean"],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    if proc.returncode != 0:
        raise SystemExit(f"import_trace: the traced interpreter failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1]), by_package(proc.stderr)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--top", type=int, default=8, help="packages listed per model (default 8)")
    parser.add_argument("--eager", action="store_true", help="also trace without the lean import")
    parser.add_argument("--models", help="comma-separated subset of the models")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="import-trace-") as tmp:
        models = build_models(Path(tmp))
        chosen = args.models.split(",") if args.models else list(models)
        for name in chosen:
            for eager in (False, True) if args.eager else (False,):
                report, packages = trace(models[name], eager)
                top = ", ".join(f"{pkg} {s:.2f}" for pkg, s in list(packages.items())[: args.top])
                print(
                    f"{name}{' (eager)' if eager else ''}: init {report['init_s']:.2f} s, first answer "
                    f"{report['first_answer_s']:.2f} s ({report['scored']} golden records); imports "
                    f"{sum(packages.values()):.2f} s: {top}"
                )
                print(
                    f"  still deferred: {', '.join(report['deferred']) or 'none'}; imported: "
                    f"{', '.join(report['imported']) or 'none'}"
                )
    return 0


if __name__ == "__main__":
    sys.exit(main())
