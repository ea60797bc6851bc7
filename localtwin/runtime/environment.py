"""One execution environment: a worker process, its Runtime API server, its logs, one invocation at a time.

A worker is started the way Lambda's Python runtime starts one: an isolated interpreter
(``python -I -S``) whose ``sys.path`` is exactly

1. the task root (the function zip, extracted),
2. ``opt/python/lib/python3.X/site-packages`` and ``opt/python`` (the layers,
   extracted in order into one tree standing for ``/opt``),
3. the runtime dir (AWS's runtime interface client ``awslambdaric`` and what Lambda's
   managed Python runtime ships: boto3, botocore and their dependencies),
4. the standard library,

running ``awslambdaric`` with handler ``lambda_function.lambda_handler`` against a
Runtime API server of its own (:mod:`localtwin.runtime.api`); with SnapStart, a new
environment is instead a fork of the function's snapshot (:mod:`localtwin.runtime.snapshot`),
whose first ``next`` ends a restore (:attr:`ExecutionEnvironment.restore_ms`) rather than an
init. Nothing else is
importable: a layer that lacks a dependency fails here as on Lambda, with
``Runtime.ImportModuleError``.

:meth:`ExecutionEnvironment.run` hands one event to the runtime and waits for what ends
it: a response or an error posted to the API, the deadline (the timeout from the moment
the runtime receives the event; init bounded by ``max(10 s, timeout)``), peak RSS over
the memory size, or the worker's death. It returns an :class:`Outcome`; the worker's log
lines go to the sink as they come. Turning outcomes into Lambda's results is the pool's
job (:mod:`localtwin.runtime.pool`).
"""

from __future__ import annotations

import contextlib
import os
import selectors
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from localtwin.runtime.api import ApiEvent, Invocation, RuntimeAPIServer
from localtwin.runtime.metering import cpu_seconds, peak_rss_kb, run_queue_seconds
from localtwin.runtime.snapshot import ClonedProcess, Snapshot, python_command

#: Lambda's init phase limit (a longer timeout stretches it, as a suppressed init would).
INIT_TIMEOUT_S = 10.0
#: The worker's variable naming the directory of its send log (the twin's, not the function's).
SEND_LOG_VARIABLE = "LOCALTWIN_SEND_LOG"
#: Variables Lambda sets itself; the caller's values for these are ignored.
RESERVED = {
    "_HANDLER",
    "AWS_EXECUTION_ENV",
    "AWS_LAMBDA_FUNCTION_NAME",
    "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
    "AWS_LAMBDA_FUNCTION_VERSION",
    "AWS_LAMBDA_INITIALIZATION_TYPE",
    "AWS_LAMBDA_LOG_GROUP_NAME",
    "AWS_LAMBDA_LOG_STREAM_NAME",
    "AWS_LAMBDA_RUNTIME_API",
    "LAMBDA_TASK_ROOT",
    "LAMBDA_RUNTIME_DIR",
}

# Runs in the worker: Lambda's sys.path order, no bytecode written (/var/task and /opt
# are read-only on Lambda), then the runtime client's main loop. With SEND_LOG_VARIABLE set
# (taken out of the environment before the function sees it), an audit hook appends the time
# and local port of every http.client send (the function's AWS calls) to <dir>/<pid>.
_BOOTSTRAP = r"""
import os, sys
sys.dont_write_bytecode = True
_dir = os.environ.pop("LOCALTWIN_SEND_LOG", None)
if _dir:
    import time
    def _hook(event, args, _f=open("%s/%d" % (_dir, os.getpid()), "a", buffering=1), _now=time.perf_counter):
        if event == "http.client.send":
            try:
                _f.write("%.6f %d\n" % (_now(), args[0].sock.getsockname()[1]))
            except Exception:
                pass
    sys.addaudithook(_hook)
opt = sys.argv[1]
site = "%s/python/lib/python%d.%d/site-packages" % (opt, sys.version_info[0], sys.version_info[1])
sys.path[:0] = [os.environ["LAMBDA_TASK_ROOT"], site, opt + "/python", os.environ["LAMBDA_RUNTIME_DIR"]]
from awslambdaric.__main__ import main
main([sys.argv[0], os.environ["_HANDLER"]])
"""


