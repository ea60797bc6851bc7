"""The lean import (inference.lean_import): placeholders that import a module on first use, and what they save.

The semantics on a small package written here (it counts how often it is executed); the
effect on the function in a fresh interpreter (this one imported scikit-learn long ago):
scipy.stats and friends never imported through init and the golden batch, pandas not left
in ``sys.modules``, and the same predictions as an eager import.
"""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys

import pytest
from inference import lean_import

from tests.helpers import ROOT

PACKAGE = """
import builtins
builtins.lean_import_runs = getattr(builtins, "lean_import_runs", 0) + 1
def double(x):
    return 2 * x
VALUE = 42
"""


@pytest.fixture
def package(tmp_path, monkeypatch):
    """A fresh module name on sys.path each time; the count of its executions reset."""
    import builtins

    name = f"lean_pkg_{tmp_path.name.replace('-', '_')}"
    (tmp_path / name).mkdir()
    (tmp_path / name / "__init__.py").write_text(PACKAGE)
    (tmp_path / name / "sub.py").write_text("SUB = 'sub'\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(builtins, "lean_import_runs", 0, raising=False)
    yield name
    for module in [m for m in sys.modules if m == name or m.startswith(name + ".")]:
        del sys.modules[module]


def runs() -> int:
    import builtins

    return builtins.lean_import_runs  # type: ignore[attr-defined, no-any-return]


def test_a_deferred_module_runs_on_first_use_only_and_then_is_the_real_one(package):
    assert lean_import.defer(package, ("double",))
    module = importlib.import_module(package)  # an import statement does not run it
    forwarder = module.double  # nor does taking a listed function by name
    sub = importlib.import_module(f"{package}.sub")  # nor a submodule's import
    assert runs() == 0 and lean_import.is_deferred(package) and sub.SUB == "sub"
    assert forwarder(21) == 42 and runs() == 1  # its first call does
    assert module.VALUE == 42 and runs() == 1 and not lean_import.is_deferred(package)
    assert sys.modules[package] is not module and sys.modules[package].VALUE == 42
    assert not lean_import.defer(package)  # already imported: left as it is


def test_any_other_attribute_runs_it(package):
    lean_import.defer(package, ("double",))
    assert importlib.import_module(package).VALUE == 42 and runs() == 1
    assert sys.modules[package].double(1) == 2  # the real function now


def test_an_unused_optional_module_is_forgotten_and_a_later_import_is_real(package, monkeypatch):
    monkeypatch.setattr(lean_import, "OPTIONAL", (package,))
    monkeypatch.setattr(lean_import, "DEFERRED", {})
    assert lean_import.defer_unused_modules() == [package]
    kept = importlib.import_module(package)  # what a library bound while it was deferred
    assert lean_import.forget_unused_optional_modules() == [package] and package not in sys.modules
    real = importlib.import_module(package)
    assert runs() == 1 and kept.VALUE == real.VALUE == 42 and runs() == 1


def test_a_module_not_installed_is_not_deferred():
    assert not lean_import.defer("no_such_module_anywhere")
    assert "no_such_module_anywhere" not in sys.modules


_CHILD = """
import json, os, sys
if sys.argv[1] == "eager":
    from inference import lean_import
    lean_import.DEFERRED, lean_import.OPTIONAL = {}, ()
import lambda_function
from inference import snapstart
model = lambda_function.app.model
golden = json.loads(open(os.path.join(os.environ["MODEL_DIR"], "golden.json")).read())
inputs = [record[model.manifest["input"]["field"]] for record in golden["records"]]
results = model.predict(inputs).results()
snapstart.before_snapshot(lambda_function.app)
print(json.dumps({"results": results, "golden": golden["results"],
    "imported": sorted(m for m in ("scipy.stats", "scipy.optimize", "scipy.integrate", "pandas")
                       if m in sys.modules and type(sys.modules[m]).__name__ == "module")}))
"""


@pytest.mark.slow
def test_the_function_initialises_and_predicts_without_scipy_stats_and_as_an_eager_import(text_model_dir):
    env = {**os.environ, "PYTHONPATH": f"{ROOT / 'function'}", "MODEL_DIR": str(text_model_dir)}
    env.pop("RESULTS_TABLE", None)
    reports = {}
    for kind in ("lean", "eager"):
        proc = subprocess.run(
            [sys.executable, "-c", _CHILD, kind], capture_output=True, text=True, env=env, check=True, cwd=ROOT
        )
        reports[kind] = json.loads(proc.stdout.strip().splitlines()[-1])
    lean, eager = reports["lean"], reports["eager"]
    assert lean["imported"] == []
    assert {"scipy.stats", "scipy.optimize", "scipy.integrate"} <= set(eager["imported"])
    assert lean["results"] == eager["results"] == lean["golden"]
