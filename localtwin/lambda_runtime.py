"""A local Lambda runtime: execution environments running AWS's runtime client on our zips.

:class:`LocalLambda` is a pool of execution environments for one function. Each
environment is a worker process started the way Lambda's Python runtime starts one:
an isolated interpreter (``python -I -S``) whose ``sys.path`` is exactly

1. the task root (the function zip, extracted),
2. ``opt/python/lib/python3.X/site-packages`` and ``opt/python`` (the layers,
   extracted in order into one tree standing for ``/opt``),
3. the runtime dir (AWS's runtime interface client ``awslambdaric`` and what Lambda's
   managed Python runtime ships: boto3, botocore and their dependencies),
4. the standard library,

running ``awslambdaric`` with handler ``lambda_function.lambda_handler`` against a
Runtime API server of its own (:mod:`localtwin.runtime_api`). Nothing else is
importable: a layer that lacks a dependency fails here as on Lambda, with
``Runtime.ImportModuleError``.

Lambda's rules, as emulated:

* **Cold and warm.** An environment is started on demand (a cold start: its init is
  timed as *Init Duration*), reused while warm, one invocation at a time, at most
  ``max_environments`` at once; idle ones expire after ``idle_ttl_s`` (if given).
* **Timeout.** The timeout runs from the moment the runtime receives the event. A
  worker past it is killed (SIGKILL); the invocation fails with ``Sandbox.Timedout``
  and the environment is discarded. Init is bounded by ``max(10 s, timeout)``.
* **Memory.** *Max Memory Used* is the worker's peak RSS (``VmHWM``, a lifetime peak
  per environment, as Lambda reports it), sampled while the invocation runs and at its
  end. Above ``memory_mb`` the worker is killed and the invocation fails with
  ``Runtime.OutOfMemory``. No address-space rlimit: numpy/OpenBLAS reserve far more
  virtual memory than they use.
* **Crashes.** A worker that dies mid-invocation fails it with ``Runtime.ExitError``;
  a handler that cannot be loaded fails it with the runtime client's error type
  (``Runtime.ImportModuleError``, ``Runtime.HandlerNotFound``…). Either way the
  environment is discarded and the next invocation starts a cold one.
* **Logs.** The worker's stdout and stderr are captured per environment and forwarded
  line by line to the log sink, framed by ``START`` / ``END`` / ``REPORT`` lines
  (``INIT_START`` before a cold start).
* **Billing.** *Billed Duration* is the duration rounded up to the next 1 ms
  (:func:`pricing.billing.billed_ms`); on a cold start it includes *Init Duration*
  (on-demand functions are billed for init since August 2025).
* **CPU.** Each :class:`Report` also carries the worker's CPU time (user + system,
  all threads) during the invocation, from ``/proc/<pid>/stat``; its resolution is
  the kernel's clock tick (usually 10 ms), so average it over many invocations.

The runtime dir is built once under ``build/runtime/python`` by copying the pinned
distributions (with their ``.dist-info``) from this virtual environment, which
``requirements.txt`` pins: offline and fast. Where they are missing it falls back to
``pip install --target`` of the same pins.
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import importlib.metadata
import json
import math
import os
import random
import selectors
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from layers.zipping import extract_tree
from localtwin.runtime_api import ApiEvent, Invocation, RuntimeAPIServer
from pricing import billing

ROOT = Path(__file__).resolve().parents[1]
RUNTIME_ROOT = ROOT / "build" / "runtime"
HANDLER = "lambda_function.lambda_handler"
#: Lambda's cap on a synchronous invocation's request and response payloads.
PAYLOAD_LIMIT_BYTES = 6 * 1024 * 1024
#: Lambda's init phase limit (a longer timeout stretches it, as a suppressed init would).
INIT_TIMEOUT_S = 10.0
#: What Lambda's Python runtime provides next to the runtime client (its /var/runtime).
RUNTIME_DISTRIBUTIONS = (
    "awslambdaric",
    "simplejson",
    "snapshot-restore-py",
    "boto3",
    "botocore",
    "s3transfer",
    "jmespath",
    "python-dateutil",
    "six",
    "urllib3",
)
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
_CLOCK_TICK = os.sysconf("SC_CLK_TCK")

# Runs in the worker: Lambda's sys.path order, no bytecode written (/var/task and /opt
# are read-only on Lambda), then the runtime client's main loop.
_BOOTSTRAP = r"""
import os, sys
sys.dont_write_bytecode = True
opt = sys.argv[1]
site = "%s/python/lib/python%d.%d/site-packages" % (opt, sys.version_info[0], sys.version_info[1])
sys.path[:0] = [os.environ["LAMBDA_TASK_ROOT"], site, opt + "/python", os.environ["LAMBDA_RUNTIME_DIR"]]
from awslambdaric.__main__ import main
main([sys.argv[0], os.environ["_HANDLER"]])
"""


class PayloadTooLargeError(ValueError):
    """The event exceeds Lambda's 6 MB invocation payload (Lambda refuses the call)."""


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
        if self.status != "success":
            parts.append(f"Status: {self.status}")
            if self.error_type:
                parts.append(f"Error Type: {self.error_type}")
        return "\t".join(parts)


