"""What one invocation of the local runtime returns, and the payload limit it enforces.

:class:`InvokeResult` holds the response (or Lambda's error document) and the
:class:`Report`: the figures of Lambda's ``REPORT`` line (duration, billed duration,
memory size, max memory used, init duration on a cold start (restore duration on one
restored from a SnapStart snapshot), status and error type
when the platform ended the invocation), plus the worker's CPU time and its wait for a core. A call Lambda
would refuse (an event over :data:`PAYLOAD_LIMIT_BYTES`) raises
:class:`PayloadTooLargeError` instead.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

#: Lambda's cap on a synchronous invocation's request and response payloads.
PAYLOAD_LIMIT_BYTES = 6 * 1024 * 1024


class PayloadTooLargeError(ValueError):
    """The event exceeds Lambda's 6 MB invocation payload (Lambda refuses the call)."""


@dataclass(frozen=True)
class Timing:
    """When one invocation's steps happened (``time.perf_counter``), for :mod:`localtwin.replay.waits`.

    ``pid``: the worker's; ``dispatched_at``: the event handed to the runtime (the duration's
    start); ``dispatch_written_at``: the event written to it; ``outcome_received_at``: the
    response's (or error's) request line read; ``finished_at``: its body read (the duration's end).
    """

    pid: int
    dispatched_at: float
    dispatch_written_at: float | None
    outcome_received_at: float | None
    finished_at: float


@dataclass
class Report:
    """The figures of Lambda's ``REPORT`` line for one invocation, plus CPU time.

    ``init_ms`` is set on a cold start only. ``status`` is ``"success"`` unless the
    platform ended the invocation (``"timeout"``, or ``"error"`` for a crash, an
    out-of-memory kill or a failed init), with ``error_type`` naming why.
    """

    request_id: str
    duration_ms: float
    billed_ms: int
    memory_mb: int
    max_memory_mb: int
    init_ms: float | None
    cpu_ms: float
    status: str = "success"
    error_type: str | None = None
    #: Milliseconds the worker waited for a core during the invocation (not on Lambda's line).
    wait_ms: float = 0.0
    #: SnapStart: on a cold start restored from the snapshot (then ``init_ms`` is ``None``), the
    #: restore up to the first invocation, and the after restore hooks' part of it, rounded up.
    restore_ms: float | None = None
    billed_restore_ms: int | None = None
    #: The steps' times (not on Lambda's line); None when the invocation never reached the runtime.
    timing: Timing | None = None

    def line(self) -> str:
        """The ``REPORT RequestId: …`` line, tab-separated as Lambda writes it."""
        parts = [
            f"REPORT RequestId: {self.request_id}",
            f"Duration: {self.duration_ms:.2f} ms",
            f"Billed Duration: {self.billed_ms} ms",
            f"Memory Size: {self.memory_mb} MB",
            f"Max Memory Used: {self.max_memory_mb} MB",
        ]
        if self.init_ms is not None:
            parts.append(f"Init Duration: {self.init_ms:.2f} ms")
        if self.restore_ms is not None:
            parts.append(f"Restore Duration: {self.restore_ms:.2f} ms")
            parts.append(f"Billed Restore Duration: {self.billed_restore_ms or 0} ms")
        if self.status != "success":
            parts.append(f"Status: {self.status}")
            if self.error_type:
                parts.append(f"Error Type: {self.error_type}")
        return "\t".join(parts)


@dataclass
class InvokeResult:
    """One invocation: the response (``None`` on error) or the error document."""

    payload: Any
    error: dict[str, Any] | None
    report: Report
    cold: bool
    logs: list[str] = field(default_factory=list)
    #: The version that ran it, when an alias picked one (``localtwin.alias``); else the mapping's default.
    executed_version: str | None = None
