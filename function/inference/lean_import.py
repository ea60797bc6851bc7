"""A lean init: modules that loading and predicting do not use are imported on first use, not at init.

scikit-learn imports, when it is first imported, modules that only fitting, statistics or
data frames use: ``sklearn.utils.fixes`` imports ``scipy.stats`` (about half of scikit-learn's
import time, though nothing on the load and predict path of a supported model calls it) and
``pandas`` if it is installed; ``sklearn.linear_model`` imports ``scipy.optimize`` (the
solvers). :func:`defer_unused_modules` puts a placeholder module (:class:`DeferredModule`)
for each of :data:`DEFERRED` into ``sys.modules`` before scikit-learn is imported: ``import
scipy.stats`` and ``from scipy import stats`` then succeed at once, and the real module is
imported the first time an attribute the placeholder lacks is read (``scipy.stats.mode``),
by whoever reads it; the placeholder then forwards every such read to it. Nothing is patched
in scikit-learn or SciPy; a model that does use a deferred module gets it, only later.
(The standard library's ``importlib.util.LazyLoader`` cannot do this: its module is
executed by the next ``import`` statement naming it, which reads its ``__spec__``.)

Safe because it only changes *when* a module runs, not what: a deferred module that is
never touched is never run, and one that is touched runs in full then. The layer checks'
smoke test (``make check-layers``: the function imported from the built layers alone, then
the model layer's golden predictions compared) and the golden predictions of every packaged
model prove that load and predict do not depend on it. What is measured (``python -X
importtime``, ``make bench``) is in docs/snapstart.md, "A lean import".

A module already imported (a test process that imported scikit-learn first) is left as it
is, and so is one that is not installed (``pandas`` in a layer without it).
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import threading
import types
from typing import Any

#: Imported by scikit-learn at import time, used by no supported model's load and predict; with
#: the functions scikit-learn's modules take from them by name when they are imported
#: (``from scipy.stats import rankdata``), which the placeholder hands out as forwarders.
DEFERRED: dict[str, tuple[str, ...]] = {
    "scipy.stats": ("rankdata", "gmean", "spearmanr", "chi2"),
    "scipy.optimize": ("minimize", "minimize_scalar", "linear_sum_assignment", "linprog"),
    "scipy.integrate": ("trapezoid",),
}
#: Imported by scikit-learn, if installed, in case its input is a data frame; then looked up in
#: ``sys.modules`` at each call (a data frame can only exist once pandas was imported). Deferred
#: while scikit-learn is imported, and taken out of ``sys.modules`` again by
#: :func:`forget_unused_optional_modules` if nothing used it: the process is then as it would be
#: had pandas never been imported; whoever kept the placeholder still gets the real module.
OPTIONAL: tuple[str, ...] = ("pandas",)

_lock = threading.RLock()


class DeferredModule(types.ModuleType):
    """Stands in ``sys.modules`` for a module not imported yet; imports it on the first read of a missing attribute.

    It holds what the import system reads (``__spec__``, ``__path__``, ``__file__``, ...), so
    ``import`` statements and submodule imports do not trigger the import; any other
    attribute is read from the real module, which replaces the placeholder in ``sys.modules``
    and on the parent package once imported.
    """

    def __getattr__(self, attr: str) -> Any:
        if attr in self.__dict__.get("_deferred_functions", ()) and "_deferred_real" not in self.__dict__:
            forwarder = _forwarder(self, attr)
            setattr(self, attr, forwarder)
            return forwarder
        return getattr(self._real_module(), attr)

    def _real_module(self) -> types.ModuleType:
        name = self.__name__
        with _lock:
            real = self.__dict__.get("_deferred_real")
            if real is None:
                if sys.modules.get(name) is self:
                    del sys.modules[name]
                real = importlib.import_module(name)
                self.__dict__["_deferred_real"] = real
                parent_name, _, child = name.rpartition(".")
                if parent_name and parent_name in sys.modules:
                    setattr(sys.modules[parent_name], child, real)
        return real


class _Forwarder:
    """Stands for the real module's ``attr``: calling it calls that, reading an attribute reads
    that one's (``chi2.isf``: SciPy's distributions are objects); the module is imported on first use."""

    def __init__(self, module: DeferredModule, attr: str) -> None:
        self._module, self._attr = module, attr
        self.__name__ = self.__qualname__ = attr
        self.__module__ = module.__name__
        self.__doc__ = f"{module.__name__}.{attr}, imported on its first use (inference.lean_import)."

    def _target(self) -> Any:
        return getattr(self._module._real_module(), self._attr)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._target()(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") or name in ("_module", "_attr"):
            raise AttributeError(name)
        return getattr(self._target(), name)


def _forwarder(module: DeferredModule, attr: str) -> _Forwarder:
    """What stands for the real module's ``attr`` until first use (:class:`_Forwarder`)."""
    return _Forwarder(module, attr)


def defer(name: str, functions: tuple[str, ...] = ()) -> bool:
    """Put a :class:`DeferredModule` for ``name`` into ``sys.modules`` (and on its parent package).

    ``functions`` are names of functions in it that are handed out as forwarders, without
    importing it, when they are read before anything else is (``from scipy.stats import
    rankdata``): a forwarder calls the real function, importing the module on its first call.

    Returns
    -------
    bool
        Whether it was deferred (``False``: already imported, or not installed).
    """
    with _lock:
        if name in sys.modules:
            return False
        try:
            spec = importlib.util.find_spec(name)  # imports the parent package (scipy: cheap, its modules are lazy)
        except (ImportError, ValueError):
            return False
        if spec is None or spec.loader is None:
            return False
        module = DeferredModule(name)
        module.__dict__["_deferred_functions"] = frozenset(functions)
        module.__spec__ = spec
        module.__loader__ = spec.loader
        module.__package__ = name if spec.submodule_search_locations is not None else name.rpartition(".")[0]
        if spec.submodule_search_locations is not None:
            module.__path__ = list(spec.submodule_search_locations)
        if spec.origin:
            module.__file__ = spec.origin
        sys.modules[name] = module
        parent_name, _, child = name.rpartition(".")
        if parent_name:  # ``from scipy import stats`` reads the package's attribute
            setattr(sys.modules[parent_name], child, module)
        return True


def defer_unused_modules() -> list[str]:
    """:func:`defer` every module of :data:`DEFERRED`; returns those deferred (call before importing scikit-learn)."""
    return [name for name, functions in {**DEFERRED, **dict.fromkeys(OPTIONAL, ())}.items() if defer(name, functions)]


def forget_unused_optional_modules() -> list[str]:
    """Take the placeholders of :data:`OPTIONAL` modules nothing used out of ``sys.modules``; returns their names.

    Call once the model is loaded: a later ``import pandas`` imports the real one, and the
    placeholder scikit-learn kept forwards to it.
    """
    forgotten = []
    with _lock:
        for name in OPTIONAL:
            if is_deferred(name):
                del sys.modules[name]
                forgotten.append(name)
    return forgotten


def is_deferred(name: str) -> bool:
    """Whether ``name`` is still a placeholder in ``sys.modules`` that nothing has used yet."""
    module = sys.modules.get(name)
    return isinstance(module, DeferredModule) and "_deferred_real" not in module.__dict__
