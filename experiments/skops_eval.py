"""Measure skops.io as a safer format for the model layer's artifacts (docs/model-layer.md, "Model integrity").

Run in a scratch venv holding the project's runtime pins plus skops (never the project's
own ``.venv``)::

    /path/to/python3.12 -m venv /tmp/skops-venv
    grep -E '^(numpy|scipy|scikit-learn|joblib|threadpoolctl|cloudpickle|narwhals)==' requirements.txt \\
        | /tmp/skops-venv/bin/pip install -r /dev/stdin skops==0.16.0
    PYTHONPATH=function:. /tmp/skops-venv/bin/python -m experiments.skops_eval [--model build/model] [--repeat 5]

For each artifact listed in the model folder's manifest (sha256-verified before it is
unpickled): the skops file size, what ``skops.io.get_untrusted_types`` reports, and
whether ``skops.io.load`` with skops' default-trusted types only gives back an object
whose fitted state is identical (same types, dtypes and bits). Then predictions of both
pipelines on the sample texts and on generated ones (labels and probabilities compared
bit for bit), import + load times in fresh interpreters (median of ``--repeat``), and
what installing skops adds to the dependencies layer.
"""

from __future__ import annotations

import argparse
import importlib.metadata as md
import io
import json
import statistics
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path
from typing import Any

from inference.model import load_model

from layers.deps_layer import TEST_DIRS, runtime_pins

ROOT = Path(__file__).resolve().parents[1]
#: The runtime pins (Pipfile [packages]): already in the dependencies layer.
RUNTIME_DISTS = {pin.split("==")[0].lower() for pin in runtime_pins()}


def same(a: Any, b: Any, where: str = "") -> list[str]:
    """Where ``a`` and ``b`` differ in type, dtype, shape or value (empty list: identical)."""
    import numpy as np
    import scipy.sparse as sp

    if type(a) is not type(b):
        return [f"{where}: {type(a).__name__} vs {type(b).__name__}"]
    if isinstance(a, np.ndarray):
        if a.dtype != b.dtype or a.shape != b.shape:
            return [f"{where}: {a.dtype}{a.shape} vs {b.dtype}{b.shape}"]
        # Bit for bit (NaNs included), except object arrays, whose bytes are pointers.
        equal = bool(np.array_equal(a, b)) if a.dtype.kind == "O" else a.tobytes() == b.tobytes()
        return [] if equal else [f"{where}: array values differ"]
    if sp.issparse(a):
        return same(a.toarray(), b.toarray(), where) if a.format == b.format else [f"{where}: sparse format"]
    if isinstance(a, dict):
        if list(a) != list(b):
            return [f"{where}: dict keys or their order differ"]
        return [d for k in a for d in same(a[k], b[k], f"{where}[{k!r}]")]
    if isinstance(a, list | tuple):
        if len(a) != len(b):
            return [f"{where}: length {len(a)} vs {len(b)}"]
        return [d for i, (x, y) in enumerate(zip(a, b)) for d in same(x, y, f"{where}[{i}]")]
    if isinstance(a, set | frozenset):
        return [] if a == b else [f"{where}: set differs"]
    if isinstance(a, type) or callable(a) and not hasattr(a, "__dict__"):
        return [] if a is b else [f"{where}: {a!r} vs {b!r}"]
    if hasattr(a, "__dict__") and not isinstance(a, int | float | str | bytes):
        return same(vars(a), vars(b), f"{where}.")
    if isinstance(a, float) and a != a:
        return [] if b != b else [f"{where}: nan vs {b!r}"]
    return [] if a == b else [f"{where}: {a!r} vs {b!r}"]


def texts(vocabulary: list[str], n: int = 2000, seed: int = 0) -> list[str]:
    """The sample event texts, then ``n`` reproducible bags of the model's own words."""
    import numpy as np

    from testing.events import SAMPLE_TEXTS

    rng = np.random.default_rng(seed)
    words = np.array(vocabulary)
    generated = [" ".join(rng.choice(words, size=int(rng.integers(3, 30)))) for _ in range(n)]
    return [*SAMPLE_TEXTS, *generated]


def predict(steps: list[Any], inputs: list[str]) -> tuple[Any, Any]:
    features: Any = inputs
    for step in steps[:-1]:
        features = step.transform(features)
    return steps[-1].predict(features), steps[-1].predict_proba(features)


_TIMER = r"""
import sys, time, json
t0 = time.perf_counter()
if sys.argv[1] == "joblib":
    import joblib
    load = lambda data: joblib.load(io.BytesIO(data))
else:
    import skops.io
    load = lambda data: skops.io.loads(data)
import io
t1 = time.perf_counter()
datas = [open(p, "rb").read() for p in sys.argv[2:]]
objs = [load(d) for d in datas]
t2 = time.perf_counter()
print(json.dumps({"import": t1 - t0, "load": t2 - t1}))
"""


def fresh_times(files: dict[str, list[Path]], repeat: int) -> dict[str, dict[str, float]]:
    """Median import and load seconds per format in ``repeat`` fresh interpreters each.

    The formats take turns, so load from other work on the machine falls on both alike.
    """
    runs: dict[str, list[dict]] = {kind: [] for kind in files}
    for _ in range(repeat):
        for kind, paths in files.items():
            out = subprocess.run(
                [sys.executable, "-c", _TIMER, kind, *map(str, paths)], capture_output=True, text=True, check=True
            )
            runs[kind].append(json.loads(out.stdout))
    return {kind: {k: statistics.median(r[k] for r in rs) for k in ("import", "load")} for kind, rs in runs.items()}


