"""Metering the AWS endpoint: the time moto's server spends on each operation.

moto's server runs in a process of its own (:mod:`localtwin.endpoint`). There,
:class:`MeteredApp` wraps moto's WSGI application and times every request it handles (wall,
and the CPU time of the thread handling it), per operation (``DynamoDB.BatchWriteItem``,
``Kinesis.GetRecords``, ...), and answers ``GET`` :data:`METER_PATH` with the figures so far
and the server process's CPU time. In the replay's process, :func:`read_meter` fetches them;
two readings subtracted (:func:`since`) give what one phase of the run cost the endpoint.
With the function's REPORT durations and the CPU time of the other processes, they show
where the replay's wall time goes.

The server also keeps a timeline of its requests (:class:`RequestTimes`: the client's port,
the operation, when the request line was read, when moto answered, when the answer was
written back), answered at ``GET`` :data:`TIMELINE_PATH` and read by :func:`read_timeline`;
:mod:`localtwin.replay.waits` matches it with the workers' send times.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.request
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from localtwin.wsgi_server import RECEIVED_AT

#: Where the metered server answers with its figures (not an AWS path).
METER_PATH = "/_localtwin/meter"
#: Where it answers with its timeline of requests (not an AWS path).
TIMELINE_PATH = "/_localtwin/timeline"
#: WSGI environ key: when moto's application returned its answer (set by :class:`MeteredApp`).
ANSWERED_AT = "localtwin.answered_at"


@dataclass(frozen=True)
class RequestTimes:
    """One request as the server saw it (``time.perf_counter``, CLOCK_MONOTONIC: comparable across processes).

    ``received_at``: its request line read; ``answered_at``: moto's application returned;
    ``written_at``: the answer written to the socket.
    """

    port: int
    operation: str
    received_at: float
    answered_at: float
    written_at: float


@dataclass
class OperationTime:
    """Requests of one operation that moto's server handled.

    ``wall_s`` runs from the request's arrival (its request line read, when the server
    notes it: :data:`RECEIVED_AT`; else the handler's start) to moto's answer, so it
    includes the server's wait for a core and its lock; ``cpu_s`` is the handling
    thread's CPU time in moto's handler.
    """

    calls: int = 0
    wall_s: float = 0.0
    cpu_s: float = 0.0


@dataclass
class EndpointReading:
    """The endpoint's figures at one moment: per operation, and the server process's CPU seconds."""

    operations: dict[str, OperationTime]
    process_cpu_s: float


WSGIApp = Callable[[dict[str, Any], Any], Iterable[bytes]]


class MeteredApp:
    """A WSGI middleware (in the server process) timing every request per operation.

    Parameters
    ----------
    app : WSGI application
        moto's (``DomainDispatcherApplication``), called unchanged.
    """

    def __init__(self, app: WSGIApp) -> None:
        self.app = app
        self.operations: dict[str, OperationTime] = {}
        self.timeline: list[RequestTimes] = []
        self._lock = threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        if environ.get("PATH_INFO") == METER_PATH:
            return self._answer_reading(start_response)
        if environ.get("PATH_INFO") == TIMELINE_PATH:
            return self._answer_timeline(start_response)
        wall, cpu = environ.get(RECEIVED_AT) or time.perf_counter(), time.thread_time()
        try:
            return list(self.app(environ, start_response))
        finally:
            environ[ANSWERED_AT] = now = time.perf_counter()
            self._add(_operation(environ), now - wall, time.thread_time() - cpu)

    def written(self, environ: dict[str, Any], written_at: float) -> None:
        """The server has written the answer to the request of ``environ`` (called by its request handler)."""
        received, answered = environ.get(RECEIVED_AT), environ.get(ANSWERED_AT)
        if received is None or answered is None:
            return
        port = int(environ.get("REMOTE_PORT") or 0)
        with self._lock:
            self.timeline.append(RequestTimes(port, _operation(environ), received, answered, written_at))

    def _add(self, operation: str, wall_s: float, cpu_s: float) -> None:
        with self._lock:
            entry = self.operations.setdefault(operation, OperationTime())
            entry.calls += 1
            entry.wall_s += wall_s
            entry.cpu_s += cpu_s

    def _answer_reading(self, start_response: Any) -> list[bytes]:
        with self._lock:
            operations = {name: [op.calls, op.wall_s, op.cpu_s] for name, op in self.operations.items()}
        body = json.dumps({"operations": operations, "process_cpu_s": time.process_time()}).encode()
        start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
        return [body]

    def _answer_timeline(self, start_response: Any) -> list[bytes]:
        with self._lock:
            rows = [[t.port, t.operation, t.received_at, t.answered_at, t.written_at] for t in self.timeline]
        body = json.dumps(rows).encode()
        start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
        return [body]


def read_timeline(endpoint_url: str) -> list[RequestTimes]:
    """The metered server's requests so far (:class:`RequestTimes`), in the order they were written back."""
    with urllib.request.urlopen(endpoint_url + TIMELINE_PATH, timeout=30) as response:
        rows = json.loads(response.read())
    return [RequestTimes(int(p), str(o), float(r), float(a), float(w)) for p, o, r, a, w in rows]


def read_meter(endpoint_url: str) -> EndpointReading:
    """The figures of the metered server at ``endpoint_url`` so far.

    Raises
    ------
    RuntimeError
        If the server there is not metered (e.g. plain ``python -m moto.server``).
    """
    try:
        with urllib.request.urlopen(endpoint_url + METER_PATH, timeout=10) as response:
            doc = json.loads(response.read())
    except (OSError, ValueError) as exc:
        raise RuntimeError(f"no meter at {endpoint_url}{METER_PATH} ({exc}): start it with localtwin.endpoint") from exc
    return EndpointReading(
        {name: OperationTime(int(c), float(w), float(u)) for name, (c, w, u) in doc["operations"].items()},
        float(doc["process_cpu_s"]),
    )


def _operation(environ: dict[str, Any]) -> str:
    target = environ.get("HTTP_X_AMZ_TARGET")
    if target:  # "DynamoDB_20120810.BatchWriteItem" -> "DynamoDB.BatchWriteItem"
        service, _, action = target.partition(".")
        return f"{service.split('_')[0]}.{action}"
    return f"{environ.get('REQUEST_METHOD', '?')} {environ.get('PATH_INFO', '')}"


def since(now: dict[str, OperationTime], before: dict[str, OperationTime]) -> dict[str, OperationTime]:
    """The requests of each operation handled between the readings ``before`` and ``now``."""
    out = {}
    for name, entry in now.items():
        old = before.get(name, OperationTime())
        if entry.calls > old.calls:
            out[name] = OperationTime(entry.calls - old.calls, entry.wall_s - old.wall_s, entry.cpu_s - old.cpu_s)
    return out
