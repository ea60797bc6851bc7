"""Test doubles for the function's collaborators, shared by the tests and the fuzzer.

:class:`FakeSink`
    a results sink (:class:`~inference.sinks.ResultSink`);
:class:`FakeQuarantine`
    a quarantine destination (:class:`~inference.quarantine.Quarantine`) that also
    serialises every item as the SQS and S3 destinations do;
:class:`SpyModel`
    wraps a loaded model: records every predict call and raises on chosen inputs.

Both stores keep what they are given keyed by ``record_id`` (as the DynamoDB sink and
the S3 quarantine do: a redelivered record overwrites) and, for the checks, by batch
index. ``fail(item) -> bool`` chooses the items a store reports as not kept;
:func:`failing_at` builds it from batch indices.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from typing import Any

from inference.model import LoadedModel, Predictions
from inference.quarantine import QuarantineItem
from inference.sinks import ResultItem


def failing_at(indices: Collection[int]) -> Callable[[Any], bool]:
    """The ``fail`` predicate of a store that fails on the items at these batch indices."""
    chosen = frozenset(indices)
    return lambda item: item.index in chosen


class FakeStore:
    """Keeps what it is given; ``fail(item) -> bool`` chooses the items it reports as not kept.

    Attributes
    ----------
    calls : list of list
        The items of every call, in order.
    store : dict
        ``record_id -> item`` for the items kept (the last one wins).
    kept : dict
        ``index -> item`` for the items kept.
    """

    def __init__(self, fail: Callable[[Any], bool] | None = None) -> None:
        self.fail = fail
        self.calls: list[list[Any]] = []
        self.store: dict[str, Any] = {}
        self.kept: dict[int, Any] = {}

    def keep(self, items: Sequence[Any]) -> set[int]:
        """Record one call; the indices of the items not kept."""
        self.calls.append(list(items))
        failed = set()
        for item in items:
            if self.fail is not None and self.fail(item):
                failed.add(item.index)
            else:
                self.store[item.record_id] = item
                self.kept[item.index] = item
        return failed

    @property
    def received(self) -> list[int]:
        """Indices handed over, over all calls (a record given twice appears twice)."""
        return [item.index for call in self.calls for item in call]


class FakeSink(FakeStore):
    """A results sink (:class:`~inference.sinks.ResultSink`)."""

    def write(self, items: list[ResultItem]) -> set[int]:
        return self.keep(items)


class FakeQuarantine(FakeStore):
    """A quarantine destination (:class:`~inference.quarantine.Quarantine`).

    Every item is serialised as a destination would: even indices as SQS does (the record
    attached up to the default limit), odd ones as S3 does (the whole record), so both
    paths of :meth:`~inference.quarantine.QuarantineItem.body` run; ``bodies`` holds the
    documents by index.
    """

    def __init__(self, fail: Callable[[Any], bool] | None = None) -> None:
        super().__init__(fail)
        self.bodies: dict[int, str] = {}

    def send(self, items: list[QuarantineItem]) -> set[int]:
        for item in items:
            body = item.body(attach_limit=None) if item.index % 2 else item.body()
            if not isinstance(body, str):
                raise TypeError(f"quarantine body of item {item.index} is a {type(body).__name__}, not a str")
            self.bodies[item.index] = body
        return self.keep(items)


class SpyModel:
    """Wraps a :class:`~inference.model.LoadedModel`: records every predict call, and raises on chosen inputs.

    ``fail_if(input) -> bool``: a predict call raises ``ValueError`` quoting the input (as a
    model's own error message may) when any of its inputs matches, as a model does when
    one row of a batch is bad. Everything else (``manifest``, ``name``, ``version``, ...)
    is the wrapped model's.
    """

    def __init__(self, model: LoadedModel, fail_if: Callable[[Any], bool] | None = None) -> None:
        self.model = model
        self.fail_if = fail_if
        self.calls: list[list[Any]] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self.model, name)

    def predict(self, inputs: Sequence[Any]) -> Predictions:
        self.calls.append(list(inputs))
        if self.fail_if is not None:
            for value in inputs:
                if self.fail_if(value):
                    raise ValueError(f"cannot score {str(value)[:80]!r}")
        return self.model.predict(inputs)