@dataclass
class InvokeResult:
    """One invocation: the response (``None`` on error) or the error document."""

    payload: Any
    error: dict | None
    report: Report
    cold: bool
    logs: list[str] = field(default_factory=list)


# --------------------------------------------------------------------------- set-up


def _extract_once(function_zip: Path, layer_zips: list[Path], root: Path) -> tuple[Path, Path]:
    """:func:`extract_tree`, skipped when ``root`` already holds these very zips (same
    paths, sizes and modification times), e.g. ``build/invoke`` between two ``make invoke``."""
    stamp = root / "extracted.json"
    zips = [function_zip, *layer_zips]
    key = [[str(p.resolve()), p.stat().st_size, p.stat().st_mtime_ns] for p in zips if p.is_file()]
    if stamp.is_file() and len(key) == len(zips) and json.loads(stamp.read_text()) == key:
        return root / "task", root / "opt"
    stamp.unlink(missing_ok=True)
    task, opt = extract_tree(function_zip, layer_zips, root)
    stamp.write_text(json.dumps(key))
    return task, opt


def _pinned(names: tuple[str, ...], requirements: Path = ROOT / "requirements.txt") -> dict[str, str]:
    """``name -> version`` pinned in requirements.txt for the names that are pinned there."""
    pins = {}
    for line in requirements.read_text().splitlines():
        spec = line.split("#")[0].strip()
        if "==" in spec:
            name, version = spec.split("==", 1)
            pins[name.split("[")[0].strip().lower()] = version.strip()
    return {n: pins[n] for n in names if n in pins}


def _copy_distribution(name: str, target: Path) -> None:
    """Copy an installed distribution's files (as its RECORD lists them) into ``target``."""
    dist = importlib.metadata.distribution(name)
    for entry in dist.files or []:
        if entry.parts[0] == "..":  # console scripts installed outside site-packages
            continue
        source = Path(str(dist.locate_file(entry)))
        if source.is_file():
            destination = target / entry
            destination.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, destination)


