"""The libraries a pickled artifact needs: the installed distributions of the modules its pickle names.

A pickle names every class and function it rebuilds with a ``GLOBAL`` / ``INST`` opcode
(``module name`` as its argument) or a ``STACK_GLOBAL`` (module and name pushed as the two
strings before it, possibly fetched back from the memo). :func:`pickle_modules` reads those
opcodes with :mod:`pickletools`, without running anything. A joblib file interleaves raw
array bytes with its pickle, so the loaded object is pickled again in memory and that
stream is read; the modules it names are the ones unpickling the artifact imports.

:func:`required_libraries` maps the modules' top-level packages to distributions with
:func:`importlib.metadata.packages_distributions` (``sklearn`` -> ``scikit-learn``,
``lightgbm`` -> ``lightgbm``): the standard library and modules that no distribution
installed (a model folder's own code) are not libraries and are left out.
"""

from __future__ import annotations

import pickle
import pickletools
from collections.abc import Iterable
from importlib import metadata
from typing import Any

_STRINGS = {"SHORT_BINUNICODE", "BINUNICODE", "BINUNICODE8", "UNICODE", "SHORT_BINSTRING", "BINSTRING", "STRING"}
_GETS = {"GET", "BINGET", "LONG_BINGET"}
_PUTS = {"PUT", "BINPUT", "LONG_BINPUT"}


def modules_in_pickle(data: bytes) -> set[str]:
    """Every module a pickle stream's ``GLOBAL``, ``INST`` and ``STACK_GLOBAL`` opcodes name.

    A stream that stops being a pickle (a joblib file's raw array data) is read up to there.
    """
    modules: set[str] = set()
    memo: dict[int, Any] = {}
    pushed: list[Any] = []  # the values the opcodes pushed, most recent last (strings, else None)
    try:
        for opcode, arg, _ in pickletools.genops(data):
            name = opcode.name
            if name in ("GLOBAL", "INST"):
                modules.add(str(arg).split(" ")[0])
                pushed.append(None)
            elif name == "STACK_GLOBAL":
                if len(pushed) >= 2 and isinstance(pushed[-2], str):
                    modules.add(pushed[-2])
                pushed.append(None)
            elif name in _STRINGS:
                pushed.append(arg if isinstance(arg, str) else None)
            elif name in _GETS:
                pushed.append(memo.get(int(arg or 0)))
            elif name == "MEMOIZE":
                memo[len(memo)] = pushed[-1] if pushed else None
            elif name in _PUTS:
                memo[int(arg or 0)] = pushed[-1] if pushed else None
            elif name not in ("FRAME", "PROTO"):
                pushed.append(None)
            del pushed[:-2]
    except (ValueError, EOFError):  # not (or no longer) a pickle: keep what was read
        pass
    return modules


def pickle_modules(obj: Any, raw: bytes = b"") -> set[str]:
    """The modules unpickling ``obj`` imports: those its own pickle names, plus those of ``raw``
    (the artifact's file bytes: joblib's own wrapper classes)."""
    try:
        modules = modules_in_pickle(pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL))
    except Exception:  # noqa: BLE001 - an object that cannot be pickled again: read the file's opcodes alone
        modules = set()
    return modules | modules_in_pickle(raw)


def required_libraries(modules: Iterable[str]) -> dict[str, str]:
    """``distribution -> installed version`` for every installed distribution that provides one of ``modules``.

    Names are the distributions' own (``scikit-learn``), lower-cased.
    """
    providers = metadata.packages_distributions()
    libraries = {}
    for module in modules:
        for dist in providers.get(module.split(".")[0], []):
            libraries[dist.lower()] = metadata.version(dist)
    return dict(sorted(libraries.items()))
