"""The pool of execution environments for one function: :class:`LocalLambda`.

Environments are started on demand (a cold start, preceded by an ``INIT_START`` line),
reused while warm, one invocation at a time, at most ``max_environments`` at once; idle
ones expire after ``idle_ttl_s`` (if given). Each outcome an environment reports becomes
what Lambda returns: the response, or Lambda's error document (``Sandbox.Timedout``,
``Runtime.OutOfMemory``, ``Runtime.ExitError``, ``Function.ResponseSizeTooLarge``, the
runtime client's own error types), with a :class:`~localtwin.runtime.report.Report`
written as ``END`` and ``REPORT`` lines. An environment whose invocation the platform
ended (timeout, crash, out-of-memory kill, failed init) is discarded. The rules are
listed in :mod:`localtwin.runtime`.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import math
import random
import shutil
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

from localtwin.runtime.environment import (
    INIT_TIMEOUT_S,
    RESERVED,
    ExecutionEnvironment,
    FunctionSpec,
    Outcome,
    worker_environment,
)
from localtwin.runtime.report import PAYLOAD_LIMIT_BYTES, InvokeResult, PayloadTooLargeError, Report, Timing
from localtwin.runtime.snapshot import Snapshot, python_command
from localtwin.runtime.staging import ensure_runtime_dir, extract_once
from pricing import billing

HANDLER = "lambda_function.lambda_handler"


class LocalLambda:
    """A pool of local execution environments for one function.

    Parameters
    ----------
    function_zip : Path
        The function deployment package (handler ``lambda_function.lambda_handler``).
    layer_zips : list of Path
        Layers, in Lambda's order (a later one overwrites an earlier one's files).
    environment : dict, optional
        The function's own environment variables (and, standing in for the execution
        role, AWS credentials; ``AWS_REGION`` picks the region, default us-east-1).
        Values under ``/opt`` or ``/var/task`` are mapped into the extracted trees;
        ``MODEL_DIR`` defaults to the extracted ``opt/model``, ``CANDIDATE_MODEL_DIR`` to ``opt/candidate``.
    memory_mb : int
        Memory size: the ``Max Memory Used`` limit and ``AWS_LAMBDA_FUNCTION_MEMORY_SIZE``.
    timeout_s : float
        Invocation timeout.
    max_environments : int
        Most environments alive at once (= concurrent invocations).
    function_name : str
        ``AWS_LAMBDA_FUNCTION_NAME`` and the log group name.
    log : callable, text stream or path, optional
        Where platform lines (``START``/``END``/``REPORT``) and the function's log
        lines go, one line per call/write; default stderr.
    workdir : Path, optional
        Where the zips are extracted (``task/``, ``opt/``); kept, and not extracted
        again while it holds the same zips. One LocalLambda per workdir at a time.
        Default: a temporary directory removed by :meth:`close`.
    idle_ttl_s : float, optional
        Idle environments older than this are shut down (never, by default).
    handler : str
        The handler, ``module.function``.
    snap_start : bool
        SnapStart (``ApplyOn: PublishedVersions``): the function is initialised once, at
        construction (as at publish time), its before snapshot hooks run, and every new
        environment is restored from that snapshot (:mod:`localtwin.runtime.snapshot`): a
        ``RESTORE_START`` line, and ``Restore Duration`` instead of ``Init Duration``. If that
        init fails, environments start the usual way (and report the init error).
    send_log : Path, optional
        A directory where each worker logs the time and local port of every AWS call it sends
        (``<pid>`` files; :mod:`localtwin.replay.waits` places the invocations' waits with them).
    """

    def __init__(
        self,
        function_zip: Path,
        layer_zips: list[Path],
        *,
        environment: dict[str, str] | None = None,
        memory_mb: int = 1024,
        timeout_s: float = 60,
        max_environments: int = 4,
        function_name: str = "stream-inference",
        log: Callable[[str], None] | TextIO | str | Path | None = None,
        workdir: Path | None = None,
        idle_ttl_s: float | None = None,
        handler: str = HANDLER,
        snap_start: bool = False,
        send_log: Path | None = None,
    ) -> None:
        if not 128 <= memory_mb <= 10240:
            raise ValueError(f"memory_mb={memory_mb}: Lambda allows 128-10240 MB")
        if timeout_s <= 0 or max_environments < 1:
            raise ValueError("timeout_s must be > 0 and max_environments >= 1")
        self._own_workdir = workdir is None
        self.workdir = Path(tempfile.mkdtemp(prefix="local-lambda-")) if workdir is None else Path(workdir)
        try:
            self.task_root, self.opt = extract_once(Path(function_zip), [Path(p) for p in layer_zips], self.workdir)
        except BaseException:
            if self._own_workdir:
                shutil.rmtree(self.workdir, ignore_errors=True)
            raise
        self._log_file: TextIO | None = None
        self._sink_lock = threading.Lock()
        self._write = self._make_sink(log)
        env = {k: self._map_paths(str(v)) for k, v in (environment or {}).items() if k not in RESERVED}
        region = env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or "us-east-1"
        env.update({"AWS_REGION": region, "AWS_DEFAULT_REGION": region})
        env.setdefault("MODEL_DIR", str(self.opt / "model"))
        env.setdefault("CANDIDATE_MODEL_DIR", str(self.opt / "candidate"))  # a candidate layer in shadow, if any
        self._spec = FunctionSpec(
            task=self.task_root,
            opt=self.opt,
            runtime_dir=ensure_runtime_dir(),
            environment=env,
            memory_mb=memory_mb,
            timeout_s=timeout_s,
            function_name=function_name,
            function_arn=f"arn:aws:lambda:{region}:123456789012:function:{function_name}",
            handler=handler,
            send_log=Path(send_log) if send_log is not None else None,
        )
        self.max_environments = max_environments
        self.idle_ttl_s = idle_ttl_s
        self._cond = threading.Condition()
        self._idle: list[ExecutionEnvironment] = []
        self._all: set[ExecutionEnvironment] = set()
        self._every: list[ExecutionEnvironment] = []  # every environment ever started, for its CPU time
        self._closed = False
        self._stats = dict.fromkeys(
            (
                "invocations",
                "cold_starts",
                "errors",
                "function_errors",
                "timeouts",
                "out_of_memory",
                "crashes",
                "init_errors",
                "environments_started",
                "restores",
                "environments_discarded",
                "environments_expired",
                "peak_concurrency",
            ),
            0,
        )
        self._busy = 0
        self.snapshot: Snapshot | None = None
        if snap_start:
            self._write(
                "INIT_START Runtime Version: python:{}.{}.local (SnapStart: the snapshot)".format(*sys.version_info[:2])
            )
            stream = time.strftime("%Y/%m/%d", time.gmtime()) + f"/[$LATEST]{uuid.uuid4().hex}"
            template_env = worker_environment(self._spec, "127.0.0.1:9", stream, "snap-start")
            self.snapshot = Snapshot(python_command(), str(self.opt), template_env, str(self.task_root), self._write)
        self._snapshot_checked = False
        atexit.register(self.close)

    # --- helpers

    def _map_paths(self, value: str) -> str:
        for prefix, local in (("/opt", self.opt), ("/var/task", self.task_root)):
            if value == prefix or value.startswith(prefix + "/"):
                return str(local) + value[len(prefix) :]
        return value

    def _make_sink(self, log: Callable[[str], None] | TextIO | str | Path | None) -> Callable[[str], None]:
        if callable(log):
            target: Callable[[str], None] = log
        else:
            if isinstance(log, str | Path):
                self._log_file = open(log, "a", encoding="utf-8")  # noqa: SIM115 - closed in close()
                stream: TextIO = self._log_file
            else:
                stream = log or sys.stderr

            def target(line: str) -> None:
                with contextlib.suppress(ValueError):  # a line from a worker after close()
                    stream.write(line + "\n")
                    stream.flush()

        def sink(line: str) -> None:
            with self._sink_lock:
                target(line)

        return sink

    @property
    def stats(self) -> dict[str, int]:
        """Counters: invocations, cold_starts, errors (by kind), environments started,
        discarded and expired, the current ``environments`` and ``peak_concurrency``."""
        with self._cond:
            return {**self._stats, "environments": len(self._all)}

    def workers_cpu_s(self) -> float:
        """CPU seconds of every worker this pool started, inits and idle time included (the
        snapshot's template too, with SnapStart).

        A worker's CPU time is read from ``/proc`` while it lives and just before it is
        killed; one that exits by itself keeps what was last read of it.
        """
        with self._cond:
            environments = list(self._every)
        return sum(env.cpu_s() for env in environments) + (self.snapshot.cpu_s() if self.snapshot else 0.0)

    # --- pool

    def _acquire(self) -> ExecutionEnvironment:
        expired: list[ExecutionEnvironment] = []
        try:
            with self._cond:
                while True:
                    if self._closed:
                        raise RuntimeError("LocalLambda is closed")
                    if self.idle_ttl_s is not None:
                        cutoff = time.monotonic() - self.idle_ttl_s
                        for env in [e for e in self._idle if e.last_used < cutoff]:
                            self._idle.remove(env)
                            self._all.discard(env)
                            self._stats["environments_expired"] += 1
                            expired.append(env)
                    if self._idle:
                        env = self._idle.pop()  # the most recently used: warmest
                        break
                    if len(self._all) < self.max_environments:
                        env = ExecutionEnvironment(self._spec, self._write)
                        self._all.add(env)
                        self._every.append(env)
                        self._stats["environments_started"] += 1
                        break
                    self._cond.wait()
                self._busy += 1
                self._stats["peak_concurrency"] = max(self._stats["peak_concurrency"], self._busy)
        finally:
            for old in expired:
                old.close()
        if env.proc is None:
            try:
                env.start(self._restorable_snapshot())
            except BaseException:
                self._release(env, keep=False)
                raise
        return env

    def _restorable_snapshot(self) -> Snapshot | None:
        """The snapshot once it is ready (waiting for its init the first time), ``None`` without one."""
        if self.snapshot is None:
            return None
        ready = self.snapshot.wait_ready(max(INIT_TIMEOUT_S, self._spec.timeout_s))
        with self._cond:
            if not self._snapshot_checked:
                self._snapshot_checked = True
                if ready:
                    self._write(f"INIT_REPORT Init Duration: {self.snapshot.init_ms or 0:.2f} ms\tPhase: snapshot")
                else:
                    self._write(f"INIT_REPORT Phase: snapshot\tStatus: error ({self.snapshot.error or 'timeout'})")
        return self.snapshot if ready else None

    @property
    def snapshot_init_ms(self) -> float | None:
        """SnapStart: how long the snapshot's init (and before snapshot hooks) took; ``None`` without one."""
        return self.snapshot.init_ms if self.snapshot is not None else None

    def _release(self, env: ExecutionEnvironment, keep: bool) -> None:
        with self._cond:
            self._busy -= 1
            keep = keep and not self._closed and env in self._all
            if keep:
                env.last_used = time.monotonic()
                self._idle.append(env)
            else:
                self._all.discard(env)
                self._stats["environments_discarded"] += 1
            self._cond.notify()
        if not keep:
            env.close()

    # --- invoke

    def invoke(self, event: dict[str, Any]) -> InvokeResult:
        """Run one invocation of the function on ``event``.

        Thread-safe; blocks while all ``max_environments`` environments are busy.
        Function errors, timeouts, crashes, out-of-memory kills and init errors come
        back in :attr:`InvokeResult.error`; only a call Lambda would refuse raises.

        Raises
        ------
        PayloadTooLargeError
            The event's JSON exceeds 6 MB.
        RuntimeError
            The pool was closed.
        """
        body = json.dumps(event).encode()
        if len(body) > PAYLOAD_LIMIT_BYTES:
            raise PayloadTooLargeError(
                f"{len(body):,} bytes > Lambda's {PAYLOAD_LIMIT_BYTES:,}-byte invocation payload"
            )
        request_id = str(uuid.uuid4())
        env = self._acquire()
        cold, env.cold = env.cold, False
        if cold:
            start = "RESTORE_START" if env.restored else "INIT_START"
            self._write("{} Runtime Version: python:{}.{}.local".format(start, *sys.version_info[:2]))
        logs: list[str] = []
        started = time.perf_counter()
        try:
            outcome = env.run(request_id, body, logs)
        except BaseException:
            self._release(env, keep=False)
            raise
        if outcome.kind == "response" and env.peak_kb > self._spec.memory_mb * 1024:
            outcome.kind = "oom"  # the peak came after the last sample: Lambda would have killed it
        payload, error = self._result(outcome, request_id, logs)
        keep = outcome.kind in ("response", "error")
        init_ms = env.init_ms if cold else None
        restore_ms = env.restore_ms if cold else None
        begin = outcome.dispatched_at if outcome.dispatched_at is not None else max(started, env.spawned_at)
        duration_ms = max(0.0, (outcome.finished_at - begin) * 1000)
        if cold and init_ms is None and restore_ms is None:  # ended before init completed: all of it was init
            before_ms, duration_ms = (outcome.finished_at - env.spawned_at) * 1000, 0.0
            init_ms, restore_ms = (None, before_ms) if env.restored else (before_ms, None)
        hooks_ms = env.restore_hooks_ms if restore_ms is not None else None
        status = "success" if keep else ("timeout" if outcome.kind == "timeout" else "error")
        report = Report(
            request_id=request_id,
            duration_ms=duration_ms,
            billed_ms=billing.billed_ms(duration_ms + (init_ms or 0.0)),
            memory_mb=self._spec.memory_mb,
            max_memory_mb=math.ceil(env.peak_kb / 1024),
            init_ms=init_ms,
            cpu_ms=outcome.cpu_s * 1000,
            status=status,
            error_type=error["errorType"] if error and not keep else None,
            wait_ms=outcome.wait_s * 1000,
            restore_ms=restore_ms,
            billed_restore_ms=math.ceil(hooks_ms or 0.0) if restore_ms is not None else None,
            timing=Timing(
                env.proc.pid if env.proc is not None else 0,
                begin,
                outcome.dispatch_written_at,
                outcome.outcome_received_at,
                outcome.finished_at,
            )
            if outcome.dispatched_at is not None
            else None,
        )
        self._write(f"END RequestId: {request_id}")
        self._write(report.line())
        self._count(outcome.kind, cold, error, env.restored)
        self._release(env, keep)
        return InvokeResult(payload=payload, error=error, report=report, cold=cold, logs=logs)

    def kill_invoking_environment(self, choose: Callable[[list[Any]], Any] = random.choice) -> bool:
        """SIGKILL the worker of one environment that is running an invocation (fault injection).

        What happens when a host dies under a function: the invocation in flight ends
        with ``Runtime.ExitError`` and the environment is discarded, exactly as when the
        worker crashes by itself. ``choose`` picks among the candidates (seed it for a
        reproducible run). Returns whether a worker was killed (False: none was busy).
        """
        with self._cond:
            candidates = [env for env in self._all if env.invoking and env.proc is not None]
        candidates = [env for env in candidates if env.proc is not None and env.proc.poll() is None]
        if not candidates:
            return False
        choose(sorted(candidates, key=lambda env: env.log_stream)).kill()
        return True

    def _result(self, outcome: Outcome, request_id: str, logs: list[str]) -> tuple[Any, dict[str, Any] | None]:
        """(payload, error document) of an outcome, with Lambda's error types and messages."""
        if outcome.kind == "response":
            if len(outcome.body) > PAYLOAD_LIMIT_BYTES:
                message = (
                    f"Response payload size ({len(outcome.body)} bytes) exceeded maximum allowed payload size "
                    f"({PAYLOAD_LIMIT_BYTES} bytes)."
                )
                return None, {"errorType": "Function.ResponseSizeTooLarge", "errorMessage": message}
            return (json.loads(outcome.body) if outcome.body else None), None
        if outcome.kind in ("error", "init_error"):
            try:
                doc = json.loads(outcome.body)
            except ValueError:
                doc = None
            if not isinstance(doc, dict):
                doc = {"errorMessage": outcome.body.decode("utf-8", "replace")}
            doc.setdefault("errorType", outcome.error_type or "Runtime.Unknown")
            doc.setdefault("errorMessage", "")
            return None, doc
        if outcome.kind == "timeout":
            after = (
                self._spec.timeout_s if outcome.dispatched_at is not None else max(INIT_TIMEOUT_S, self._spec.timeout_s)
            )
            message = f"Task timed out after {after:.2f} seconds"
            line = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime()) + f"Z {request_id} {message}"
            logs.append(line)
            self._write(line)
            return None, {"errorType": "Sandbox.Timedout", "errorMessage": f"RequestId: {request_id} Error: {message}"}
        if outcome.kind == "oom":
            message = f"RequestId: {request_id} Error: Runtime exited with error: signal: killed"
            return None, {"errorType": "Runtime.OutOfMemory", "errorMessage": message}
        message = f"RequestId: {request_id} Error: Runtime exited with error: {outcome.exit_detail}"
        return None, {"errorType": "Runtime.ExitError", "errorMessage": message}

    def _count(self, kind: str, cold: bool, error: dict[str, Any] | None, restored: bool = False) -> None:
        with self._cond:
            self._stats["invocations"] += 1
            self._stats["cold_starts"] += int(cold)
            self._stats["restores"] += int(cold and restored)
            self._stats["errors"] += int(error is not None)
            key = {
                "error": "function_errors",
                "timeout": "timeouts",
                "oom": "out_of_memory",
                "exit": "crashes",
                "init_error": "init_errors",
            }.get(kind)
            if key:
                self._stats[key] += 1

    def close(self) -> None:
        """Stop every worker and Runtime API server; remove a temporary workdir."""
        with self._cond:
            if self._closed:
                return
            self._closed = True
            idle, busy = list(self._idle), [e for e in self._all if e not in self._idle]
            self._all.difference_update(idle)
            self._idle.clear()
            self._cond.notify_all()
        for env in idle:
            env.close()
        for env in busy:  # their invoking threads see the worker die, then release them
            env.kill()
        if self.snapshot is not None:
            self.snapshot.close()
        if self._log_file is not None:
            self._log_file.close()
        if self._own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)
        atexit.unregister(self.close)

    def __enter__(self) -> LocalLambda:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