def _trace_id() -> str:
    """An X-Ray trace header like Lambda's (not sampled: nothing records it)."""
    return f"Root=1-{int(time.time()):08x}-{uuid.uuid4().hex[:24]};Parent={uuid.uuid4().hex[:16]};Sampled=0"


@dataclass
class FunctionSpec:
    """What every environment of one function shares."""

    task: Path
    opt: Path
    runtime_dir: Path
    environment: dict[str, str]
    memory_mb: int
    timeout_s: float
    function_name: str
    function_arn: str
    handler: str
    #: Where workers log the time and port of each AWS call they send (:mod:`localtwin.replay.waits`); off if None.
    send_log: Path | None = None


def worker_environment(
    spec: FunctionSpec, api_address: str, log_stream: str, initialization_type: str = "on-demand"
) -> dict[str, str]:
    """The variables a worker runs with: the function's own, then those Lambda sets itself."""
    return {
        "PATH": f"{Path(sys.executable).parent}:/usr/local/bin:/usr/bin/:/bin:{spec.opt}/bin",
        "LD_LIBRARY_PATH": ":".join(
            p
            for p in (f"{spec.task}/lib", f"{spec.opt}/lib", os.environ.get("LD_LIBRARY_PATH", ""))
            if p  # keep the host's entries: this interpreter may need them
        ),
        "LANG": "en_US.UTF-8",
        "TZ": ":UTC",
        "PYTHONPATH": str(spec.runtime_dir),
        **spec.environment,
        "_HANDLER": spec.handler,
        "AWS_EXECUTION_ENV": "AWS_Lambda_python{}.{}".format(*sys.version_info[:2]),
        "AWS_LAMBDA_FUNCTION_NAME": spec.function_name,
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(spec.memory_mb),
        "AWS_LAMBDA_INITIALIZATION_TYPE": initialization_type,
        "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{spec.function_name}",
        "AWS_LAMBDA_LOG_STREAM_NAME": log_stream,
        "AWS_LAMBDA_RUNTIME_API": api_address,
        "LAMBDA_TASK_ROOT": str(spec.task),
        "LAMBDA_RUNTIME_DIR": str(spec.runtime_dir),
        **({SEND_LOG_VARIABLE: str(spec.send_log)} if spec.send_log is not None else {}),
    }


@dataclass
class Outcome:
    """How one invocation ended, as the environment saw it (times are ``time.perf_counter``)."""

    kind: str  # response | error | init_error | timeout | oom | exit
    body: bytes = b""
    error_type: str | None = None
    dispatched_at: float | None = None
    finished_at: float = 0.0
    cpu_s: float = 0.0
    #: Seconds the worker waited for a core (runnable, not running) during the invocation.
    wait_s: float = 0.0
    exit_detail: str = ""
    #: The event written to the runtime, and the outcome's request line read (``time.perf_counter``).
    dispatch_written_at: float | None = None
    outcome_received_at: float | None = None


