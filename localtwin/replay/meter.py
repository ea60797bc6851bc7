"""Metering the embedded endpoint: the time moto's server spends on each operation.

:class:`EndpointMeter` times every request moto's server handles (wall and the CPU time of
the thread handling it), per operation; with the function's REPORT durations and this
process's CPU time it shows where the replay's wall time goes.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, replace
from typing import Any


@dataclass
class OperationTime:
    """Requests of one operation that moto's server handled."""

    calls: int = 0
    wall_s: float = 0.0
    cpu_s: float = 0.0


class EndpointMeter:
    """Times every request the in-process moto server handles, per operation.

    While active (a context manager), moto's WSGI entry point
    (``DomainDispatcherApplication.__call__``) is wrapped: each request's wall time and
    the CPU time of the thread handling it are added to its operation
    (``DynamoDB.BatchWriteItem``, ``Kinesis.GetRecords``, ...).
    """

    def __init__(self) -> None:
        self.operations: dict[str, OperationTime] = {}
        self._lock = threading.Lock()
        self._original: Any = None

    def __enter__(self) -> EndpointMeter:
        from moto.moto_server.werkzeug_app import DomainDispatcherApplication

        original = self._original = DomainDispatcherApplication.__call__
        meter = self

        def timed(app: Any, environ: dict[str, Any], start_response: Any) -> Any:
            wall, cpu = time.perf_counter(), time.thread_time()
            try:
                return list(original(app, environ, start_response))
            finally:
                meter._add(_operation(environ), time.perf_counter() - wall, time.thread_time() - cpu)

        DomainDispatcherApplication.__call__ = timed  # type: ignore[method-assign, assignment]
        return self

    def __exit__(self, *exc: object) -> None:
        from moto.moto_server.werkzeug_app import DomainDispatcherApplication

        DomainDispatcherApplication.__call__ = self._original  # type: ignore[method-assign]

    def _add(self, operation: str, wall_s: float, cpu_s: float) -> None:
        with self._lock:
            entry = self.operations.setdefault(operation, OperationTime())
            entry.calls += 1
            entry.wall_s += wall_s
            entry.cpu_s += cpu_s

    def snapshot(self) -> dict[str, OperationTime]:
        """A copy of the figures so far."""
        with self._lock:
            return {name: replace(entry) for name, entry in self.operations.items()}


def _operation(environ: dict[str, Any]) -> str:
    target = environ.get("HTTP_X_AMZ_TARGET")
    if target:  # "DynamoDB_20120810.BatchWriteItem" -> "DynamoDB.BatchWriteItem"
        service, _, action = target.partition(".")
        return f"{service.split('_')[0]}.{action}"
    return f"{environ.get('REQUEST_METHOD', '?')} {environ.get('PATH_INFO', '')}"


def since(now: dict[str, OperationTime], before: dict[str, OperationTime]) -> dict[str, OperationTime]:
    """The requests of each operation handled between the snapshots ``before`` and ``now``."""
    out = {}
    for name, entry in now.items():
        old = before.get(name, OperationTime())
        if entry.calls > old.calls:
            out[name] = OperationTime(entry.calls - old.calls, entry.wall_s - old.wall_s, entry.cpu_s - old.cpu_s)
    return out