def ensure_runtime_dir(root: Path = RUNTIME_ROOT) -> Path:
    """The runtime dir (``root/python``): awslambdaric + what Lambda's Python runtime ships.

    Built once and cached; rebuilt when the pinned versions change. The distributions
    are copied from this interpreter's environment when it has them at the pinned
    versions (offline, a second or so), otherwise installed with ``pip --target``.
    """
    pins = _pinned(("awslambdaric", "boto3", "botocore"))
    target, stamp = root / "python", root / "versions.json"
    root.mkdir(parents=True, exist_ok=True)

    def installed() -> dict[str, str]:
        versions = {}
        for name in RUNTIME_DISTRIBUTIONS:
            with contextlib.suppress(importlib.metadata.PackageNotFoundError):
                versions[name] = importlib.metadata.version(name)
        return versions

    local = installed()
    usable = len(local) == len(RUNTIME_DISTRIBUTIONS) and all(local[n] == v for n, v in pins.items())
    wanted = {"source": "copy", **local} if usable else {"source": "pip", **pins}
    with open(root / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if target.is_dir() and stamp.is_file() and json.loads(stamp.read_text()) == wanted:
            return target
        building = root / f"python.building-{os.getpid()}"
        shutil.rmtree(building, ignore_errors=True)
        if usable:
            for name in RUNTIME_DISTRIBUTIONS:
                _copy_distribution(name, building)
        else:
            command = [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
            command += ["--target", str(building), *(f"{n}=={v}" for n, v in pins.items())]
            proc = subprocess.run(command, capture_output=True, text=True)
            if proc.returncode != 0:
                raise RuntimeError(f"could not build the Lambda runtime dir with pip:\n{proc.stderr}")
        shutil.rmtree(target, ignore_errors=True)
        building.rename(target)
        stamp.write_text(json.dumps(wanted, indent=2) + "\n")
    return target


def _peak_rss_kb(pid: int) -> int:
    """Peak resident set size (``VmHWM``, kB) of a live process; 0 once it is gone."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return 0
    return next((int(line.split()[1]) for line in status.splitlines() if line.startswith("VmHWM:")), 0)


def _cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a live process, all its threads (clock-tick resolution)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return 0.0
    fields = stat.rsplit(")", 1)[1].split()  # after "pid (comm)": field 3 (state) is index 0
    return (int(fields[11]) + int(fields[12])) / _CLOCK_TICK


def _trace_id() -> str:
    """An X-Ray trace header like Lambda's (not sampled: nothing records it)."""
    return f"Root=1-{int(time.time()):08x}-{uuid.uuid4().hex[:24]};Parent={uuid.uuid4().hex[:16]};Sampled=0"


# ------------------------------------------------------------------ one environment


@dataclass
class _Spec:
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


@dataclass
class _Outcome:
    kind: str  # response | error | init_error | timeout | oom | exit
    body: bytes = b""
    error_type: str | None = None
    dispatched_at: float | None = None
    finished_at: float = 0.0
    cpu_s: float = 0.0
    exit_detail: str = ""


class _Environment:
    """One execution environment: a worker process, its Runtime API server, its logs."""

    def __init__(self, spec: _Spec, sink: Callable[[str], None]) -> None:
        self.spec = spec
        self.sink = sink
        self.cold = True
        self.init_ms: float | None = None
        self.last_used = time.monotonic()
        self._events: list[ApiEvent] = []
        self._events_lock = threading.Lock()
        self._cpu_at_dispatch = 0.0
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        self.api = RuntimeAPIServer(self._on_api_event)
        self._partial: dict[int, bytes] = {}
        self._selector = selectors.DefaultSelector()
        self.proc: subprocess.Popen | None = None
        self.spawned_at = 0.0
        self.peak_kb = 0
        #: An invocation has been handed to this environment and has not ended.
        self.invoking = False
        self.log_stream = time.strftime("%Y/%m/%d", time.gmtime()) + f"/[$LATEST]{uuid.uuid4().hex}"

    # --- process

    def start(self) -> None:
        """Spawn the worker (the cold start begins here)."""
        spec = self.spec
        env = {
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
            "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand",
            "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{spec.function_name}",
            "AWS_LAMBDA_LOG_STREAM_NAME": self.log_stream,
            "AWS_LAMBDA_RUNTIME_API": self.api.address,
            "LAMBDA_TASK_ROOT": str(spec.task),
            "LAMBDA_RUNTIME_DIR": str(spec.runtime_dir),
        }
        self.spawned_at = time.perf_counter()
        self.proc = subprocess.Popen(
            [sys.executable, "-I", "-S", "-c", _BOOTSTRAP, str(spec.opt)],
            cwd=spec.task,
            env=env,
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

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
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
            self._cpu_at_dispatch = _cpu_seconds(self.proc.pid)
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
        self.peak_kb = max(self.peak_kb, _peak_rss_kb(self.proc.pid))
        return self.peak_kb, _cpu_seconds(self.proc.pid)

    def _finish(self, kind: str, at: float, dispatched_at: float | None, **kw: Any) -> _Outcome:
        cpu = self._sample()[1] - self._cpu_at_dispatch if dispatched_at is not None else 0.0
        return _Outcome(kind, dispatched_at=dispatched_at, finished_at=at, cpu_s=max(cpu, 0.0), **kw)

    def run(self, request_id: str, body: bytes, logs: list[str]) -> _Outcome:
        """Hand the event to the runtime and wait for its outcome, its deadline or its death."""
        assert self.proc is not None
        self.invoking = True
        try:
            return self._run(request_id, body, logs)
        finally:
            self.invoking = False

    def _run(self, request_id: str, body: bytes, logs: list[str]) -> _Outcome:
        assert self.proc is not None
        spec = self.spec
        self.api.submit(Invocation(request_id, body, spec.timeout_s, spec.function_arn, _trace_id()))
        init_deadline = self.spawned_at + max(INIT_TIMEOUT_S, spec.timeout_s)
        deadline: float | None = None
        dispatched_at: float | None = None
        while True:
            bound = deadline if deadline is not None else (init_deadline if self.init_ms is None else None)
            wait = 0.1 if bound is None else max(0.0, min(0.1, bound - time.perf_counter()))
            self._selector.select(wait)
            # Events first, then the logs: what the worker wrote before an API call is
            # in the pipe by the time that call's event is seen, so it is read first.
            events = self._take_events()
            self._drain_logs(logs)
            for event in events:
                if event.kind == "next" and self.init_ms is None:
                    self.init_ms = (event.at - self.spawned_at) * 1000
                elif event.kind == "dispatch":
                    dispatched_at, deadline = event.at, event.at + spec.timeout_s
                    self.sink(f"START RequestId: {request_id} Version: $LATEST")
                elif event.kind in ("response", "error", "init_error"):
                    return self._finish(
                        event.kind, event.at, dispatched_at, body=event.body, error_type=event.error_type
                    )
            if len(self._selector.get_map()) == 1:  # stdout and stderr closed: the worker is exiting
                with contextlib.suppress(subprocess.TimeoutExpired):
                    self.proc.wait(timeout=wait)
            now = time.perf_counter()
            if self.proc.poll() is not None:
                self._drain_logs(logs)
                code = self.proc.returncode
                detail = f"signal: {signal.Signals(-code).name.lower()[3:]}" if code < 0 else f"exit status {code}"
                return _Outcome("exit", dispatched_at=dispatched_at, finished_at=now, exit_detail=detail)
            if (deadline is not None and now >= deadline) or (
                deadline is None and self.init_ms is None and now >= init_deadline
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


# ---------------------------------------------------------------------------- pool


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
        ``MODEL_DIR`` defaults to the extracted ``opt/model``.
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
    ) -> None:
        if not 128 <= memory_mb <= 10240:
            raise ValueError(f"memory_mb={memory_mb}: Lambda allows 128-10240 MB")
        if timeout_s <= 0 or max_environments < 1:
            raise ValueError("timeout_s must be > 0 and max_environments >= 1")
        self._own_workdir = workdir is None
        self.workdir = Path(tempfile.mkdtemp(prefix="local-lambda-")) if workdir is None else Path(workdir)
        try:
            self.task_root, self.opt = _extract_once(Path(function_zip), [Path(p) for p in layer_zips], self.workdir)
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
        self._spec = _Spec(
            task=self.task_root,
            opt=self.opt,
            runtime_dir=ensure_runtime_dir(),
            environment=env,
            memory_mb=memory_mb,
            timeout_s=timeout_s,
            function_name=function_name,
            function_arn=f"arn:aws:lambda:{region}:123456789012:function:{function_name}",
            handler=handler,
        )
        self.max_environments = max_environments
        self.idle_ttl_s = idle_ttl_s
        self._cond = threading.Condition()
        self._idle: list[_Environment] = []
        self._all: set[_Environment] = set()
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
                "environments_discarded",
                "environments_expired",
                "peak_concurrency",
            ),
            0,
        )
        self._busy = 0
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
    def stats(self) -> dict:
        """Counters: invocations, cold_starts, errors (by kind), environments started,
        discarded and expired, the current ``environments`` and ``peak_concurrency``."""
        with self._cond:
            return {**self._stats, "environments": len(self._all)}

    # --- pool

    def _acquire(self) -> _Environment:
        expired: list[_Environment] = []
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
                        env = _Environment(self._spec, self._write)
                        self._all.add(env)
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
                env.start()
            except BaseException:
                self._release(env, keep=False)
                raise
        return env

    def _release(self, env: _Environment, keep: bool) -> None:
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

    def invoke(self, event: dict) -> InvokeResult:
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
            self._write("INIT_START Runtime Version: python:{}.{}.local".format(*sys.version_info[:2]))
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
        begin = outcome.dispatched_at if outcome.dispatched_at is not None else max(started, env.spawned_at)
        duration_ms = max(0.0, (outcome.finished_at - begin) * 1000)
        if cold and init_ms is None:  # ended before init completed: all of it was init
            init_ms, duration_ms = (outcome.finished_at - env.spawned_at) * 1000, 0.0
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
        )
        self._write(f"END RequestId: {request_id}")
        self._write(report.line())
        self._count(outcome.kind, cold, error)
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
        candidates = [env for env in candidates if env.proc.poll() is None]
        if not candidates:
            return False
        choose(sorted(candidates, key=lambda env: env.log_stream)).kill()
        return True

    def _result(self, outcome: _Outcome, request_id: str, logs: list[str]) -> tuple[Any, dict | None]:
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

    def _count(self, kind: str, cold: bool, error: dict | None) -> None:
        with self._cond:
            self._stats["invocations"] += 1
            self._stats["cold_starts"] += int(cold)
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
        if self._log_file is not None:
            self._log_file.close()
        if self._own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)
        atexit.unregister(self.close)

    def __enter__(self) -> LocalLambda:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