class ExecutionEnvironment:
    """One execution environment: a worker process, its Runtime API server, its logs."""

    def __init__(self, spec: FunctionSpec, sink: Callable[[str], None]) -> None:
        self.spec = spec
        self.sink = sink
        self.cold = True
        self.init_ms: float | None = None
        #: Restored from a snapshot (SnapStart): its first ``next`` ends a restore, not an init.
        self.restored = False
        self.restore_ms: float | None = None
        #: Milliseconds the after restore hooks ran (from ``restore/next`` to the first ``next``).
        self.restore_hooks_ms: float | None = None
        self._restore_hooks_from: float | None = None
        self.last_used = time.monotonic()
        self._events: list[ApiEvent] = []
        self._events_lock = threading.Lock()
        self._cpu_at_dispatch = 0.0
        self._wait_at_dispatch = 0.0
        #: The worker's CPU seconds when it was killed (its ``/proc`` entry is gone after).
        self.cpu_at_exit = 0.0
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        self.api = RuntimeAPIServer(self._on_api_event)
        self._partial: dict[int, bytes] = {}
        self._selector = selectors.DefaultSelector()
        self.proc: subprocess.Popen[bytes] | ClonedProcess | None = None
        self.spawned_at = 0.0
        self.peak_kb = 0
        #: An invocation has been handed to this environment and has not ended.
        self.invoking = False
        self.log_stream = time.strftime("%Y/%m/%d", time.gmtime()) + f"/[$LATEST]{uuid.uuid4().hex}"

    @property
    def initialised(self) -> bool:
        """The runtime asked for its first invocation: init (or restore) is over."""
        return self.init_ms is not None or self.restore_ms is not None

    # --- process

    def start(self, snapshot: Snapshot | None = None) -> None:
        """Spawn the worker (the cold start begins here), or restore it from ``snapshot`` (a fork of its template)."""
        spec = self.spec
        self.spawned_at = time.perf_counter()
        if snapshot is not None:
            own = {"AWS_LAMBDA_RUNTIME_API": self.api.address, "AWS_LAMBDA_LOG_STREAM_NAME": self.log_stream}
            self.proc = snapshot.clone(own)
            self.restored = True
        else:
            self.proc = subprocess.Popen(
                [*python_command(), "-c", _BOOTSTRAP, str(spec.opt)],
                cwd=spec.task,
                env=worker_environment(spec, self.api.address, self.log_stream),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                start_new_session=True,  # its own process group: a kill takes its children too
            )
        for stream in (self.proc.stdout, self.proc.stderr):
            assert stream is not None
            os.set_blocking(stream.fileno(), False)
            self._partial[stream.fileno()] = b""
            self._selector.register(stream.fileno(), selectors.EVENT_READ)
        self._selector.register(self._wake_r, selectors.EVENT_READ)

    def cpu_s(self) -> float:
        """The worker's CPU seconds so far (all of its life; what it had when it was killed)."""
        if self.proc is not None and self.proc.poll() is None:
            return max(cpu_seconds(self.proc.pid), self.cpu_at_exit)
        return self.cpu_at_exit

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.cpu_at_exit = max(self.cpu_at_exit, cpu_seconds(self.proc.pid))
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    def close(self) -> None:
        """Kill the worker and release the server, pipes and selector."""
        self.kill()
        self.api.close()
        if self.proc is not None:
            for stream in (self.proc.stdout, self.proc.stderr):
                if stream is not None:
                    stream.close()
        self._selector.close()
        for fd in (self._wake_r, self._wake_w):
            with contextlib.suppress(OSError):
                os.close(fd)

    # --- events and logs

    def _on_api_event(self, event: ApiEvent) -> None:
        if event.kind == "dispatch" and self.proc is not None:
            self._cpu_at_dispatch = cpu_seconds(self.proc.pid)
            self._wait_at_dispatch = run_queue_seconds(self.proc.pid)
        with self._events_lock:
            self._events.append(event)
        with contextlib.suppress(BlockingIOError, OSError):
            os.write(self._wake_w, b"!")

    def _take_events(self) -> list[ApiEvent]:
        with contextlib.suppress(BlockingIOError, OSError):
            while os.read(self._wake_r, 4096):
                pass
        with self._events_lock:
            events, self._events = self._events, []
        return events

    def _read_logs(self, fd: int, logs: list[str]) -> bool:
        """Read what ``fd`` holds now; emit complete lines. False at end of file."""
        while True:
            try:
                chunk = os.read(fd, 65536)
            except BlockingIOError:
                return True
            if not chunk:
                if self._partial.get(fd):
                    self._emit(self._partial[fd], logs)
                self._partial[fd] = b""
                with contextlib.suppress(KeyError, ValueError):
                    self._selector.unregister(fd)
                return False
            *lines, self._partial[fd] = (self._partial[fd] + chunk).split(b"\n")
            for line in lines:
                self._emit(line, logs)

    def _drain_logs(self, logs: list[str]) -> None:
        for key in list(self._selector.get_map().values()):
            if key.fd != self._wake_r:
                self._read_logs(key.fd, logs)

    def _emit(self, raw: bytes, logs: list[str]) -> None:
        # The runtime client writes a multi-line error as one event joined by "\r".
        line = raw.decode("utf-8", errors="replace").rstrip("\r").replace("\r", "\n")
        logs.append(line)
        self.sink(line)

    # --- one invocation

    def _sample(self) -> tuple[int, float]:
        """(peak RSS kB so far, CPU seconds so far); the peak is remembered past death."""
        assert self.proc is not None
        self.peak_kb = max(self.peak_kb, peak_rss_kb(self.proc.pid))
        return self.peak_kb, cpu_seconds(self.proc.pid)

    def _finish(self, kind: str, at: float, dispatched_at: float | None, **kw: Any) -> Outcome:
        cpu = self._sample()[1] - self._cpu_at_dispatch if dispatched_at is not None else 0.0
        assert self.proc is not None
        wait = run_queue_seconds(self.proc.pid) - self._wait_at_dispatch if dispatched_at is not None else 0.0
        return Outcome(
            kind, dispatched_at=dispatched_at, finished_at=at, cpu_s=max(cpu, 0.0), wait_s=max(wait, 0.0), **kw
        )

    def run(self, request_id: str, body: bytes, logs: list[str]) -> Outcome:
        """Hand the event to the runtime and wait for its outcome, its deadline or its death."""
        assert self.proc is not None
        self.invoking = True
        try:
            return self._run(request_id, body, logs)
        finally:
            self.invoking = False

    def _run(self, request_id: str, body: bytes, logs: list[str]) -> Outcome:
        assert self.proc is not None
        spec = self.spec
        self.api.submit(Invocation(request_id, body, spec.timeout_s, spec.function_arn, _trace_id()))
        init_deadline = self.spawned_at + max(INIT_TIMEOUT_S, spec.timeout_s)
        deadline: float | None = None
        dispatched_at: float | None = None
        while True:
            bound = deadline if deadline is not None else (init_deadline if not self.initialised else None)
            wait = 0.1 if bound is None else max(0.0, min(0.1, bound - time.perf_counter()))
            self._selector.select(wait)
            # Events first, then the logs: what the worker wrote before an API call is
            # in the pipe by the time that call's event is seen, so it is read first.
            events = self._take_events()
            self._drain_logs(logs)
            for event in events:
                if event.kind == "restore":
                    self._restore_hooks_from = event.at
                elif event.kind == "next" and not self.initialised:
                    if self.restored:
                        self.restore_ms = (event.at - self.spawned_at) * 1000
                        hooks_from = self._restore_hooks_from if self._restore_hooks_from is not None else event.at
                        self.restore_hooks_ms = (event.at - hooks_from) * 1000
                    else:
                        self.init_ms = (event.at - self.spawned_at) * 1000
                elif event.kind == "dispatch":
                    dispatched_at, deadline = event.at, event.at + spec.timeout_s
                    self.sink(f"START RequestId: {request_id} Version: $LATEST")
                elif event.kind in ("response", "error", "init_error", "restore_error"):
                    kind = "init_error" if event.kind == "restore_error" else event.kind  # an after restore hook raised
                    return self._finish(
                        kind,
                        event.at,
                        dispatched_at,
                        body=event.body,
                        error_type=event.error_type,
                        dispatch_written_at=self.api.dispatch_written_at if dispatched_at is not None else None,
                        outcome_received_at=event.received_at,
                    )
            if len(self._selector.get_map()) == 1:  # stdout and stderr closed: the worker is exiting
                with contextlib.suppress(subprocess.TimeoutExpired):
                    self.proc.wait(timeout=wait)
            now = time.perf_counter()
            code = self.proc.poll()
            if code is not None:
                self._drain_logs(logs)
                detail = f"signal: {signal.Signals(-code).name.lower()[3:]}" if code < 0 else f"exit status {code}"
                return Outcome("exit", dispatched_at=dispatched_at, finished_at=now, exit_detail=detail)
            if (deadline is not None and now >= deadline) or (
                deadline is None and not self.initialised and now >= init_deadline
            ):
                outcome = self._finish("timeout", now, dispatched_at)
                self.kill()
                self._drain_logs(logs)
                return outcome
            if self._sample()[0] > spec.memory_mb * 1024:
                outcome = self._finish("oom", now, dispatched_at)
                self.kill()
                self._drain_logs(logs)
                return outcome