def warm_load(kind: str, datas: list[bytes], repeat: int) -> float:
    """Median seconds to load every artifact again in this (warm) interpreter."""
    import time

    import joblib
    import skops.io

    def load(data: bytes) -> Any:
        return joblib.load(io.BytesIO(data)) if kind == "joblib" else skops.io.loads(data)

    runs = []
    for _ in range(repeat):
        started = time.perf_counter()
        for data in datas:
            load(data)
        runs.append(time.perf_counter() - started)
    return statistics.median(runs)


def added_dists(root: str = "skops") -> list[str]:
    """``root`` and every distribution it requires (no extras) that the runtime pins lack."""
    seen, todo = [], [root]
    while todo:
        name = todo.pop()
        if name in seen or name in RUNTIME_DISTS:
            continue
        seen.append(name)
        for req in md.requires(name) or []:
            if "extra ==" in req:
                continue
            todo.append(
                req.split(";")[0].split("[")[0].split("<")[0].split(">")[0].split("=")[0].split("!")[0].strip().lower()
            )
    return seen


def dist_sizes(name: str) -> tuple[int, int, int]:
    """(installed bytes, as the layer would hold it: no tests dirs, with bytecode; zipped)."""
    dist = md.distribution(name)
    installed = layer = 0
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
        for file in dist.files or []:
            path = Path(str(dist.locate_file(file)))  # typed as the SimplePath protocol; a Path here
            if not path.is_file():
                continue
            size = path.stat().st_size
            installed += size
            if TEST_DIRS & set(file.parts) or file.parts[0].endswith(".dist-info") and file.name != "METADATA":
                continue
            layer += size
            zf.write(path, str(file))
    return installed, layer, len(buffer.getvalue())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Measure skops.io against joblib on a model folder.")
    parser.add_argument("--model", type=Path, default=ROOT / "build" / "model")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args(argv)

    import joblib
    import numpy as np
    import scipy
    import sklearn
    import skops
    import skops.io

    print(
        f"python {sys.version.split()[0]}, numpy {np.__version__}, scipy {scipy.__version__}, "
        f"scikit-learn {sklearn.__version__}, joblib {joblib.__version__}, skops {skops.__version__}\n"
    )
    model = load_model(args.model)  # the function's loader: sha256-verified before unpickling, versions checked
    manifest = model.manifest
    originals, restored, sizes = [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        skops_files = []
        print(f"{'artifact':<20}{'type':<20}{'joblib':>10}{'skops':>12}{'deflated':>11}  untrusted  state")
        for step, obj in zip(manifest["pipeline"], [*model.preprocessors, model.estimator]):
            size = (args.model / step["file"]).stat().st_size
            stored = skops.io.dumps(obj)
            deflated = skops.io.dumps(obj, compression=zipfile.ZIP_DEFLATED)
            untrusted = skops.io.get_untrusted_types(data=stored)
            back = skops.io.loads(stored)  # trusted=None: skops' default-trusted types only
            diffs = same(obj, back, type(obj).__name__)
            path = Path(tmp) / (Path(step["file"]).stem + ".skops")
            path.write_bytes(deflated)
            skops_files.append(path)
            originals.append(obj)
            restored.append(back)
            sizes.append((size, len(stored), len(deflated)))
            print(
                f"{step['file']:<20}{type(obj).__name__:<20}{size:>10,}{len(stored):>12,}{len(deflated):>11,}  "
                f"{untrusted or 'none':<9}  {'identical' if not diffs else '; '.join(diffs[:3])}"
            )
        total = [sum(s[i] for s in sizes) for i in range(3)]
        print(f"{'total':<40}{total[0]:>10,}{total[1]:>12,}{total[2]:>11,}")

        vocabulary = sorted(originals[0].vocabulary_) if hasattr(originals[0], "vocabulary_") else []
        inputs = texts(vocabulary) if manifest["input"]["kind"] == "text" and vocabulary else []
        if inputs:
            (la, pa), (lb, pb) = predict(originals, inputs), predict(restored, inputs)
            exact = np.array_equal(la, lb) and pa.tobytes() == pb.tobytes()
            print(
                f"\npredictions on {len(inputs):,} texts: labels equal {bool(np.array_equal(la, lb))}, "
                f"probabilities bit-identical {pa.tobytes() == pb.tobytes()}"
                + ("" if exact else f" (max |diff| {np.abs(pa - pb).max():.3g})")
            )

        joblib_files = [args.model / step["file"] for step in manifest["pipeline"]]
        fresh = fresh_times({"joblib": joblib_files, "skops": skops_files}, args.repeat)
        warm = {
            "joblib": warm_load("joblib", [p.read_bytes() for p in joblib_files], args.repeat),
            "skops": warm_load("skops", [p.read_bytes() for p in skops_files], args.repeat),
        }
    print(f"\nmedian of {args.repeat}, ms   import   load (fresh)   import+load   load (warm)")
    for kind in ("joblib", "skops"):
        f = fresh[kind]
        print(
            f"  {kind:<15}{f['import'] * 1000:>8.0f}{f['load'] * 1000:>15.0f}"
            f"{(f['import'] + f['load']) * 1000:>14.0f}{warm[kind] * 1000:>14.0f}"
        )

    print("\nwhat skops adds beyond the runtime pins   installed   in the layer   zipped")
    sums = [0, 0, 0]
    for name in added_dists():
        row = dist_sizes(name)
        sums = [a + b for a, b in zip(sums, row)]
        print(
            f"  {name + ' ' + md.version(name):<39}{row[0] / 1e6:>8.2f} MB{row[1] / 1e6:>12.2f} MB{row[2] / 1e6:>6.2f} MB"
        )
    print(f"  {'total':<39}{sums[0] / 1e6:>8.2f} MB{sums[1] / 1e6:>12.2f} MB{sums[2] / 1e6:>6.2f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
