"""Where the invocations' wall time went: on a core, waiting for one, and each wait, placed by timestamps.

An invocation's duration (from the event handed to the runtime to its response read) is
the worker's time on a core, its time runnable but waiting for one (both from ``/proc``,
in the :class:`~localtwin.runtime.report.Report`), and the time it was blocked. The
blocked time is placed with three sets of ``time.perf_counter`` stamps (CLOCK_MONOTONIC,
the same clock in every process):

* the worker's: when it sent each AWS call, and from which local port (an audit hook in
  the twin's bootstrap, :data:`localtwin.runtime.environment.SEND_LOG_VARIABLE`; the
  function's code is not touched);
* the endpoint's (:class:`localtwin.replay.meter.RequestTimes`): per request, the client's
  port, when its request line was read, when moto answered, when the answer was written;
* the Runtime API's (:class:`localtwin.runtime.report.Timing`): the event written to the
  runtime, the response's request line read, its body read.

A call is matched to the first send on its port after the previous answer on that port
was written. Its time splits into *queued* (sent, not yet read by moto's server: the
server's threads waiting for its interpreter lock, a new connection's accept), *handled*
(moto's application) and *written back* (the answer written to the socket). The Runtime
API's share is *event delivery* (from the dispatch to the event written) and *response
read* (from the response's request line to its body read). What is left, the ``rest_s``,
is what no stamp covers: the worker's response waiting for this process's server thread
to read its request line, sleeps between retries, and the stamps' own resolution.
"""

from __future__ import annotations

import bisect
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from localtwin.replay.meter import RequestTimes
from localtwin.runtime.report import Report


@dataclass
class InvocationWaits:
    """The invocations' durations summed, split (seconds)."""

    invocations: int = 0
    duration_s: float = 0.0
    on_core_s: float = 0.0
    run_queue_s: float = 0.0
    calls: int = 0
    #: Calls whose send was not found in the worker's log (their queue time counts as 0).
    unmatched_calls: int = 0
    queued_s: float = 0.0
    handled_s: float = 0.0
    written_back_s: float = 0.0
    event_delivery_s: float = 0.0
    response_read_s: float = 0.0

    @property
    def rest_s(self) -> float:
        """What no stamp covers (see the module docstring)."""
        placed = self.on_core_s + self.run_queue_s + self.queued_s + self.handled_s + self.written_back_s
        return self.duration_s - placed - self.event_delivery_s - self.response_read_s


def read_send_logs(directory: Path) -> dict[int, list[tuple[float, int]]]:
    """Per worker pid, its sends: ``(time, local port)`` in order (files ``<dir>/<pid>``)."""
    logs: dict[int, list[tuple[float, int]]] = {}
    for path in Path(directory).glob("[0-9]*"):
        sends = []
        for line in path.read_text().splitlines():
            at, _, port = line.partition(" ")
            try:
                sends.append((float(at), int(port)))
            except ValueError:
                continue  # a line cut short by a kill
        logs[int(path.name)] = sorted(sends)
    return logs


def _sent_at(requests: list[RequestTimes], sends: dict[int, list[float]]) -> list[tuple[float | None, RequestTimes]]:
    """Each request with its send time: the first send on its port after the previous answer there."""
    out: list[tuple[float | None, RequestTimes]] = []
    by_port: dict[int, list[RequestTimes]] = defaultdict(list)
    for request in requests:
        by_port[request.port].append(request)
    for port, port_requests in by_port.items():
        times = sends.get(port, [])
        previous = float("-inf")
        for request in sorted(port_requests, key=lambda r: r.received_at):
            i = bisect.bisect_right(times, previous)
            sent = times[i] if i < len(times) and times[i] <= request.received_at else None
            out.append((sent, request))
            previous = request.written_at
    return out


def invocation_waits(
    reports: Iterable[Report], requests: list[RequestTimes], send_logs: dict[int, list[tuple[float, int]]]
) -> InvocationWaits:
    """Split the invocations' durations (``reports``) with the endpoint's ``requests`` and the workers' sends."""
    port_pid: dict[int, int] = {}
    sends_by_port: dict[int, list[float]] = defaultdict(list)
    for pid, sends in send_logs.items():
        for at, port in sends:
            port_pid[port] = pid
            sends_by_port[port].append(at)
    per_pid: dict[int, list[tuple[float, float, RequestTimes]]] = defaultdict(list)
    for sent, request in _sent_at([r for r in requests if r.port in port_pid], sends_by_port):
        start = sent if sent is not None else request.received_at
        per_pid[port_pid[request.port]].append((start, -1.0 if sent is None else sent, request))
    for calls in per_pid.values():
        calls.sort(key=lambda c: c[0])
    starts = {pid: [c[0] for c in calls] for pid, calls in per_pid.items()}
    out = InvocationWaits()
    for report in reports:
        out.invocations += 1
        out.duration_s += report.duration_ms / 1000
        out.on_core_s += report.cpu_ms / 1000
        out.run_queue_s += report.wait_ms / 1000
        timing = report.timing
        if timing is None:
            continue
        if timing.dispatch_written_at is not None:
            out.event_delivery_s += max(0.0, timing.dispatch_written_at - timing.dispatched_at)
        if timing.outcome_received_at is not None:
            out.response_read_s += max(0.0, timing.finished_at - timing.outcome_received_at)
        calls, times = per_pid.get(timing.pid, []), starts.get(timing.pid, [])
        lo, hi = bisect.bisect_left(times, timing.dispatched_at), bisect.bisect_right(times, timing.finished_at)
        for start, sent, request in calls[lo:hi]:
            out.calls += 1
            out.unmatched_calls += sent < 0
            out.queued_s += request.received_at - start
            out.handled_s += request.answered_at - request.received_at
            out.written_back_s += request.written_at - request.answered_at
    return out
