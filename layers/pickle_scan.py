"""Which modules a pickle (a joblib artifact) needs, found without running any of its code.

A pickle names each class and function it rebuilds by a global: the ``GLOBAL`` opcode
(``module name``) or ``STACK_GLOBAL`` (the two strings before it). :func:`pickle_globals`
collects them by running the pickle with a ``find_class`` that records each global and
hands back an inert placeholder instead of importing anything, so nothing the pickle
names is imported or called. (``pickletools.genops`` alone cannot read a joblib file: joblib
writes each numpy array's raw bytes in the middle of the pickle stream. The placeholder for
joblib's array wrapper skips those bytes, as joblib's own loader reads them.)

:func:`module_problems` then sorts the top-level modules: ``__main__`` (a class defined in a
notebook or script, which no other process can import), modules shipped as the team's own
code, installed ones, and ones that are neither (the pickle cannot be loaded on Lambda).

A joblib file compressed with zlib, gzip, bz2, lzma or xz is decompressed first.
"""

from __future__ import annotations

import bz2
import gzip
import importlib.util
import io
import lzma
import math
import pickle
import zlib
from dataclasses import dataclass, field
from typing import Any, BinaryIO

#: joblib's wrapper around a numpy array whose bytes follow it in the stream.
_ARRAY_WRAPPER = ("joblib.numpy_pickle", "NumpyArrayWrapper")


class PickleScanError(ValueError):
    """The bytes are not a pickle (or joblib file) this scanner can read."""


class _Placeholder:
    """Stands for any global: accepts every call, state and item, and runs nothing."""

    def __new__(cls, *args: Any, **kwargs: Any) -> _Placeholder:
        return object.__new__(cls)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.args = args

    def __setstate__(self, state: Any) -> None:
        self.state = state

    def append(self, item: Any) -> None:
        pass

    def extend(self, items: Any) -> None:
        pass

    def __setitem__(self, key: Any, value: Any) -> None:
        pass


class _Scanner(pickle.Unpickler):
    """An unpickler whose every global is a placeholder; ``found`` collects ``(module, name)``."""

    def __init__(self, stream: BinaryIO, found: set[tuple[str, str]]) -> None:
        super().__init__(stream)
        self.stream = stream
        self.found = found

    def find_class(self, module: str, name: str) -> type:
        self.found.add((module, name))
        if (module, name) == _ARRAY_WRAPPER:
            return _array_wrapper(self.stream, self.found)
        return type(name, (_Placeholder,), {"__module__": __name__})


def _array_wrapper(stream: BinaryIO, found: set[tuple[str, str]]) -> type:
    """A placeholder for joblib's ``NumpyArrayWrapper`` that skips the array bytes after it."""

    class ArrayWrapper(_Placeholder):
        def __setstate__(self, state: Any) -> None:
            if not isinstance(state, dict):
                raise PickleScanError("joblib array wrapper without its state")
            dtype = state.get("dtype")
            if _has_object(dtype):  # an array of Python objects: a pickle of its own follows
                _scan(stream, found)
                return
            if state.get("numpy_array_alignment_bytes") is not None:
                padding = stream.read(1)
                stream.read(int.from_bytes(padding, "little"))
            code = dtype.args[0] if isinstance(dtype, _Placeholder) and dtype.args else None
            itemsize = _itemsize(code, getattr(dtype, "state", None))
            count = math.prod(state.get("shape", ()))
            stream.read(count * itemsize)

    return ArrayWrapper


def _has_object(dtype: Any, depth: int = 0) -> bool:
    """Whether a pickled ``numpy.dtype`` holds Python objects (``O``, or a field of a structured dtype that does)."""
    if not isinstance(dtype, _Placeholder) or not dtype.args or depth > 32:
        return False
    if str(dtype.args[0]).lstrip("|").startswith("O"):
        return True
    state = getattr(dtype, "state", None)
    fields = state[4] if isinstance(state, tuple) and len(state) > 4 and isinstance(state[4], dict) else {}
    return any(_has_object(spec[0], depth + 1) for spec in fields.values() if isinstance(spec, tuple) and spec)


def _itemsize(code: Any, state: Any) -> int:
    """Bytes per element of a pickled ``numpy.dtype(code)`` with ``state`` (elsize, for void dtypes)."""
    if isinstance(state, tuple) and len(state) > 5 and isinstance(state[5], int) and state[5] > 0:
        return state[5]
    import numpy as np

    try:
        return np.dtype(code).itemsize
    except TypeError:
        raise PickleScanError(f"joblib array of unknown dtype {code!r}") from None


def _scan(stream: BinaryIO, found: set[tuple[str, str]]) -> None:
    try:
        _Scanner(stream, found).load()
    except PickleScanError:
        raise
    except Exception as exc:  # UnpicklingError, EOFError, a truncated or foreign format
        raise PickleScanError(f"not a pickle this scan can read ({type(exc).__name__}: {str(exc)[:120]})") from None


def _decompressed(data: bytes) -> bytes:
    """``data`` as joblib would read it: decompressed when it starts with a known magic."""
    try:
        if data[:1] == b"\x78":
            return zlib.decompress(data)
        if data[:2] == b"\x1f\x8b":
            return gzip.decompress(data)
        if data[:3] == b"BZh":
            return bz2.decompress(data)
        if data[:6] == b"\xfd7zXZ\x00" or data[:2] == b"\x5d\x00":
            return lzma.decompress(data)
    except (zlib.error, OSError, lzma.LZMAError, EOFError) as exc:
        raise PickleScanError(f"compressed data cannot be read ({type(exc).__name__})") from None
    return data


def pickle_globals(data: bytes) -> set[tuple[str, str]]:
    """Every ``(module, name)`` global the pickle (or joblib file) ``data`` refers to.

    Raises
    ------
    PickleScanError
        ``data`` is not a pickle, or is compressed in a way this scan cannot read (lz4).
    """
    found: set[tuple[str, str]] = set()
    _scan(io.BytesIO(_decompressed(data)), found)
    return found


@dataclass
class ModuleReport:
    """The top-level modules a pickle needs, sorted by where they come from."""

    #: Classes or functions of ``__main__`` (``module.name`` strings): defined in a notebook or script.
    main: list[str] = field(default_factory=list)
    #: Top-level modules shipped as the team's code.
    shipped: list[str] = field(default_factory=list)
    #: Top-level modules neither installed nor shipped.
    missing: list[str] = field(default_factory=list)


def module_problems(found: set[tuple[str, str]], shipped: set[str]) -> ModuleReport:
    """Sort the modules of :func:`pickle_globals` (``find_spec`` only: nothing is imported)."""
    report = ModuleReport()
    for module, name in sorted(found):
        top = module.split(".")[0]
        if top == "__main__":
            report.main.append(name)
        elif top in shipped:
            if top not in report.shipped:
                report.shipped.append(top)
        elif top not in report.missing and importlib.util.find_spec(top) is None:
            report.missing.append(top)
    return report
