"""The doubles the fuzzer gives the function: a results sink and a quarantine
destination that fail on a seeded subset of items (so the ``batchItemFailures`` paths are
exercised), and a model that raises on :data:`~testing.fuzz.cases.BOOM`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from testing.fuzz.cases import BOOM


class FlakySink:
    """A results sink (:class:`~inference.sinks.ResultSink`) that fails on chosen indices."""

    def __init__(self, fails: frozenset[int]) -> None:
        self.fails = fails
        self.received: list[int] = []
        self.written: dict[int, str] = {}

    def write(self, items: list[Any]) -> set[int]:
        failed = set()
        for item in items:
            self.received.append(item.index)
            if item.index in self.fails:
                failed.add(item.index)
            else:
                self.written[item.index] = item.record_id
        return failed


class FlakyQuarantine:
    """A quarantine destination that serialises each item as SQS and S3 do (the JSON
    document with the raw record), and fails on chosen indices."""

    def __init__(self, fails: frozenset[int]) -> None:
        self.fails = fails
        self.kept: dict[int, str] = {}

    def send(self, items: list[Any]) -> set[int]:
        failed = set()
        for item in items:
            body = item.body(attach_limit=None if item.index % 2 else 200_000)
            if not isinstance(body, str):
                raise TypeError("quarantine body is not a str")
            if item.index in self.fails:
                failed.add(item.index)
            else:
                self.kept[item.index] = body
        return failed


class RaisingModel:
    """Wraps a loaded model: ``predict`` raises ValueError quoting the input (as a model's
    own error might) when any input contains :data:`BOOM`."""

    def __init__(self, model: Any) -> None:
        self.model = model

    def __getattr__(self, name: str) -> Any:
        return getattr(self.model, name)

    def predict(self, inputs: Sequence[Any]) -> Any:
        for value in inputs:
            if isinstance(value, str) and BOOM in value:
                raise ValueError(f"cannot score {value[:80]!r}")
        return self.model.predict(inputs)
